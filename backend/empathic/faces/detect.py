"""Face detectors behind one interface: OpenCV's Haar cascade, a YuNet ONNX file, or none.

All take an RGB frame and return boxes in pixels of that frame with a confidence in [0, 1].
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..results import Box
from .haar_local import LocalHaarSearch

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_SEARCHES = ("local", "exhaustive")


@dataclass(frozen=True)
class Detection:
    box: Box
    confidence: float


@dataclass(frozen=True)
class DetectorOptions:
    confidence_threshold: float = 0.5
    min_face_size: int = 30  # pixels of the original frame, shorter box side
    detect_width: int = 1280  # wider frames are scaled down to this width for detection (speed)
    max_faces: int | None = None  # keep only the largest faces of a frame
    # Haar only. "local": a cheap pass proposes where faces may be and the full cascade runs only
    # there (haar_local.py: the same faces and boxes within a few pixels, about twice as fast);
    # "exhaustive": everywhere.
    haar_search: str = "local"

    def __post_init__(self):
        if self.haar_search not in HAAR_SEARCHES:
            raise ValueError(f"haar_search must be one of {', '.join(HAAR_SEARCHES)}, got {self.haar_search!r}")


class FaceDetector(ABC):
    name: str

    def __init__(self, options: DetectorOptions):
        self.options = options

    @abstractmethod
    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        """Raw detections of one frame."""

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detections above the thresholds, largest first."""
        o = self.options
        kept = [d for d in self._detect(rgb)
                if d.confidence >= o.confidence_threshold and min(d.box.w, d.box.h) >= o.min_face_size]
        kept.sort(key=lambda d: (-d.box.area, d.box.x, d.box.y))
        return kept[: o.max_faces] if o.max_faces else kept

    def _scale_for(self, rgb: np.ndarray) -> float:
        width = rgb.shape[1]
        return min(1.0, self.options.detect_width / width) if self.options.detect_width else 1.0


class WholeFrameDetector(FaceDetector):
    """The whole frame is the face: LAION's own input, for videos of pre-cropped faces."""

    name = "none"

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        return [Detection(Box(0.0, 0.0, float(rgb.shape[1]), float(rgb.shape[0])), 1.0)]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self._detect(rgb)  # no size or confidence filter: the frame is always kept


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade.

    Haar gives no probability; the last stage's weight (> 0 for accepted windows, larger for
    clearer faces) is squashed with a logistic so that ``confidence_threshold`` works on the same
    0..1 scale as other detectors (0.5 = every face the cascade accepts).
    """

    name = "haar"

    def __init__(self, options: DetectorOptions, scale_factor: float = 1.1, min_neighbors: int = 5):
        super().__init__(options)
        import cv2

        self._cv2 = cv2
        path = Path(cv2.data.haarcascades) / HAAR_CASCADE
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV's {HAAR_CASCADE} did not load (is opencv-python-headless 4.x installed?)")
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self._local = (LocalHaarSearch(path, scale_factor, min_neighbors)
                       if options.haar_search == "local" else None)

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        cv2 = self._cv2
        scale = self._scale_for(rgb)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)),
                              interpolation=cv2.INTER_AREA)
        min_side = max(20, int(self.options.min_face_size * scale))
        if self._local is not None:
            boxes, weights = self._local.detect(gray, min_side)
        else:
            boxes, _, weights = self._cascade.detectMultiScale3(
                gray, scaleFactor=self._scale_factor, minNeighbors=self._min_neighbors,
                minSize=(min_side, min_side), outputRejectLevels=True)
        found = []
        for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            confidence = 1.0 / (1.0 + math.exp(-float(weight)))
            found.append(Detection(Box(float(x / scale), float(y / scale), float(w / scale), float(h / scale)),
                                   confidence))
        return found


class YuNetDetector(FaceDetector):
    """OpenCV's YuNet CNN (cv2.FaceDetectorYN) from an ONNX file the user provides."""

    name = "yunet"

    def __init__(self, options: DetectorOptions, model_path: Path, nms_threshold: float = 0.3):
        super().__init__(options)
        import cv2

        self._cv2 = cv2
        if not model_path.is_file():
            raise FileNotFoundError(f"YuNet model file not found: {model_path}")
        try:
            # The score threshold is applied by detect(); YuNet itself keeps everything above 0.01.
            self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), 0.01, nms_threshold, 5000)
        except cv2.error as exc:
            raise ValueError(f"{model_path}: not a YuNet ONNX model ({str(exc).strip().splitlines()[-1]})") from None
        self.model_path = model_path

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        cv2 = self._cv2
        scale = self._scale_for(rgb)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self._net.detect(bgr)
        if faces is None:
            return []
        return [Detection(Box(*(float(v / scale) for v in f[:4])), float(f[14]))
                for f in faces]


def make_detector(spec: str, options: DetectorOptions = DetectorOptions()) -> FaceDetector:
    """``haar``, ``none`` or the path of a YuNet ``.onnx`` file."""
    if spec == "haar":
        return HaarDetector(options)
    if spec == "none":
        return WholeFrameDetector(options)
    if spec.lower().endswith(".onnx"):
        return YuNetDetector(options, Path(spec))
    raise ValueError(f"unknown detector {spec!r}: use haar, none, or the path of a YuNet .onnx file")
