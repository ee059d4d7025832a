"""Cutting a face out of a frame for the embedding model."""

from __future__ import annotations

import numpy as np

from ..results import Box


def crop_box(box: Box, frame_width: int, frame_height: int, margin: float) -> tuple[int, int, int, int]:
    """A square around the face, grown by ``margin`` x its size on every side, clipped to the frame.

    Square because the SigLIP processor squashes every input to 384 x 384: a square crop keeps the
    face's proportions (LAION's training faces are undistorted portraits).
    """
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0 = int(round(max(0.0, cx - side / 2.0)))
    y0 = int(round(max(0.0, cy - side / 2.0)))
    x1 = int(round(min(float(frame_width), cx + side / 2.0)))
    y1 = int(round(min(float(frame_height), cy + side / 2.0)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def crop_face(rgb: np.ndarray, box: Box, margin: float) -> np.ndarray:
    x0, y0, x1, y1 = crop_box(box, rgb.shape[1], rgb.shape[0], margin)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])
