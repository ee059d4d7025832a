"""Result types of the analyses: frozen dataclasses with ``to_dict()`` (JSON-ready, deterministic)."""

from __future__ import annotations

from dataclasses import dataclass

from .taxonomy import EMOTIONS_BY_ID


def _num(value: float, digits: int = 6) -> float:
    """Rounded for JSON: float32 model outputs carry no more than ~7 significant digits."""
    return round(float(value), digits)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels of the (displayed) frame: top-left corner, width, height."""

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_list(self) -> list[float]:
        return [_num(self.x, 2), _num(self.y, 2), _num(self.w, 2), _num(self.h, 2)]


@dataclass(frozen=True)
class EmotionScore:
    """One emotion head's output in LAION's terms.

    raw: the head's regression output. intensity: raw minus the neutral-face mean (face only;
    equals raw where a model has no neutral statistics). share: softmax over the 40 emotions'
    intensities, for ranking and display only; it is not a probability of presence.
    rank: 1 = largest share.
    """

    emotion_id: str
    raw: float
    intensity: float
    share: float
    rank: int

    @property
    def name(self) -> str:
        return EMOTIONS_BY_ID[self.emotion_id].name

    def to_dict(self) -> dict:
        return {"score": _num(self.share), "rank": self.rank, "intensity": _num(self.intensity),
                "raw": _num(self.raw)}


@dataclass(frozen=True)
class ModelInfo:
    modality: str
    model_size: str
    repo: str
    revision: str  # the commit actually used ("local" for a plain folder)
    requested_revision: str
    backbone_repo: str
    backbone_revision: str
    precision: str

    def to_dict(self) -> dict:
        return {"model_size": self.model_size, "repo": self.repo, "revision": self.revision,
                "requested_revision": self.requested_revision, "backbone": self.backbone_repo,
                "backbone_revision": self.backbone_revision, "precision": self.precision}


@dataclass(frozen=True)
class FrameRecord:
    """A sampled frame: where it sits in the video and its size."""

    sample_index: int
    frame_index: int
    time_s: float
    width: int
    height: int


@dataclass(frozen=True)
class FaceObservation:
    sample_index: int
    frame_index: int
    time_s: float
    box: Box
    detection_confidence: float
    track_id: int
    emotions: tuple[EmotionScore, ...]  # all 40, best first
    dimensions: tuple[tuple[str, float], ...]  # extra heads (raw), e.g. valence; empty for Face-Large

    def top(self, k: int) -> tuple[EmotionScore, ...]:
        return self.emotions[:k]

    def to_dict(self, top_k: int | None = None) -> dict:
        shown = self.emotions if top_k is None else self.emotions[:top_k]
        return {
            "sample_index": self.sample_index, "frame_index": self.frame_index,
            "time_s": _num(self.time_s), "box": self.box.to_list(),
            "detection_confidence": _num(self.detection_confidence, 4), "track_id": self.track_id,
            "emotions": {e.emotion_id: e.to_dict() for e in shown},
            "dimensions": {k: _num(v) for k, v in self.dimensions},
        }


@dataclass(frozen=True)
class FaceAnalysis:
    """Everything one face analysis of one media file produced."""

    media: dict  # path, width, height, frame_count, duration_s, average_fps, is_image
    frames: tuple[FrameRecord, ...]
    faces: tuple[FaceObservation, ...]
    model: ModelInfo
    parameters: tuple[tuple[str, object], ...]

    @property
    def track_ids(self) -> tuple[int, ...]:
        return tuple(sorted({f.track_id for f in self.faces}))

    def to_dict(self, top_k: int | None = None) -> dict:
        return {
            "media": dict(self.media),
            "model_info": self.model.to_dict(),
            "parameters": dict(self.parameters),
            "frames": [vars(f).copy() for f in self.frames],
            "faces": [f.to_dict(top_k) for f in self.faces],
        }


@dataclass(frozen=True)
class VoiceSegment:
    """One scored stretch of the recording (at most 30 s: one Whisper window)."""

    segment_index: int
    start_s: float
    end_s: float
    speaker: str | None
    emotions: tuple[EmotionScore, ...]  # all 40, best first; raw on LAION's 0-4 scale
    attributes: tuple[tuple[str, float], ...]  # the attribute heads' raw values, e.g. arousal
    transcription: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def top(self, k: int) -> tuple[EmotionScore, ...]:
        return self.emotions[:k]

    def to_dict(self, top_k: int | None = None) -> dict:
        shown = self.emotions if top_k is None else self.emotions[:top_k]
        return {
            "segment_index": self.segment_index,
            "start_time": _num(self.start_s), "end_time": _num(self.end_s),
            "speaker_id": self.speaker,
            # No neutral statistics for voice, so intensity would only repeat raw.
            "emotions": {e.emotion_id: {"score": _num(e.share), "rank": e.rank, "raw": _num(e.raw)}
                         for e in shown},
            "attributes": {k: _num(v) for k, v in self.attributes},
            "transcription": self.transcription,
        }


@dataclass(frozen=True)
class VoiceAnalysis:
    """Everything one voice analysis of one media file produced."""

    media: dict  # path, file_name, duration_s, sample_rate, channels
    segments: tuple[VoiceSegment, ...]
    model: ModelInfo
    segmentation_mode: str
    parameters: tuple[tuple[str, object], ...]
    shots_s: tuple[float, ...] = ()  # shot start times, for the scene mode

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(sorted({s.speaker for s in self.segments if s.speaker is not None}))

    def model_info(self) -> dict:
        return {**self.model.to_dict(), "segmentation_mode": self.segmentation_mode}

    def to_dict(self, top_k: int | None = None) -> dict:
        from .taxonomy import VOICE_ATTRIBUTES

        scales = {d.id: {"name": d.name, "low": d.scale.low, "high": d.scale.high,
                         "low_meaning": d.scale.low_meaning, "high_meaning": d.scale.high_meaning,
                         "neutral": d.scale.neutral}
                  for d in VOICE_ATTRIBUTES if d.scale is not None}
        document = {
            "media": dict(self.media),
            "model_info": self.model_info(),
            "parameters": dict(self.parameters),
            "attribute_scales": scales,
            "segments": [s.to_dict(top_k) for s in self.segments],
        }
        if self.shots_s:
            document["shots"] = [_num(t) for t in self.shots_s]
        return document
