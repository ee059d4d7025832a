"""bench/compare.py and bench/gpu_bench.py in their smallest CPU modes, so that they cannot rot.

Each runs as a subprocess, as a user runs it (tiny replica sizes, 4 s of 480x270 video, one
thread). Only the shape of what they print is checked: every row present, every figure a finite
number. Speeds are never asserted; they mean nothing at these sizes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE_MEDIA = ["--width", "480", "--height", "270"]

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None,
                                reason="the benchmarks' video needs ffmpeg and espeak-ng")


@pytest.fixture(scope="module")
def bench_work(tmp_path_factory) -> Path:
    """One folder for both scripts: the second reuses the first's replica hub and video."""
    return tmp_path_factory.mktemp("bench-smoke")


def run_script(*args: str) -> tuple[str, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, *args, "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    return "\n".join(lines[:-1]), json.loads(lines[-1])


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_compare_prints_every_row(bench_work):
    table, result = run_script("bench/compare.py", "--size", "tiny", "--seconds", "4", *SMOKE_MEDIA,
                               "--work", str(bench_work))

    assert set(result["rows"]) == {"faces", "voice", "faces+voice"}
    for name, row in result["rows"].items():
        for key in ("baseline_s_per_video_minute", "project_s_per_video_minute", "speedup",
                    "project_model_share", "baseline_model_share"):
            assert is_number(row[key]) and row[key] > 0, (name, key, row[key])
        assert 0 < row["project_model_share"] <= 1 and 0 < row["baseline_model_share"] <= 1
        for side in ("baseline_breakdown", "project_breakdown"):
            assert all(is_number(v) for v in row[side].values()), (name, side, row[side])
    faces, voice = result["rows"]["faces"], result["rows"]["voice"]
    assert faces["baseline_items"] > 0 and faces["project_items"] > 0  # both found the two faces
    assert voice["baseline_items"] == voice["project_items"] > 0  # the same 5 s windows
    assert set(result["targets"]) == {"speedup", "speedup_reached", "model_share", "model_share_reached"}
    assert result["setup"]["voice_heads_loaded"] == 8 and result["setup"]["voice_heads_scaled_to"] == 55
    for name in ("faces", "voice", "faces+voice", "targets:", "8 of the 55 Voice-Small heads"):
        assert name in table


def test_gpu_bench_cpu_smoke_prints_every_row(bench_work):
    table, result = run_script("bench/gpu_bench.py", "--cpu-smoke", "--work", str(bench_work))

    names = [row["name"] for row in result["rows"]]
    precision = result["setup"]["precision"]
    expected = {f"SigLIP so400m {precision}, batch {b}" for b in (2, 4, 8)} | {
        "faces: project", "faces: baseline", f"voice heads resident, {precision}", "voice heads resident, int8",
        f"voice: project, {precision} heads", "voice: project, int8 heads", "voice: baseline"}
    assert set(names) == expected and len(names) == len(expected)
    for row in result["rows"]:
        assert is_number(row["value"]) and row["value"] > 0, row
        if row["name"].startswith(("faces:", "voice:")):
            assert is_number(row["x_real_time"]) and row["x_real_time"] > 0, row
        if row["name"] in ("faces: project", "voice: project, int8 heads", f"voice: project, {precision} heads"):
            assert is_number(row["speedup_vs_baseline"]) and row["speedup_vs_baseline"] > 0, row
    for name in expected:
        assert name in table


def test_live_bench_prints_every_row(bench_work):
    table, result = run_script("bench/bench_live.py", "--size", "tiny", "--seconds", "4", "--pps-list", "1,4",
                               *SMOKE_MEDIA, "--work", str(bench_work))
    assert [row["pps"] for row in result["faces"]] == [1.0, 4.0]
    for row in result["faces"] + [result["voice"]]:
        assert row["offered"] == row["processed"] + row["skipped"] and row["processed"] > 0, row
        assert all(is_number(row[key]) and row[key] > 0 for key in ("latency_p50_s", "latency_p95_s")), row
    assert result["faces"][1]["offered"] >= 3 * result["faces"][0]["offered"]  # four samples a second, not one
    assert result["sustained_pps"] in (1.0, 4.0, None)
    assert set(result["goals"]) == {"faces", "voice"}
    for name in ("faces pps", "sustained:", "voice:", "goals:", "8 of the 55 Voice-Small heads"):
        assert name in table
