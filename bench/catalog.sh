#!/bin/sh
# The whole catalog, today's way (-j 1) against the default, alternating (bench/catalog.py).
# Usage: bench/catalog.sh [--arch ARCH] [--runs N] [--note TEXT] [--record]
here=$(cd "$(dirname "$0")/.." && pwd)
exec "$here/.venv/bin/python" "$here/bench/catalog.py" "$@"
