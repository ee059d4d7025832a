"""Audio (or a video's sound) in, scored voice segments out.

decode once at 16 kHz -> segment (fixed | vad | diarization | scene | sliding) -> batches of segments ->
Whisper features -> encoder -> fused heads -> LAION scores (and, optionally, a transcript).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .audio import AudioClip, decode_audio
from .models.voice import SEGMENTS_PER_HEAD_PASS, VoiceEmotionModel
from .progress import ProgressHook
from .results import VoiceAnalysis, VoiceSegment
from .segments import Segment, Segmenter
from .segments.diarization import DiarizationOptions, DiarizationSegmenter
from .segments.fixed import FixedSegmenter, WindowOptions
from .segments.scene import SceneSegmenter, ShotOptions
from .segments.sliding import SlidingOptions, SlidingSegmenter
from .segments.vad import VadOptions, VadSegmenter

SEGMENTATION_MODES = ("fixed", "vad", "diarization", "scene", "sliding")


@dataclass(frozen=True)
class VoiceAnalysisOptions:
    segmentation: str = "fixed"
    windows: WindowOptions = field(default_factory=WindowOptions)  # fixed, and inside scene shots
    vad: VadOptions = field(default_factory=VadOptions)
    diarization: DiarizationOptions = field(default_factory=DiarizationOptions)
    shots: ShotOptions = field(default_factory=ShotOptions)  # cut detection, for scene
    sliding: SlidingOptions = field(default_factory=SlidingOptions)  # the live windows, for sliding

    def __post_init__(self):
        if self.segmentation not in SEGMENTATION_MODES:
            raise ValueError(f"unknown segmentation {self.segmentation!r}; choose one of "
                             f"{', '.join(SEGMENTATION_MODES)}")

    def as_parameters(self) -> tuple[tuple[str, object], ...]:
        """Only what shapes this mode's result (what a cache key and an output must record)."""
        mode = self.segmentation
        flat: dict[str, object] = {"segmentation": mode}
        if mode in ("fixed", "scene"):
            flat.update({"pps": self.windows.pps, "segment_overlap": self.windows.overlap_s,
                         "min_segment_duration": self.windows.min_duration_s,
                         "max_segment_duration": self.windows.max_duration_s})
        if mode == "vad":
            flat.update({f"vad_{k}": v for k, v in asdict(self.vad).items()})
        if mode == "diarization":
            flat.update({f"diarization_{k}": v for k, v in asdict(self.diarization).items()})
        if mode == "scene":
            flat.update({f"scene_{k}": v for k, v in asdict(self.shots).items()})
        if mode == "sliding":
            flat.update({f"sliding_{k}": v for k, v in self.sliding.as_parameters()})
        return tuple(flat.items())


def make_segmenter(options: VoiceAnalysisOptions, media_path: str | Path | None = None,
                   sources=None, device: str = "cpu", hook: ProgressHook | None = None) -> Segmenter:
    mode = options.segmentation
    if mode == "fixed":
        return FixedSegmenter(options.windows)
    if mode == "vad":
        return VadSegmenter(options.vad, hook=hook)
    if mode == "sliding":
        return SlidingSegmenter(options.sliding)
    if mode == "diarization":
        return DiarizationSegmenter(options.diarization, sources=sources, device=device, hook=hook)
    if media_path is None:
        raise ValueError("scene segmentation needs the video file")
    return SceneSegmenter(media_path, options.windows, options.shots, hook=hook)


def _media_dict(audio: AudioClip) -> dict:
    return {"path": audio.source, "file_name": Path(audio.source).name if audio.source else "",
            "duration_s": round(audio.duration_s, 6), "sample_rate": audio.sample_rate,
            "source_sample_rate": audio.source_sample_rate, "channels": audio.source_channels}


def analyze_voice(path: str | Path, model: VoiceEmotionModel,
                  options: VoiceAnalysisOptions = VoiceAnalysisOptions(),
                  hook: ProgressHook | None = None, audio: AudioClip | None = None,
                  segmenter: Segmenter | None = None, transcriber=None) -> VoiceAnalysis:
    """``audio`` and ``segmenter`` let a caller decode and check before loading models;
    ``transcriber`` (models.asr.Transcriber) adds each segment's text."""
    audio = audio if audio is not None else decode_audio(path)
    segmenter = segmenter or make_segmenter(options, path, device=str(model.runtime.device), hook=hook)
    segments: list[Segment] = segmenter.segment(audio)
    group_size = max(SEGMENTS_PER_HEAD_PASS, model.runtime.batch_size)
    scored: list[VoiceSegment] = []
    encoded = 0

    def report(count: int) -> None:
        nonlocal encoded
        encoded += count
        if hook:
            hook("segments", encoded, len(segments))

    if hook:
        hook("segments", 0, len(segments))
    for first in range(0, len(segments), group_size):
        group = segments[first:first + group_size]
        clips = [audio.window(s.start_s, s.end_s) for s in group]
        raw = model.raw_scores(clips, on_encoded=report)
        rows, qualities = model.score(raw), model.audio_quality(raw)
        texts = [None] * len(group)
        if transcriber is not None:
            texts = transcriber.transcribe(clips)
            if hook:
                hook("transcripts", first + len(group), len(segments))
        for offset, (segment, (emotions, attributes), text, quality) in enumerate(zip(group, rows, texts, qualities)):
            scored.append(VoiceSegment(first + offset, segment.start_s, segment.end_s, segment.speaker,
                                       emotions, attributes, text, quality))
    parameters = options.as_parameters()
    if transcriber is not None:
        info = transcriber.info
        parameters += (("transcription_model", info.repo), ("transcription_revision", info.revision),
                       ("transcription_language", info.language or "auto"))
    if options.segmentation == "diarization" and callable(getattr(segmenter, "info", None)):
        parameters += (("diarization_revision", segmenter.info().get("revision")),)
    shots = tuple(getattr(segmenter, "shots_s", ()) or ())
    return VoiceAnalysis(media=_media_dict(audio), segments=tuple(scored), model=model.info,
                         segmentation_mode=options.segmentation, parameters=parameters, shots_s=shots)
