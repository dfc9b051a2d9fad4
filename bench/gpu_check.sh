#!/usr/bin/env bash
# GPU readiness in one command: on a machine with one CUDA GPU, under 8 minutes, one table at the end.
#   bash bench/gpu_check.sh            # on the GPU machine (record the table in bench/RESULTS.md)
#   bash bench/gpu_check.sh --dry-run  # every part that needs no GPU, small, on CPU
# What each row measures: bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" bench/gpu_check.py "$@"
