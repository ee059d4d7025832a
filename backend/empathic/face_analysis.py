"""Video (or image) in, face tracks with LAION emotion scores out.

decode samples -> detect -> crop -> SigLIP preprocessing as each frame arrives; embedding and
heads run on batches of faces from several frames; tracks are assigned in time order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .faces.crop import crop_face
from .faces.detect import Detection, DetectorOptions, FaceDetector, make_detector
from .faces.quality import sharpness
from .faces.track import FaceTracker, TrackerOptions
from .media import FrameTimeline, VideoInfo, plan_samples, probe, sample_frames
from .models.face import FaceEmotionModel
from .prefetch import prefetch
from .progress import ProgressHook
from .results import FaceAnalysis, FaceObservation, FrameRecord


@dataclass(frozen=True)
class FaceAnalysisOptions:
    pps: float = 1.0  # sampled frames per second of video
    detector: str = "haar"  # haar | none | path of a YuNet .onnx file
    detection: DetectorOptions = field(default_factory=DetectorOptions)
    crop_margin: float = 0.2  # fraction of the face size added on each side of the crop
    tracking: TrackerOptions = field(default_factory=TrackerOptions)
    # Frames decoded, detected and preprocessed ahead of the models in a background thread
    # (0 = all in the caller's thread). Bounds memory: each holds its face crops at 384 x 384.
    prefetch_frames: int = 8

    def __post_init__(self):
        if not self.pps > 0:
            raise ValueError(f"pps must be > 0, got {self.pps}")
        if self.crop_margin < 0:
            raise ValueError(f"crop margin must be >= 0, got {self.crop_margin}")

    def as_parameters(self) -> tuple[tuple[str, object], ...]:
        # prefetch_frames changes speed, never results: it is not an analysis parameter
        flat = {"pps": self.pps, "detector": self.detector, "crop_margin": self.crop_margin}
        flat.update(asdict(self.detection))
        flat.update({f"tracking_{k}": v for k, v in asdict(self.tracking).items()})
        return tuple(flat.items())


@dataclass
class PreparedFrame:
    """A sampled frame after detection and preprocessing, waiting for the models."""

    record: FrameRecord
    detections: list[Detection]
    pixels: torch.Tensor | None  # the crops, preprocessed for SigLIP; None without a face
    sharpness: list[float]


def prepare_frame(rgb: np.ndarray, record: FrameRecord, detector: FaceDetector, model: FaceEmotionModel,
                  crop_margin: float) -> PreparedFrame:
    """Detection, crops and SigLIP preprocessing of one frame: the CPU side, model-free."""
    detections = detector.detect(rgb)
    crops = [crop_face(rgb, d.box, crop_margin) for d in detections]
    return PreparedFrame(record, detections, model.preprocess(crops) if crops else None,
                         [round(sharpness(c), 3) for c in crops])


def score_frames(frames: list[PreparedFrame], model: FaceEmotionModel,
                 tracker: FaceTracker) -> list[FaceObservation]:
    """Embeds and scores the faces of these frames in batches, then tracks them in time order."""
    batch_size = model.runtime.batch_size
    pixel_batches = [p.pixels for p in frames if p.pixels is not None]
    if pixel_batches:
        pixels = torch.cat(pixel_batches)
        embeddings = np.concatenate([model.embed(pixels[i:i + batch_size])
                                     for i in range(0, len(pixels), batch_size)])
        scored = model.score(embeddings)
    else:
        embeddings, scored = np.zeros((0, 0), np.float32), []
    faces: list[FaceObservation] = []
    offset = 0
    for item in frames:
        count = len(item.detections)
        boxes = [d.box for d in item.detections]
        track_ids = tracker.assign(item.record.time_s, boxes, embeddings[offset:offset + count]) if count else []
        for j, detection in enumerate(item.detections):
            emotions, dimensions = scored[offset + j]
            faces.append(FaceObservation(
                sample_index=item.record.sample_index, frame_index=item.record.frame_index,
                time_s=item.record.time_s, box=detection.box,
                detection_confidence=detection.confidence, track_id=track_ids[j],
                emotions=emotions, dimensions=dimensions, sharpness=item.sharpness[j]))
        offset += count
    return faces


def _media_dict(info: VideoInfo) -> dict:
    return {"path": info.path, "file_name": Path(info.path).name, "width": info.width,
            "height": info.height, "frame_count": info.frame_count,
            "duration_s": round(info.duration_s, 6), "average_fps": round(info.average_fps, 6),
            "is_image": info.is_image, "codec": info.codec}


def analyze_faces(path: str | Path, model: FaceEmotionModel,
                  options: FaceAnalysisOptions = FaceAnalysisOptions(),
                  hook: ProgressHook | None = None,
                  probed: tuple[VideoInfo, FrameTimeline] | None = None,
                  detector: FaceDetector | None = None) -> FaceAnalysis:
    """``probed`` and ``detector`` let a caller check the input and the detector before loading
    models; by default they are made here from ``path`` and ``options``."""
    info, timeline = probed or probe(path)
    total = len(plan_samples(timeline.times_s, timeline.end_s, options.pps))
    detector = detector or make_detector(options.detector, options.detection)
    tracker = FaceTracker(options.tracking)
    batch_size = model.runtime.batch_size
    frames: list[FrameRecord] = []
    faces: list[FaceObservation] = []
    pending: list[PreparedFrame] = []

    def flush() -> None:
        faces.extend(score_frames(pending, model, tracker))
        pending.clear()

    def prepared() -> Iterator[PreparedFrame]:
        for sample in sample_frames(path, options.pps, (info, timeline)):
            height, width = sample.rgb.shape[:2]
            record = FrameRecord(sample.sample_index, sample.frame_index, sample.time_s, width, height)
            yield prepare_frame(sample.rgb, record, detector, model, options.crop_margin)

    if hook:
        hook("frames", 0, total)
    for item in prefetch(prepared(), depth=options.prefetch_frames):
        frames.append(item.record)
        pending.append(item)
        if sum(len(p.detections) for p in pending) >= batch_size:
            flush()
        if hook:
            hook("frames", len(frames), total)
    flush()
    return FaceAnalysis(media=_media_dict(info), frames=tuple(frames), faces=tuple(faces),
                        model=model.info, parameters=options.as_parameters())
