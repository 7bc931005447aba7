#!/bin/sh
# Restore vs boot, side by side on both arches (bench/restore.py). Usage: bench/restore.sh [--record] [--runs N]
here=$(cd "$(dirname "$0")/.." && pwd)
exec "$here/.venv/bin/python" "$here/bench/restore.py" "$@"
