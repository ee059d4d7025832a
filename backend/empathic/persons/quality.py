"""How far each face sample and each voice segment can be trusted: a quality in 0..1 and flags.

Face: size (box height against ``face_full_px``) x sharpness (variance of the Laplacian of the crop
against ``sharpness_full``) x detection confidence. Voice: SNR estimate (against ``snr_full_db``) x
silero-vad's mean speech probability (against ``speech_full_probability``), and 0 where another
speaker's segment overlaps it. Each factor is clipped to 0..1; the flags name the reasons a reviewer should
look twice.

Where the voice model is Voice-Plus, its own experts replace the SNR and speech-probability estimate:
speech quality x background quality, each mapped from LAION's MOS-like scale (about 1-5, higher is
better; distilled from DNSMOS) onto 0..1 between ``expert_floor`` and ``expert_full``. They listen to
the segment as the emotion heads do, through the same encoder, where the SNR estimate only measures
levels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..results import FaceObservation, VoiceAnalysis, VoiceSegment
from .evidence import SegmentQuality

OVERLAP_MIN_S = 0.1  # two speakers' segments sharing less than this do not count as overlapped speech


@dataclass(frozen=True)
class QualityOptions:
    face_full_px: float = 120.0  # a face box this tall or taller has full size quality
    small_face_px: float = 60.0  # flag small_face below this height
    sharpness_full: float = 120.0  # Laplacian variance (crop at 112 px) for full sharpness quality
    blurred_below: float = 25.0  # flag blurred_face below this
    snr_full_db: float = 25.0
    low_snr_db: float = 10.0  # flag low_snr below this
    speech_full_probability: float = 0.6
    little_speech_below: float = 0.3  # flag little_speech below this mean speech probability
    # Voice-Plus experts (MOS-like, about 1-5): at or below the floor a factor is 0, at or above full it is 1.
    expert_floor: float = 1.0
    expert_full: float = 4.0
    low_expert_quality_below: float = 2.5  # flag low_speech_quality / noisy_background below this

    def __post_init__(self):
        for name in ("face_full_px", "sharpness_full", "snr_full_db", "speech_full_probability"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.expert_full > self.expert_floor:
            raise ValueError(f"expert_full ({self.expert_full}) must be above expert_floor ({self.expert_floor})")


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def face_quality(observation: FaceObservation, options: QualityOptions) -> tuple[float, tuple[str, ...]]:
    height = observation.box.h
    flags = []
    size = _clip01(height / options.face_full_px)
    if height < options.small_face_px:
        flags.append("small_face")
    sharp = 1.0
    if observation.sharpness is not None:
        sharp = _clip01(observation.sharpness / options.sharpness_full)
        if observation.sharpness < options.blurred_below:
            flags.append("blurred_face")
    return round(size * sharp * _clip01(observation.detection_confidence), 4), tuple(flags)


def overlapped_segments(voice: VoiceAnalysis) -> set[int]:
    """Segments that share at least OVERLAP_MIN_S with a segment of another (known) speaker."""
    found: set[int] = set()
    segments = [s for s in voice.segments if s.speaker is not None]
    for i, a in enumerate(segments):
        for b in segments[i + 1:]:
            if a.speaker != b.speaker and min(a.end_s, b.end_s) - max(a.start_s, b.start_s) >= OVERLAP_MIN_S:
                found.update((a.segment_index, b.segment_index))
    return found


EXPERTS_FOR_VOICE_QUALITY = ("speech_quality", "background_quality")  # Voice-Plus ids (taxonomy)


def _expert_factor(value: float, options: QualityOptions) -> float:
    return _clip01((value - options.expert_floor) / (options.expert_full - options.expert_floor))


def voice_quality(segment: VoiceSegment, measured: SegmentQuality | None, overlapped: bool,
                  options: QualityOptions) -> tuple[float, tuple[str, ...]]:
    flags = []
    if overlapped:
        flags.append("overlapped_speech")
    quality = 0.0 if overlapped else 1.0
    experts = dict(segment.audio_quality)
    if all(e in experts for e in EXPERTS_FOR_VOICE_QUALITY):
        speech, background = (experts[e] for e in EXPERTS_FOR_VOICE_QUALITY)
        if speech < options.low_expert_quality_below:
            flags.append("low_speech_quality")
        if background < options.low_expert_quality_below:
            flags.append("noisy_background")
        quality *= _expert_factor(speech, options) * _expert_factor(background, options)
    elif measured is not None:
        if measured.snr_db < options.low_snr_db:
            flags.append("low_snr")
        if measured.speech_probability < options.little_speech_below:
            flags.append("little_speech")
        quality *= _clip01(measured.snr_db / options.snr_full_db) * _clip01(
            measured.speech_probability / options.speech_full_probability)
    return round(quality, 4), tuple(flags)
