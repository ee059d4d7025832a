#!/usr/bin/env bash
# One table of GPU figures for the real-size models (random weights), in at most 8 minutes:
# SigLIP so400m faces/s at batch 16/64/128 in bf16; the face pipeline on a generated 10-minute
# 720p video of two talking faces at pps 1 (times real time); Voice-Small heads' resident memory
# (bf16, int8) and voice segments/s at 5 s windows; bench/compare.py's peer-structured baseline on
# the same video for the ratio. Needs a CUDA GPU, the project installed with its test extra
# (pip install -e '.[test]'), ffmpeg and espeak-ng. Options pass through to bench/gpu_bench.py
# (e.g. --minutes 5, --json, --work DIR to keep the generated weights and video).
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --signal=INT --kill-after=20 "${GPU_BENCH_TIMEOUT_S:-480}" \
    "${PYTHON:-python}" bench/gpu_bench.py "$@"
