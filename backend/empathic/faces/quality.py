"""How much a face crop can be trusted, from its pixels."""

from __future__ import annotations

import cv2
import numpy as np

SHARPNESS_SIDE = 112  # crops are compared at one size, so that the measure does not grow with the face


def sharpness(rgb_crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop at SHARPNESS_SIDE px: high for a crisp face, near
    zero for a blurred or flat one (motion blur, out of focus, a face too small to show detail)."""
    if rgb_crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(rgb_crop), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
