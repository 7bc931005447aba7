#!/bin/sh
# The whole catalog, today's way (the harness at the commit before issue 25) against the default, alternating (bench/catalog.py).
# Usage: bench/catalog.sh [--arch ARCH] [--both] [--one] [--runs N] [--baseline REV] [--note TEXT] [--record]
here=$(cd "$(dirname "$0")/.." && pwd)
exec "$here/.venv/bin/python" "$here/bench/catalog.py" "$@"
