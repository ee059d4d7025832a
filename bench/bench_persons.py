"""The extra cost of ``--fuse`` (who is speaking, fusion) on a 720p talking-faces clip, and how well
it links, with the tiny replica models.

Linking decodes the video again inside the voice segments (12.5 frames per second) and compares
mouth regions; linking and fusion themselves are arithmetic. The figures are seconds per minute of
video (and per minute of speech), and the share of the face analysis's own pipeline time they
add, measured in the same run. The clip has two faces, each mouth moving with one of two voices,
and a third voice off screen (tests/media_factory.py: talking_faces_video).
Usage: python bench/bench_persons.py [REPEATS]. Prints one JSON line.
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
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from empathic.audio import decode_audio  # noqa: E402
from empathic.face_analysis import FaceAnalysisOptions, analyze_faces  # noqa: E402
from empathic.hub import WeightSources  # noqa: E402
from empathic.models.face import FaceEmotionModel  # noqa: E402
from empathic.models.runtime import make_runtime  # noqa: E402
from empathic.models.voice import VoiceEmotionModel  # noqa: E402
from empathic.persons.analysis import analyze_persons  # noqa: E402
from empathic.persons.evidence import gather_evidence  # noqa: E402
from empathic.persons.linking import make_linker  # noqa: E402
from empathic.segments.vad import VadOptions  # noqa: E402
from empathic.voice_analysis import VoiceAnalysisOptions, analyze_voice  # noqa: E402
from media_factory import talking_faces_video  # noqa: E402
from replicas import build_face_replicas, build_voice_replicas  # noqa: E402


def best_of(runs: int, fn):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def accuracy(persons, face, clip) -> float:
    """Share of the true speech time attributed to the right face (or to nobody, off screen)."""
    centre = {}
    for observation in face.faces:
        centre.setdefault(observation.track_id, []).append(observation.box.x + observation.box.w / 2)
    side = {t: int(sum(c) / len(c) > face.media["width"] / 2) for t, c in centre.items()}
    right = total = 0.0
    for _, start, end, truth in clip.voices:
        for link in persons.links:
            overlap = max(0.0, min(end, link.end_s) - max(start, link.start_s))
            total += overlap
            said = None if link.track_id is None else side[link.track_id]
            right += overlap if said == truth else 0.0
    return right / total if total else 0.0


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cache = Path(os.environ["HF_HUB_CACHE"])
    build_face_replicas(cache)
    build_voice_replicas(cache)
    work = Path(tempfile.mkdtemp(prefix="bench-persons-"))
    clip = talking_faces_video(work, width=1280, height=720)
    runtime = make_runtime("cpu", "fp32")
    face_model = FaceEmotionModel.load("small", WeightSources(), runtime)
    voice_model = VoiceEmotionModel.load("small", WeightSources(), runtime)
    face_s, face = best_of(repeats, lambda: analyze_faces(clip.path, face_model, FaceAnalysisOptions(pps=2.0)))
    audio = decode_audio(clip.path)
    voice = analyze_voice(clip.path, voice_model, VoiceAnalysisOptions(segmentation="vad", vad=VadOptions()),
                          audio=audio)
    evidence_s, evidence = best_of(repeats, lambda: gather_evidence(clip.path, face, voice, audio))
    linker = make_linker()
    fusion_s, persons = best_of(repeats, lambda: analyze_persons(face, voice, evidence, linker))
    minutes = clip.duration_s / 60
    speech_minutes = sum(s.duration_s for s in voice.segments) / 60
    print(json.dumps({
        "clip": "1280x720 25 fps H.264, two talking faces and an off-screen voice",
        "seconds": round(clip.duration_s, 2), "speech_seconds": round(speech_minutes * 60, 2),
        "voice_segments": len(voice.segments), "torch_threads": torch.get_num_threads(),
        "linking_accuracy": round(accuracy(persons, face, clip), 4),
        "evidence_s_per_video_minute": round(evidence_s / minutes, 3),
        "evidence_s_per_speech_minute": round(evidence_s / speech_minutes, 3),
        "linking_and_fusion_s_per_video_minute": round(fusion_s / minutes, 4),
        "extra_share_of_face_pipeline_at_pps_2": round((evidence_s + fusion_s) / face_s, 3),
    }))


if __name__ == "__main__":
    main()
