#!/usr/bin/env bash
# Installs everything the tests need (scripts/setup.sh --test) and runs the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k coco -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# A real Label Studio server for the end-to-end tests, in its own venv (outside the repo by default).
LS_VENV="$(scripts/install_label_studio.sh)"
export LS_VENV
# One thread per process: on small shared machines torch's default thread pool slows tiny models
# down by orders of magnitude when another process is busy.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYANNOTE_METRICS_ENABLED=false
exec "${VENV:-.venv}/bin/python" -m pytest -q "$@"
