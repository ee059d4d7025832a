"""/predict answer time for a cache miss against a cache hit, with the tiny replica models.

Usage: python bench/bench_predict.py [SECONDS]   (a talking two-face video of SECONDS, default 10)
Models are loaded by a warm-up task first, so the miss is analysis time, not loading. Prints JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="bench-hub-"))
os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from empathic.labelstudio.cache import MemoryCache  # noqa: E402
from empathic.labelstudio.server import create_app  # noqa: E402
from empathic.labelstudio.service import AnalysisService  # noqa: E402
from empathic.labelstudio.settings import BackendSettings  # noqa: E402
from media_factory import moving_face_video, two_voice_track  # noqa: E402
from replicas import build_face_replicas, build_voice_replicas  # noqa: E402


def talking_video(folder: Path, name: str, seconds: float, seed: int) -> Path:
    speech = two_voice_track(folder / f"speech{seed}", lead_s=0.5 + seed * 0.1)
    faces, _ = moving_face_video(folder / f"{name}_faces.mp4", seconds=seconds, fps=25, faces=2)
    out = folder / f"{name}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(faces), "-i", str(speech.path), "-map", "0:v",
                    "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(out)], check=True)
    return out


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cache_root = Path(os.environ["HF_HUB_CACHE"])
    build_face_replicas(cache_root)
    build_voice_replicas(cache_root)
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    warmup, measured = talking_video(work, "warmup", 2.0, 0), talking_video(work, "clip", seconds, 1)
    settings = BackendSettings(device="cpu", media_cache_dir=work / "media", model_version="bench", face_pps=1.0,
                               media_roots=str(work))
    service = AnalysisService(settings, cache=MemoryCache())
    config = (ROOT / "labeling_configs" / "video_face_voice.xml").read_text()
    client = create_app(service).test_client()

    def predict(path: Path) -> float:
        started = time.perf_counter()
        response = client.post("/predict", json={"tasks": [{"id": 1, "data": {"video": str(path)}}],
                                                 "project": "1.1", "label_config": config, "params": {}})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and response.get_json()["results"][0], response.get_json()
        return elapsed

    predict(warmup)
    miss = predict(measured)
    hits = [predict(measured) for _ in range(5)]
    print(json.dumps({"video_seconds": seconds, "face_pps": 1.0, "voice": "fixed 5 s windows",
                      "miss_s": round(miss, 3), "hit_s": round(min(hits), 4),
                      "miss_over_hit": round(miss / min(hits), 1)}))


if __name__ == "__main__":
    main()
