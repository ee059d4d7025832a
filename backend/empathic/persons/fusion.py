"""Face and voice emotions of one person, fused where both exist (pure numpy over the analyses).

Only the shares are fused (the softmax over the 40 emotions both models share): raw scores and
intensities keep their own scales (faces 0-7, voices 0-4) and stay per modality. Over a stretch of
time, each modality's shares are the mean of its samples or segments weighted by how much of the
stretch each stands for, and its quality the same mean of their qualities (``quality``). The fused
shares are

    fused = (w_face * face_shares + w_voice * voice_shares) / (w_face + w_voice)
    w_face = face_weight * face quality,   w_voice = voice_weight * voice quality

(the plain mean where both weights are 0; one modality alone where the other is absent). A
conflict is flagged where both modalities reach ``conflict_min_quality`` and they disagree: a
different top emotion, or a Jensen-Shannon divergence (base 2, 0..1) of at least
``conflict_divergence``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..results import FaceObservation, VoiceSegment
from ..taxonomy import EMOTION_IDS
from .evidence import AudioVisualEvidence
from .quality import QualityOptions, face_quality, voice_quality

_EPS = 1e-12


@dataclass(frozen=True)
class FusionOptions:
    grid_s: float = 1.0  # the fused timeline's cells
    face_weight: float = 1.0  # prior trust in each modality, times its quality
    voice_weight: float = 1.0
    conflict_min_quality: float = 0.5
    conflict_divergence: float = 0.15
    quality: QualityOptions = field(default_factory=QualityOptions)

    def __post_init__(self):
        if not self.grid_s > 0:
            raise ValueError(f"fusion grid must be > 0 s, got {self.grid_s}")
        if self.face_weight < 0 or self.voice_weight < 0:
            raise ValueError("modality weights must be >= 0")
        if not 0 <= self.conflict_divergence <= 1:
            raise ValueError(f"conflict divergence must be in [0, 1], got {self.conflict_divergence}")


@dataclass(frozen=True, eq=False)
class ModalityView:
    """One modality of one person over a stretch of time."""

    shares: np.ndarray  # [40] in EMOTION_IDS order
    quality: float  # 0..1
    weight: float  # what fusion gave it
    covered_s: float  # seconds of the stretch its samples or segments stand for
    flags: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class FusedStretch:
    person_id: str
    start_s: float
    end_s: float
    face: ModalityView | None
    voice: ModalityView | None
    fused: np.ndarray  # [40]
    conflict: bool
    segment_index: int | None = None  # set for the per-segment fusion


def share_vector(emotions) -> np.ndarray:
    by_id = {e.emotion_id: e.share for e in emotions}
    return np.array([by_id.get(emotion_id, 0.0) for emotion_id in EMOTION_IDS], dtype=np.float64)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p / max(p.sum(), _EPS), q / max(q.sum(), _EPS)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / np.maximum(m[mask], _EPS))).sum())

    return min(1.0, max(0.0, (kl(p) + kl(q)) / 2))


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def face_view(observations: list[FaceObservation], extents: np.ndarray, start_s: float, end_s: float,
              options: QualityOptions) -> ModalityView | None:
    """The track's samples whose extents overlap [start_s, end_s), weighted by that overlap."""
    weights, shares, qualities, flags = [], [], [], []
    # Found at once over the whole track: this runs for every cell of an hour-long timeline.
    extents = np.asarray(extents, dtype=np.float64).reshape(-1, 2)
    covered = np.minimum(extents[:, 1], end_s) - np.maximum(extents[:, 0], start_s)
    for index in np.flatnonzero(covered > 0):
        observation = observations[index]
        quality, why = face_quality(observation, options)
        weights.append(float(covered[index]))
        shares.append(share_vector(observation.emotions))
        qualities.append(quality)
        flags.extend(why)
    return _view(weights, shares, qualities, flags)


def voice_view(segments: list[VoiceSegment], evidence: AudioVisualEvidence | None, overlapped: set[int],
               start_s: float, end_s: float, options: QualityOptions) -> ModalityView | None:
    weights, shares, qualities, flags = [], [], [], []
    for segment in segments:
        covered = _overlap(segment.start_s, segment.end_s, start_s, end_s)
        if covered <= 0:
            continue
        measured = evidence.quality_of(segment.segment_index) if evidence is not None else None
        quality, why = voice_quality(segment, measured, segment.segment_index in overlapped, options)
        weights.append(covered)
        shares.append(share_vector(segment.emotions))
        qualities.append(quality)
        flags.extend(why)
    return _view(weights, shares, qualities, flags)


def _view(weights, shares, qualities, flags) -> ModalityView | None:
    if not weights:
        return None
    w = np.asarray(weights, dtype=np.float64)
    mean_shares = (np.asarray(shares) * w[:, None]).sum(axis=0) / w.sum()
    quality = float((np.asarray(qualities) * w).sum() / w.sum())
    return ModalityView(mean_shares, round(quality, 4), 0.0, round(float(w.sum()), 6),
                        tuple(dict.fromkeys(flags)))


def fuse(person_id: str, start_s: float, end_s: float, face: ModalityView | None, voice: ModalityView | None,
         options: FusionOptions, segment_index: int | None = None) -> FusedStretch | None:
    if face is None and voice is None:
        return None
    w_face = options.face_weight * face.quality if face is not None else 0.0
    w_voice = options.voice_weight * voice.quality if voice is not None else 0.0
    if face is not None and voice is not None:
        if w_face + w_voice > 0:
            fused = (w_face * face.shares + w_voice * voice.shares) / (w_face + w_voice)
        else:
            fused = (face.shares + voice.shares) / 2
    else:
        fused = (face or voice).shares.copy()
    conflict = bool(
        face is not None and voice is not None
        and min(face.quality, voice.quality) >= options.conflict_min_quality
        and (int(np.argmax(face.shares)) != int(np.argmax(voice.shares))
             or js_divergence(face.shares, voice.shares) >= options.conflict_divergence))
    total = w_face + w_voice

    def weighted(view: ModalityView | None, w: float) -> ModalityView | None:
        if view is None:
            return None
        share = (w / total) if total > 0 else (0.5 if face is not None and voice is not None else 1.0)
        return ModalityView(view.shares, view.quality, round(share, 4), view.covered_s, view.flags)

    return FusedStretch(person_id, start_s, end_s, weighted(face, w_face), weighted(voice, w_voice), fused,
                        conflict, segment_index)
