"""The pipeline's own overhead per sampled 720p frame, with the tiny replica models.

Tiny models make the model time negligible, so what is measured is decoding, detection, cropping,
preprocessing, tracking and bookkeeping. Usage: python bench/bench_pipeline.py [SECONDS] [PPS]
Prints one JSON line. Reports ratios of stages, measured in the same run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="bench-hub-"))
os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from empathic.face_analysis import FaceAnalysisOptions, analyze_faces  # noqa: E402
from empathic.faces.detect import DetectorOptions, HaarDetector  # noqa: E402
from empathic.hub import WeightSources  # noqa: E402
from empathic.media import sample_frames  # noqa: E402
from empathic.models.face import FaceEmotionModel  # noqa: E402
from empathic.models.runtime import make_runtime  # noqa: E402
from media_factory import moving_face_video  # noqa: E402
from replicas import build_face_replicas  # noqa: E402


def best_of(runs: int, fn):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    pps = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    build_face_replicas(Path(os.environ["HF_HUB_CACHE"]))
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    clip, _ = moving_face_video(work / "clip.mp4", seconds=seconds, faces=2)
    model = FaceEmotionModel.load("small", WeightSources(), make_runtime("cpu", "fp32"))
    options = FaceAnalysisOptions(pps=pps)
    serial = FaceAnalysisOptions(pps=pps, prefetch_frames=0)

    total_s, analysis = best_of(3, lambda: analyze_faces(clip, model, options))
    serial_s, _ = best_of(3, lambda: analyze_faces(clip, model, serial))
    decode_s, frames = best_of(3, lambda: [f.rgb for f in sample_frames(clip, pps)])
    detector = HaarDetector(DetectorOptions())
    detect_s, _ = best_of(3, lambda: [detector.detect(f) for f in frames])
    samples = len(analysis.frames)
    print(json.dumps({
        "clip": "1280x720 30 fps H.264, two faces", "seconds": seconds, "pps": pps,
        "samples": samples, "faces": len(analysis.faces), "torch_threads": torch.get_num_threads(),
        "pipeline_s_per_sample": round(total_s / samples, 4),
        "without_prefetch_s_per_sample": round(serial_s / samples, 4),
        "prefetch_speedup": round(serial_s / total_s, 2),
        "decode_share_of_serial": round(decode_s / serial_s, 3),
        "haar_share_of_serial": round(detect_s / serial_s, 3),
        "rest_share_of_serial": round(1 - (decode_s + detect_s) / serial_s, 3),
    }))


if __name__ == "__main__":
    main()
