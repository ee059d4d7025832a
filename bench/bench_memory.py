"""Peak memory of the face pipeline against the length of the video (1, 10 and 60 minutes of 720p),
and of the voice pipeline's decoded sound per hour, with the tiny replica models.

The video is one minute of a real face moving over 720p frames at 5 frames per second (low frame
rate and bitrate, so that an hour is quick to make), repeated by ffmpeg's concat demuxer without
re-encoding. Each length runs in a fresh process that reports its peak RSS (ru_maxrss), at one
sampled frame per second. Usage: python bench/bench_memory.py [MINUTES ...] (default 1 10 60).
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="bench-hub-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
sys.path.insert(0, str(ROOT / "tests"))

from media_factory import moving_face_video  # noqa: E402
from replicas import build_face_replicas  # noqa: E402

FACES = """
import json, resource, sys, torch
torch.set_num_threads(1)
from empathic.face_analysis import FaceAnalysisOptions, analyze_faces
from empathic.hub import WeightSources
from empathic.models.face import FaceEmotionModel
from empathic.models.runtime import make_runtime
model = FaceEmotionModel.load("small", WeightSources(), make_runtime("cpu", "fp32"))
analysis = analyze_faces(sys.argv[1], model, FaceAnalysisOptions(pps=1.0))
print(json.dumps({"samples": len(analysis.frames), "faces": len(analysis.faces),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""

SOUND = """
import json, resource, sys
from empathic.audio import decode_audio
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
audio = decode_audio(sys.argv[1])
print(json.dumps({"seconds": round(audio.duration_s), "samples_mb": round(audio.samples.nbytes / 2**20, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def run(code: str, path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    minutes = [int(m) for m in sys.argv[1:]] or [1, 10, 60]
    build_face_replicas(Path(os.environ["HF_HUB_CACHE"]))
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    one, _ = moving_face_video(work / "minute.mp4", seconds=60.0, fps=5, faces=1, step=1)
    faces = {}
    for count in minutes:
        listing = work / f"list_{count}.txt"
        listing.write_text("".join(f"file '{one}'\n" for _ in range(count)))
        video = work / f"video_{count}min.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                        str(video)], check=True)
        faces[f"{count} min"] = run(FACES, video)
    sound = work / "hour.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=220:duration=3600",
                    "-ar", "44100", "-ac", "2", str(sound)], check=True)
    print(json.dumps({"faces_720p_pps_1": faces, "voice_one_hour_of_sound": run(SOUND, sound)}))


if __name__ == "__main__":
    main()
