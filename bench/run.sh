#!/usr/bin/env bash
# Measure binder-harness's speed (DESIGN §7). See bench/README.md.
#   bench/run.sh                 full run: one case per arch, catalog, perf, virtme-ng, cold start
#   bench/run.sh --quick         one warm run of one case on x86_64 (what the test runs)
#   bench/run.sh --record        also write bench/results.md
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/bench.py "$@"
