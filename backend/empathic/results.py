"""Result types of the analyses: frozen dataclasses with ``to_dict()`` (JSON-ready, deterministic).

``to_cache()`` / ``from_cache()`` are the other serialisation: lossless, for the result cache.
``to_dict()`` rounds for people and exports; a cached result must come back equal to the computed one,
so the cache document keeps every float as it is (JSON writes Python's shortest exact repr).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .taxonomy import EMOTIONS_BY_ID


def _num(value: float, digits: int = 6) -> float:
    """Rounded for JSON: float32 model outputs carry no more than ~7 significant digits."""
    return round(float(value), digits)


CACHE_FORMAT = 1
"""Version of the cache document; bump it whenever its layout changes (old entries become misses)."""

# Emotions are most of a cached result (40 per face or segment), so each is a positional row:
# [emotion_id, raw, intensity, share, rank]. Field names per emotion would double the size.
def _emotions_to_cache(emotions: tuple[EmotionScore, ...]) -> list[list]:
    return [[e.emotion_id, float(e.raw), float(e.intensity), float(e.share), int(e.rank)]
            for e in emotions]


def _emotions_from_cache(rows: list) -> tuple[EmotionScore, ...]:
    emotions = tuple(EmotionScore(str(i), float(raw), float(intensity), float(share), int(rank))
                     for i, raw, intensity, share, rank in rows)
    unknown = [e.emotion_id for e in emotions if e.emotion_id not in EMOTIONS_BY_ID]
    if unknown:
        raise ValueError(f"unknown emotion ids {unknown}")
    return emotions


def _named_floats_to_cache(pairs: tuple[tuple[str, float], ...]) -> list[list]:
    return [[k, float(v)] for k, v in pairs]


def _named_floats_from_cache(rows: list) -> tuple[tuple[str, float], ...]:
    return tuple((str(k), float(v)) for k, v in rows)


def _value_to_cache(value: object) -> object:
    # JSON has no tuple: a list in the document always stands for a tuple in the result, so a list
    # here could not come back equal (and has no place in frozen parameters anyway).
    if isinstance(value, tuple):
        return [_value_to_cache(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot cache a parameter value of type {type(value).__name__}: {value!r}")


def _value_from_cache(value: object) -> object:
    return tuple(_value_from_cache(v) for v in value) if isinstance(value, list) else value


def _parameters_to_cache(parameters: tuple[tuple[str, object], ...]) -> list[list]:
    return [[k, _value_to_cache(v)] for k, v in parameters]


def _parameters_from_cache(rows: list) -> tuple[tuple[str, object], ...]:
    return tuple((str(k), _value_from_cache(v)) for k, v in rows)


def _model_to_cache(model: "ModelInfo") -> dict:
    return {f.name: getattr(model, f.name) for f in fields(model)}


def _model_from_cache(document: dict) -> "ModelInfo":
    return ModelInfo(**{f.name: str(document[f.name]) for f in fields(ModelInfo)})


def _open_cache_document(document: object, kind: str) -> dict:
    if not isinstance(document, dict):
        raise ValueError(f"a cached {kind} analysis must be a JSON object, got {type(document).__name__}")
    if document.get("format") != CACHE_FORMAT:
        raise ValueError(f"cached {kind} analysis has format {document.get('format')!r}; "
                         f"this version reads format {CACHE_FORMAT}")
    if document.get("kind") != kind:
        raise ValueError(f"cached analysis is of kind {document.get('kind')!r}, expected {kind!r}")
    return document


def _from_cache_or_fail(kind: str, build, document: object):
    """Any structural fault of a document becomes one ValueError that names what was read."""
    document = _open_cache_document(document, kind)
    try:
        return build(document)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ValueError(f"corrupt cached {kind} analysis: {type(error).__name__}: {error}") from error


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
    sharpness: float | None = None  # variance of the Laplacian of the crop (faces.quality); None: not measured

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
            **({} if self.sharpness is None else {"sharpness": _num(self.sharpness, 2)}),
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

    def to_cache(self) -> dict:
        """Lossless JSON-ready document: ``FaceAnalysis.from_cache(to_cache())`` equals ``self``."""
        return {
            "format": CACHE_FORMAT, "kind": "face",
            "media": dict(self.media),
            "model": _model_to_cache(self.model),
            "parameters": _parameters_to_cache(self.parameters),
            "frames": [[int(f.sample_index), int(f.frame_index), float(f.time_s), int(f.width), int(f.height)]
                       for f in self.frames],
            "faces": [{
                "sample_index": int(f.sample_index), "frame_index": int(f.frame_index),
                "time_s": float(f.time_s),
                "box": [float(f.box.x), float(f.box.y), float(f.box.w), float(f.box.h)],
                "detection_confidence": float(f.detection_confidence), "track_id": int(f.track_id),
                "emotions": _emotions_to_cache(f.emotions),
                "dimensions": _named_floats_to_cache(f.dimensions),
                "sharpness": None if f.sharpness is None else float(f.sharpness),
            } for f in self.faces],
        }

    @classmethod
    def from_cache(cls, document: dict) -> "FaceAnalysis":
        """Raises ValueError for a document of another format or kind, or one that is damaged."""
        return _from_cache_or_fail("face", cls._build_from_cache, document)

    @classmethod
    def _build_from_cache(cls, document: dict) -> "FaceAnalysis":
        return cls(
            media=dict(document["media"]),
            frames=tuple(FrameRecord(int(s), int(f), float(t), int(w), int(h))
                         for s, f, t, w, h in document["frames"]),
            faces=tuple(FaceObservation(
                sample_index=int(f["sample_index"]), frame_index=int(f["frame_index"]),
                time_s=float(f["time_s"]), box=Box(*(float(v) for v in f["box"])),
                detection_confidence=float(f["detection_confidence"]), track_id=int(f["track_id"]),
                emotions=_emotions_from_cache(f["emotions"]),
                dimensions=_named_floats_from_cache(f["dimensions"]),
                sharpness=None if f.get("sharpness") is None else float(f["sharpness"]),
            ) for f in document["faces"]),
            model=_model_from_cache(document["model"]),
            parameters=_parameters_from_cache(document["parameters"]),
        )


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
    # Voice-Plus's audio-quality experts (raw, by id); empty for models without them. Reported
    # beside the attributes, never part of the emotion softmax.
    audio_quality: tuple[tuple[str, float], ...] = ()

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
            **({"audio_quality": {k: _num(v) for k, v in self.audio_quality}} if self.audio_quality else {}),
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

    @property
    def audio_quality_ids(self) -> tuple[str, ...]:
        """The quality experts the segments carry (Voice-Plus), in their order; () for other models."""
        return next((tuple(k for k, _ in s.audio_quality) for s in self.segments if s.audio_quality), ())

    def to_dict(self, top_k: int | None = None) -> dict:
        from .taxonomy import VOICE_ATTRIBUTES, VOICE_QUALITY_EXPERTS

        scales = {d.id: {"name": d.name, "low": d.scale.low, "high": d.scale.high,
                         "low_meaning": d.scale.low_meaning, "high_meaning": d.scale.high_meaning,
                         "neutral": d.scale.neutral}
                  for d in VOICE_ATTRIBUTES if d.scale is not None}
        document = {
            "media": dict(self.media),
            "model_info": self.model_info(),
            "parameters": dict(self.parameters),
            "attribute_scales": scales,
        }
        quality_ids = self.audio_quality_ids
        if quality_ids:
            document["audio_quality_scales"] = {
                q.id: {"name": q.name, "distilled_from": q.distilled_from, "nominal_low": q.nominal_range[0],
                       "nominal_high": q.nominal_range[1], "higher_is_better": True}
                for q in VOICE_QUALITY_EXPERTS if q.id in quality_ids}
        document["segments"] = [s.to_dict(top_k) for s in self.segments]
        if self.shots_s:
            document["shots"] = [_num(t) for t in self.shots_s]
        return document

    def to_cache(self) -> dict:
        """Lossless JSON-ready document: ``VoiceAnalysis.from_cache(to_cache())`` equals ``self``."""
        return {
            "format": CACHE_FORMAT, "kind": "voice",
            "media": dict(self.media),
            "model": _model_to_cache(self.model),
            "segmentation_mode": self.segmentation_mode,
            "parameters": _parameters_to_cache(self.parameters),
            "shots_s": [float(t) for t in self.shots_s],
            "segments": [{
                "segment_index": int(s.segment_index), "start_s": float(s.start_s),
                "end_s": float(s.end_s), "speaker": s.speaker,
                "emotions": _emotions_to_cache(s.emotions),
                "attributes": _named_floats_to_cache(s.attributes),
                "transcription": s.transcription,
                **({"audio_quality": _named_floats_to_cache(s.audio_quality)} if s.audio_quality else {}),
            } for s in self.segments],
        }

    @classmethod
    def from_cache(cls, document: dict) -> "VoiceAnalysis":
        """Raises ValueError for a document of another format or kind, or one that is damaged."""
        return _from_cache_or_fail("voice", cls._build_from_cache, document)

    @classmethod
    def _build_from_cache(cls, document: dict) -> "VoiceAnalysis":
        def optional_text(value: object) -> str | None:
            return None if value is None else str(value)

        return cls(
            media=dict(document["media"]),
            segments=tuple(VoiceSegment(
                segment_index=int(s["segment_index"]), start_s=float(s["start_s"]),
                end_s=float(s["end_s"]), speaker=optional_text(s["speaker"]),
                emotions=_emotions_from_cache(s["emotions"]),
                attributes=_named_floats_from_cache(s["attributes"]),
                transcription=optional_text(s["transcription"]),
                audio_quality=_named_floats_from_cache(s.get("audio_quality", [])),
            ) for s in document["segments"]),
            model=_model_from_cache(document["model"]),
            segmentation_mode=str(document["segmentation_mode"]),
            parameters=_parameters_from_cache(document["parameters"]),
            shots_s=tuple(float(t) for t in document["shots_s"]),
        )
