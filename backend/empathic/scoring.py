"""LAION's scoring of head outputs, on plain arrays.

raw: the regression outputs. intensity: raw minus the per-head neutral mean (face; zeros for
voice). share: softmax over the 40 emotion intensities only, for ranking and display. Extra
dimensions and attributes keep their raw values and never enter the softmax. No sigmoid.
"""

from __future__ import annotations

import numpy as np

from .results import EmotionScore
from .taxonomy import EMOTION_IDS

NUM_EMOTIONS = len(EMOTION_IDS)


def softmax(values: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = values - values.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def score_rows(raw: np.ndarray, neutral: np.ndarray | None, dimension_ids: tuple[str, ...]
               ) -> list[tuple[tuple[EmotionScore, ...], tuple[tuple[str, float], ...]]]:
    """Per row of ``raw`` [N, 40 + D] (emotions in taxonomy order, then dimensions): the 40
    emotion scores best first, and the dimensions' raw values."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != NUM_EMOTIONS + len(dimension_ids):
        raise ValueError(f"expected raw scores [N, {NUM_EMOTIONS + len(dimension_ids)}], got {raw.shape}")
    emotion_raw = raw[:, :NUM_EMOTIONS]
    baseline = np.zeros(NUM_EMOTIONS) if neutral is None else np.asarray(neutral, np.float64)[:NUM_EMOTIONS]
    intensity = emotion_raw - baseline
    share = softmax(intensity, axis=1)
    rows = []
    for r in range(raw.shape[0]):
        # Stable sort: equal shares keep taxonomy order, so output never depends on chance.
        order = np.argsort(-share[r], kind="stable")
        emotions = tuple(
            EmotionScore(EMOTION_IDS[j], float(emotion_raw[r, j]), float(intensity[r, j]),
                         float(share[r, j]), rank)
            for rank, j in enumerate(order, start=1))
        dims = tuple((d, float(raw[r, NUM_EMOTIONS + i])) for i, d in enumerate(dimension_ids))
        rows.append((emotions, dims))
    return rows
