"""The project's pipeline against a baseline structured the way peer scripts run the same models,
in one process, on one generated video and the same real-size random weights.

  python bench/compare.py [--seconds 24] [--pps 1] [--voice-heads 8] [--device cpu]
                          [--precision auto] [--width 1280 --height 720] [--size real|tiny]
                          [--parts faces,voice] [--work DIR] [--json]

The video: tests/media_factory.py's two talking faces (espeak-ng voices, mouths moving with them),
looped (streams copied) to --seconds at --width x --height; needs ffmpeg and espeak-ng.

The weights: a hub cache laid out like the real one (models--ORG--NAME/blobs, snapshots, refs),
built as tests/replicas.py builds its tiny replicas but at the real sizes: the SigLIP2 so400m
vision tower (a tiny text tower beside it), the 44 Face-Small heads (1152 -> 128 -> 32 -> 1), the
Whisper-small encoder (a one-layer decoder beside it) and Voice-Small heads (proj 1,152,000 -> 64
-> 64 -> 32 -> 16 -> 1). Random weights: speed does not depend on their values.

Voice heads: 55 real-size heads are 16 GB in fp32, so only the first --voice-heads (default 8) are
written and loaded. Both sides' measured time inside the heads is multiplied by 55 / N, and their
wall times are corrected by the same difference; the project's N head outputs are repeated to 55
columns so that its scoring runs unchanged. The output says so.

(a) baseline, as LAION's notebooks and peer scripts are written: OpenCV ``cap.set(
    CAP_PROP_POS_FRAMES)`` seek and ``read`` per sample, Haar detection on the full frame, one face
    per SigLIP call in fp32, one plain ``nn.Sequential`` per head and per call; the sound decoded
    once, then one 5 s segment per Whisper encoder call and per head call, in fp32.
(b) project: ``analyze_faces`` / ``analyze_voice`` with their default options, the models loaded
    by ``FaceEmotionModel.load`` and ``VoiceEmotionModel`` (Voice-Small's first N heads) from the
    replica hub, on ``make_runtime(device, "auto")``: the project's default precision (fp32 on a
    CPU, bf16 on a GPU); ``--precision bf16`` measures the CPU's bf16 speed.

Printed: seconds per minute of video for faces, voice and both, on each side; the speed-up; the
share of the project's wall time spent inside the models (SigLIP tower / Whisper encoder and
heads), and whether the targets are reached (>= 1.8x end to end, models >= 85 % of the project's
time). --json adds the same figures as one JSON line. Nothing reaches the network.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
sys.path.insert(0, str(ROOT / "backend"))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from empathic.audio import decode_audio  # noqa: E402
from empathic.face_analysis import FaceAnalysisOptions, analyze_faces  # noqa: E402
from empathic.faces.crop import crop_face  # noqa: E402
from empathic.faces.detect import HAAR_CASCADE  # noqa: E402
from empathic.hub import ModelNeed, WeightSources, resolve_needs  # noqa: E402
from empathic.media import probe  # noqa: E402
from empathic.models.face import BACKBONE_REQUIRED_FILES, FaceEmotionModel  # noqa: E402
from empathic.models.heads import load_head_file  # noqa: E402
from empathic.models.quiet import quiet_transformers  # noqa: E402
from empathic.models.runtime import make_runtime  # noqa: E402
from empathic.models.voice import DEFAULT_ENCODER, ENCODER_PATTERNS, VoiceEmotionModel, voice_encoder  # noqa: E402
from empathic.models.voice import LoadedFiles as VoiceFiles  # noqa: E402
from empathic.registry import FACE_MODELS, VOICE_MODELS, HeadSet, RepoRef  # noqa: E402
from empathic.results import Box  # noqa: E402
from empathic.segments.fixed import FixedSegmenter, WindowOptions  # noqa: E402
from empathic.voice_analysis import analyze_voice  # noqa: E402

VOICE_HEADS = len(VOICE_MODELS["small"].head_file_names())  # 55: 40 emotions + 15 attributes
WHISPER_POSITIONS = 1500
SEGMENT_S = 5.0  # the project's default fixed windows (pps 0.2)
TARGET_SPEEDUP = 1.8
TARGET_MODEL_SHARE = 0.85


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Model shapes; the Face-Small heads (1152 or 32 -> 128 -> 32 -> 1) follow the tower's width."""

    name: str
    siglip: dict  # SiglipVisionConfig
    whisper: dict  # WhisperConfig, encoder side
    voice_hidden: tuple[int, ...]  # after the 1500 x d_model inputs


SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
              image_size=384, patch_size=16)
WHISPER_SMALL = dict(d_model=768, encoder_layers=12, encoder_attention_heads=12, encoder_ffn_dim=3072)
SIZES = {
    "real": Sizes("real", SO400M, WHISPER_SMALL, (64, 64, 32, 16)),
    # The tests' replica sizes: the smoke run exercises every path in seconds.
    "tiny": Sizes("tiny", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               image_size=384, patch_size=16),
                  dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32), (8, 8, 4, 2)),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def release() -> None:
    """Free the models just dropped (the timing wrappers make reference cycles) before the next load."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Media


@dataclasses.dataclass(frozen=True)
class Clip:
    path: Path
    duration_s: float
    width: int
    height: int


def make_clip(folder: Path, seconds: float, width: int = 1280, height: int = 720) -> Clip:
    """Two talking faces (tests/media_factory.py), looped or cut to ``seconds`` without re-encoding."""
    from media_factory import talking_faces_video

    path = folder / f"talking_{width}x{height}_{seconds:g}s.mp4"
    if not path.exists():
        source = talking_faces_video(folder / f"source_{width}x{height}", width=width, height=height)
        partial = path.with_suffix(".partial.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source.path),
                        "-t", f"{seconds:.3f}", "-map", "0", "-c", "copy", str(partial)], check=True)
        partial.rename(path)
    info, _ = probe(path)
    return Clip(path, info.duration_s, info.width, info.height)


# ---------------------------------------------------------------------------------------------
# A replica hub at real (or tiny) sizes


def publish(cache: Path, ref: RepoRef, folder: Path) -> Path:
    """Move ``folder``'s files into huggingface_hub's cache layout for ``ref`` (as
    tests/replicas.write_hub_repo, but file by file: the real-size files are GBs)."""
    root = cache / ("models--" + ref.repo_id.replace("/", "--"))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    digests = {}
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        sha = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                sha.update(block)
        digests[file.name] = sha.hexdigest()
        shutil.move(file, root / "blobs" / digests[file.name])
    commit = hashlib.sha1("".join(f"{n}{d}" for n, d in sorted(digests.items())).encode()).hexdigest()
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, digest in digests.items():
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(root / "blobs" / digest, snapshot))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / ref.revision).write_text(commit)
    return snapshot


def _siglip_folder(folder: Path, sizes: Sizes) -> None:
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip import SiglipImageProcessorPil

    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                vocab_size=64, max_position_embeddings=16, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                projection_size=sizes.siglip["hidden_size"])
    with quiet_transformers():
        SiglipModel(SiglipConfig(vision_config=sizes.siglip, text_config=text)).eval().save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                            resample=2).save_pretrained(folder)


def _whisper_folder(folder: Path, sizes: Sizes) -> None:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(0)
    heads = sizes.whisper["encoder_attention_heads"]
    config = WhisperConfig(num_mel_bins=80, max_source_positions=WHISPER_POSITIONS, **sizes.whisper,
                           decoder_layers=1, decoder_attention_heads=heads, decoder_ffn_dim=64,
                           max_target_positions=32, vocab_size=64, pad_token_id=0, bos_token_id=1,
                           eos_token_id=2, decoder_start_token_id=3)
    with quiet_transformers():
        WhisperForConditionalGeneration(config).eval().save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(folder)


def build_hub(cache: Path, sizes: Sizes, voice_heads: int) -> Path:
    """The SigLIP backbone, Face-Small, the default Whisper encoder and Voice-Small's first
    ``voice_heads`` heads, in ``cache``; kept and reused when built before with the same sizes."""
    from replicas import face_repo_files, voice_head_state_dict

    cache.mkdir(parents=True, exist_ok=True)
    face, voice = FACE_MODELS["small"], VOICE_MODELS["small"]
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache))
    try:
        def repo(ref: RepoRef, marker: str, fill: Callable[[Path], None]) -> None:
            done = cache / f".built-{ref.repo_id.replace('/', '--')}-{marker}"
            if done.exists():  # built before: point the revision at that snapshot again
                refs = cache / ("models--" + ref.repo_id.replace("/", "--")) / "refs" / ref.revision
                refs.write_text(done.read_text())
                return
            log(f"writing {sizes.name}-size {ref.repo_id} into {cache}")
            folder = staging / done.name
            folder.mkdir()
            fill(folder)
            done.write_text(publish(cache, ref, folder).name)

        def face_heads(folder: Path) -> None:
            for name, content in face_repo_files(face, input_size=sizes.siglip["hidden_size"]).items():
                (folder / name).write_bytes(content)

        def voice_heads_files(folder: Path) -> None:
            inputs = WHISPER_POSITIONS * sizes.whisper["d_model"]
            for seed, name in enumerate(voice.head_file_names()[:voice_heads]):
                torch.save(voice_head_state_dict(inputs, sizes.voice_hidden, seed), folder / name)

        repo(face.backbone, sizes.name, lambda f: _siglip_folder(f, sizes))
        repo(face.repo, sizes.name, face_heads)
        repo(voice_encoder(DEFAULT_ENCODER), sizes.name, lambda f: _whisper_folder(f, sizes))
        repo(voice.repo, f"{sizes.name}-{voice_heads}", voice_heads_files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


# ---------------------------------------------------------------------------------------------
# Timing


class Stopwatch:
    """Wall and CPU seconds spent inside wrapped calls, by name (synchronising the GPU around each).

    CPU seconds are the whole process's (every thread): on a CPU shared with other work they move
    less than wall seconds do, so both are reported."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            self.sync()
            start, cpu = time.perf_counter(), time.process_time()
            result = fn(*args, **kwargs)
            self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu
            return result
        return timed

    def reset(self) -> None:
        self.seconds, self.cpu_seconds = {}, {}


@dataclasses.dataclass(frozen=True)
class Measured:
    """One side's run over one clip: wall time, time inside the models (heads included)."""

    wall_s: float
    model_s: float
    heads_s: float
    items: int  # faces or voice segments scored
    cpu_s: float = 0.0  # process CPU seconds over the run (all threads)
    heads_cpu_s: float = 0.0

    def heads_scaled(self, factor: float) -> "Measured":
        """As if the heads had cost ``factor`` times what they did (more heads than were loaded)."""
        extra, extra_cpu = self.heads_s * (factor - 1.0), self.heads_cpu_s * (factor - 1.0)
        return Measured(self.wall_s + extra, self.model_s + extra, self.heads_s + extra, self.items,
                        self.cpu_s + extra_cpu, self.heads_cpu_s + extra_cpu)

    def breakdown(self) -> dict[str, float]:
        """Seconds: the tower or encoder, the heads, everything else (decoding, detection, features)."""
        return {"backbone_s": round(self.model_s - self.heads_s, 3), "heads_s": round(self.heads_s, 3),
                "other_s": round(self.wall_s - self.model_s, 3), "wall_s": round(self.wall_s, 3),
                "cpu_s": round(self.cpu_s, 3)}


def _timed_run(watch: Stopwatch, run: Callable[[], int]) -> Measured:
    watch.reset()
    watch.sync()
    start, cpu = time.perf_counter(), time.process_time()
    items = run()
    watch.sync()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    heads = watch.seconds.get("heads", 0.0)
    return Measured(wall, sum(watch.seconds.values()), heads, items, cpu, watch.cpu_seconds.get("heads", 0.0))


# ---------------------------------------------------------------------------------------------
# (b) the project


def weight_sources(cache: Path) -> WeightSources:
    return WeightSources(cache_dir=cache, offline=True)


@dataclasses.dataclass(frozen=True)
class FirstHeads(HeadSet):
    """A head set reduced to its first ``count`` heads (55 real-size voice heads need 16 GB)."""

    count: int = 0

    def head_file_names(self) -> tuple[str, ...]:
        return super().head_file_names()[:self.count]


class ProjectFaces:
    """FaceEmotionModel from the replica hub, its tower and heads timed."""

    def __init__(self, cache: Path, runtime):
        self.model = FaceEmotionModel.load("small", weight_sources(cache), runtime)
        self.watch = Stopwatch(runtime.device)
        self.model.embed = self.watch.wrap("tower", self.model.embed)
        self.model.raw_scores = self.watch.wrap("heads", self.model.raw_scores)

    def warm_up(self, crop: np.ndarray) -> None:
        self.model.score(self.model.embed(self.model.preprocess([crop])))

    def run(self, clip: Clip, pps: float) -> Measured:
        return _timed_run(self.watch, lambda: len(
            analyze_faces(clip.path, self.model, FaceAnalysisOptions(pps=pps)).faces))


class ProjectVoice:
    """VoiceEmotionModel with Voice-Small's first ``heads`` heads from the replica hub; their
    outputs are repeated to 55 columns so that LAION's scoring runs as with the full set."""

    def __init__(self, cache: Path, runtime, heads: int):
        spec = VOICE_MODELS["small"]
        spec = FirstHeads(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}, count=heads)
        encoder = voice_encoder(DEFAULT_ENCODER)
        repos = resolve_needs((ModelNeed(spec.repo, spec.download_patterns(), spec.download_patterns()),
                               ModelNeed(encoder, ENCODER_PATTERNS, BACKBONE_REQUIRED_FILES)),
                              weight_sources(cache))
        self.model = VoiceEmotionModel(spec, encoder, VoiceFiles(repos[spec.repo], repos[encoder]), runtime)
        self.watch = Stopwatch(runtime.device)
        self.model.embedder.embed = self.watch.wrap("encoder", self.model.embedder.embed)
        self.use_heads(self.model.heads)

    def use_heads(self, heads: nn.Module) -> None:
        """Score with ``heads`` (timed; outputs repeated to 55 columns where they are fewer)."""
        self.heads = heads
        timed = self.watch.wrap("heads", heads)

        def full_width(states: torch.Tensor) -> torch.Tensor:
            raw = timed(states)
            return raw.repeat(1, math.ceil(VOICE_HEADS / raw.shape[1]))[:, :VOICE_HEADS]
        self.model.heads = full_width

    def warm_up(self, clip: np.ndarray) -> None:
        self.model.score(self.model.raw_scores([clip]))

    def run(self, clip: Clip) -> Measured:
        return _timed_run(self.watch, lambda: len(analyze_voice(clip.path, self.model).segments))


# ---------------------------------------------------------------------------------------------
# (a) the baseline, structured as peer scripts are


def sequential_head(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> nn.Sequential:
    """LAION's MLP as a plain nn.Sequential: Linear, then (ReLU, Dropout, Linear) repeated."""
    modules: list[nn.Module] = []
    for i, (weight, bias) in enumerate(layers):
        if i:
            modules += [nn.ReLU(), nn.Dropout(0.1)]
        linear = nn.Linear(weight.shape[1], weight.shape[0], device="meta")
        linear.weight = nn.Parameter(weight, requires_grad=False)
        linear.bias = nn.Parameter(bias, requires_grad=False)
        modules.append(linear)
    return nn.Sequential(*modules).eval()


class PeerFaces:
    """SigLIP tower in fp32 and 44 nn.Sequential heads, the same files as the project's."""

    def __init__(self, cache: Path, device: torch.device):
        from transformers import AutoImageProcessor, SiglipVisionModel

        spec, files = FaceEmotionModel.locate("small", weight_sources(cache))
        self.device = torch.device(device)
        self.processor = AutoImageProcessor.from_pretrained(files.backbone.path, backend="pil")
        with quiet_transformers():
            tower = SiglipVisionModel.from_pretrained(files.backbone.path, dtype=torch.float32)
        self.tower = tower.to(device).eval()
        self.heads = {name: sequential_head([(w.to(device, torch.float32), b.to(device, torch.float32))
                                             for w, b in load_head_file(files.heads.path / name)])
                      for name in spec.head_file_names()}
        self.watch = Stopwatch(device)
        self._embed = self.watch.wrap("tower", self._embed)
        self._heads = self.watch.wrap("heads", self._heads)

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.tower(pixel_values=pixels.to(self.device)).pooler_output
        return pooled / pooled.norm(dim=-1, keepdim=True)

    def _heads(self, embedding: torch.Tensor) -> dict[str, float]:
        return {name: head(embedding).item() for name, head in self.heads.items()}

    @torch.no_grad()
    def score(self, rgb_crop: np.ndarray) -> dict[str, float]:
        pixels = self.processor(images=rgb_crop, return_tensors="pt")["pixel_values"]
        return self._heads(self._embed(pixels))

    def faces(self, path: Path, pps: float, margin: float = 0.2) -> int:
        """Seek and read each sampled frame, Haar on the full frame, one face at a time."""
        cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / HAAR_CASCADE))
        capture = cv2.VideoCapture(str(path))
        fps = capture.get(cv2.CAP_PROP_FPS)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        scored = 0
        for k in range(frame_count):
            index = int(round(k / pps * fps))
            if index >= frame_count:
                break
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = capture.read()
            if not ok:
                break
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            for x, y, w, h in np.asarray(boxes).reshape(-1, 4):
                self.score(crop_face(rgb, Box(float(x), float(y), float(w), float(h)), margin))
                scored += 1
        capture.release()
        return scored

    def run(self, clip: Clip, pps: float) -> Measured:
        return _timed_run(self.watch, lambda: self.faces(clip.path, pps))


class PeerVoice:
    """Whisper encoder in fp32 and one nn.Sequential per head; one segment per call."""

    def __init__(self, cache: Path, device: torch.device, heads: dict[str, nn.Module] | None = None,
                 head_count: int | None = None):
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

        encoder = voice_encoder(DEFAULT_ENCODER)
        spec = VOICE_MODELS["small"]
        names = spec.head_file_names()[:head_count]
        needs = [ModelNeed(encoder, ENCODER_PATTERNS, BACKBONE_REQUIRED_FILES)]
        if heads is None:
            needs.append(ModelNeed(spec.repo, names, names))
        repos = resolve_needs(needs, weight_sources(cache))
        self.device = torch.device(device)
        self.extractor = WhisperFeatureExtractor.from_pretrained(repos[encoder].path)
        with quiet_transformers():
            full = WhisperForConditionalGeneration.from_pretrained(repos[encoder].path, dtype=torch.float32)
        self.encoder = full.get_encoder().to(device).eval()
        del full
        if heads is None:
            heads = {name: sequential_head([(w.to(device, torch.float32), b.to(device, torch.float32))
                                            for w, b in load_head_file(repos[spec.repo].path / name)])
                     for name in names}
        self.heads = heads
        self.watch = Stopwatch(device)
        self._encode = self.watch.wrap("encoder", self._encode)
        self._heads = self.watch.wrap("heads", self._heads)

    def _encode(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features=features.to(self.device)).last_hidden_state

    def _heads(self, states: torch.Tensor) -> dict[str, float]:
        flat = states.flatten(1)
        return {name: head(flat).item() for name, head in self.heads.items()}

    @torch.no_grad()
    def score(self, samples: np.ndarray) -> dict[str, float]:
        # The extractor pads every clip to Whisper's 30 s window, as LAION's code relies on.
        features = self.extractor(samples, sampling_rate=16000, return_tensors="pt")["input_features"]
        return self._heads(self._encode(features))

    def voice(self, path: Path) -> int:
        audio = decode_audio(path)  # peers call librosa.load(path, sr=16000); the same samples
        segments = FixedSegmenter(WindowOptions(pps=1.0 / SEGMENT_S)).segment(audio)
        for segment in segments:
            self.score(audio.window(segment.start_s, segment.end_s))
        return len(segments)

    def run(self, clip: Clip) -> Measured:
        return _timed_run(self.watch, lambda: self.voice(clip.path))


# ---------------------------------------------------------------------------------------------
# The comparison


def warm_up_inputs(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """A face-sized RGB crop and 5 s of the clip's sound (first calls pay one-time set-up costs)."""
    audio = decode_audio(clip.path)
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (160, 160, 3), dtype=np.uint8), audio.window(0.0, SEGMENT_S)


def per_minute(seconds: float, clip: Clip) -> float:
    return seconds / (clip.duration_s / 60.0)


def row(clip: Clip, baseline: Measured, project: Measured) -> dict:
    return {"baseline_s_per_video_minute": round(per_minute(baseline.wall_s, clip), 3),
            "project_s_per_video_minute": round(per_minute(project.wall_s, clip), 3),
            "speedup": round(baseline.wall_s / project.wall_s, 3),
            "speedup_cpu_time": round(baseline.cpu_s / project.cpu_s, 3),
            "project_model_share": round(project.model_s / project.wall_s, 4),
            "baseline_model_share": round(baseline.model_s / baseline.wall_s, 4),
            "baseline_items": baseline.items, "project_items": project.items,
            "baseline_breakdown": baseline.breakdown(), "project_breakdown": project.breakdown()}


def combined(a: Measured, b: Measured) -> Measured:
    return Measured(*(x + y for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b))))


def compare(clip: Clip, cache: Path, device: str, pps: float, voice_heads: int,
            parts: tuple[str, ...] = ("faces", "voice"), precision: str = "auto") -> dict:
    runtime = make_runtime(device, precision)
    face_crop, voice_clip = warm_up_inputs(clip)
    measured: dict[str, tuple[Measured, Measured]] = {}
    if "faces" in parts:
        log("faces: project")
        project = ProjectFaces(cache, runtime)
        project.warm_up(face_crop)
        project_faces = project.run(clip, pps)
        del project
        release()
        log("faces: baseline")
        peer = PeerFaces(cache, runtime.device)
        peer.score(face_crop)
        measured["faces"] = (peer.run(clip, pps), project_faces)
        del peer
        release()
    if "voice" in parts:
        scale = VOICE_HEADS / voice_heads
        log("voice: project")
        project = ProjectVoice(cache, runtime, voice_heads)
        project.warm_up(voice_clip)
        project_voice = project.run(clip).heads_scaled(scale)
        del project
        release()
        log("voice: baseline")
        peer = PeerVoice(cache, runtime.device, head_count=voice_heads)
        peer.score(voice_clip)
        measured["voice"] = (peer.run(clip).heads_scaled(scale), project_voice)
        del peer
        release()
    rows = {name: row(clip, *pair) for name, pair in measured.items()}
    if len(measured) == 2:
        (bf, pf), (bv, pv) = measured["faces"], measured["voice"]
        rows["faces+voice"] = row(clip, combined(bf, bv), combined(pf, pv))
    overall = rows.get("faces+voice") or next(iter(rows.values()))
    return {
        "setup": {"clip_s": round(clip.duration_s, 2), "width": clip.width, "height": clip.height,
                  "pps": pps, "device": str(runtime.device), "threads": torch.get_num_threads(),
                  "project_precision": runtime.precision_name, "baseline_precision": "fp32",
                  "voice_heads_loaded": voice_heads, "voice_heads_scaled_to": VOICE_HEADS},
        "rows": rows,
        "targets": {"speedup": TARGET_SPEEDUP, "speedup_reached": overall["speedup"] >= TARGET_SPEEDUP,
                    "model_share": TARGET_MODEL_SHARE,
                    "model_share_reached": overall["project_model_share"] >= TARGET_MODEL_SHARE},
    }


def print_table(result: dict, sizes: str) -> None:
    s = result["setup"]
    print(f"{s['clip_s']:g} s {s['width']}x{s['height']} two talking faces, pps {s['pps']:g}, 5 s voice "
          f"windows; {sizes}-size random weights; {s['device']}, {s['threads']} threads; project "
          f"{s['project_precision']}, baseline {s['baseline_precision']}")
    print(f"{'':14}{'baseline s/min':>16}{'project s/min':>15}{'speed-up':>10}{'(CPU time)':>12}"
          f"{'project models':>16}{'baseline models':>17}{'items b/p':>11}")
    for name, r in result["rows"].items():
        print(f"{name:14}{r['baseline_s_per_video_minute']:16.2f}{r['project_s_per_video_minute']:15.2f}"
              f"{r['speedup']:9.2f}x{r['speedup_cpu_time']:11.2f}x{100 * r['project_model_share']:15.1f}%"
              f"{100 * r['baseline_model_share']:16.1f}%{r['baseline_items']:>6}/{r['project_items']}")
    t = result["targets"]
    overall = result["rows"].get("faces+voice") or next(iter(result["rows"].values()))
    print(f"targets: speed-up >= {t['speedup']:g}x: {'reached' if t['speedup_reached'] else 'NOT reached'} "
          f"({overall['speedup']:.2f}x); models >= {100 * t['model_share']:.0f} % of the project's time: "
          f"{'reached' if t['model_share_reached'] else 'NOT reached'} ({100 * overall['project_model_share']:.1f} %)")
    if "voice" in result["rows"]:
        print(f"voice: {s['voice_heads_loaded']} of the {s['voice_heads_scaled_to']} Voice-Small heads were "
              f"loaded (55 real-size heads are 16 GB in fp32); the time measured inside them is scaled by "
              f"{s['voice_heads_scaled_to']}/{s['voice_heads_loaded']} on both sides")
    print("s/min: wall seconds per minute of video; speed-up: of wall time (CPU time: of the process's CPU "
          "seconds, steadier when other work shares the cores); models: share of the wall time inside the "
          "SigLIP tower / Whisper encoder and the heads; items: faces or segments scored")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=24.0, help="clip length (default 24)")
    parser.add_argument("--pps", type=float, default=1.0, help="sampled frames per second (default 1)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--voice-heads", type=int, default=8,
                        help="real-size voice heads loaded (default 8 of 55; time scaled to 55)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--precision", default="auto",
                        help="the project's precision: auto (its default: fp32 on a CPU, bf16 on a GPU), "
                             "fp32, bf16 or fp16; the baseline is always fp32")
    parser.add_argument("--size", choices=sorted(SIZES), default="real",
                        help="real (default) or tiny (the tests' replica sizes, for a smoke run)")
    parser.add_argument("--parts", default="faces,voice", help="faces,voice (default), faces or voice")
    parser.add_argument("--work", type=Path,
                        help="keep the replica hub and media here and reuse them (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args(argv)
    if not 1 <= args.voice_heads <= VOICE_HEADS:
        parser.error(f"--voice-heads must be 1..{VOICE_HEADS}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if threads := os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(threads))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        log(f"media and weights in {work}")
        clip = make_clip(work / "media", args.seconds, args.width, args.height)
        cache = build_hub(work / "hub", SIZES[args.size], args.voice_heads)
        result = compare(clip, cache, args.device, args.pps, args.voice_heads, tuple(args.parts.split(",")),
                         args.precision)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["setup"]["sizes"] = args.size
    print_table(result, args.size)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
