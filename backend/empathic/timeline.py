"""Turning per-sample scores into stable time segments (pure numpy, no I/O).

A label switches on where its score reaches ``on_threshold`` and stays on until the score falls
below ``on_threshold * off_ratio`` (hysteresis: a score hovering at the threshold does not flicker
on and off); segments shorter than ``min_duration_s`` are dropped. Each sample stands for the time
from its own timestamp to the next sample of the analysis (``sample_extents``), so a face that is
missing from some samples ends its segments there, and the jitter of sampled frame times (a sample
"at 0.5 s" of a 25 fps video is the frame shown at 0.48 s) never breaks a segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import FaceAnalysis, FaceObservation


@dataclass(frozen=True)
class SmoothingOptions:
    on_threshold: float
    off_ratio: float = 0.7
    min_duration_s: float = 0.5

    def __post_init__(self):
        if not 0 < self.off_ratio <= 1:
            raise ValueError(f"off ratio must be in (0, 1], got {self.off_ratio}")
        if self.min_duration_s < 0:
            raise ValueError(f"minimum duration must be >= 0, got {self.min_duration_s}")


@dataclass(frozen=True)
class TimeSegment:
    start_s: float
    end_s: float
    mean_score: float  # over the samples inside


def sample_extents(sample_times_s: np.ndarray, end_s: float) -> np.ndarray:
    """[n, 2]: the time each sample of an analysis stands for, from its own timestamp to the next
    sample's (the last one: to ``end_s``). Pass the times of every sample, not only those where a
    face was seen, and pick the rows of a track's samples from the result."""
    times = np.asarray(sample_times_s, dtype=np.float64)
    ends = np.minimum(np.append(times[1:], end_s), end_s)
    return np.stack([times, np.maximum(ends, times)], axis=1)


def smooth(extents: np.ndarray, scores: np.ndarray, options: SmoothingOptions) -> list[TimeSegment]:
    """Segments where ``scores`` (one per sample, with its ``sample_extents`` row, in time order) is
    on, with hysteresis; a gap between two samples' extents ends a segment."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return []
    extents = np.asarray(extents, dtype=np.float64)
    off_level = options.on_threshold * options.off_ratio
    segments: list[TimeSegment] = []
    current: list[int] = []

    def close() -> None:
        if current:
            start, end = extents[current[0], 0], extents[current[-1], 1]
            if end - start + 1e-9 >= options.min_duration_s and end > start:
                segments.append(TimeSegment(float(start), float(end), float(scores[current].mean())))
            current.clear()

    for i, score in enumerate(scores):
        contiguous = not current or extents[current[-1], 1] >= extents[i, 0] - 1e-9
        if current and (not contiguous or score < off_level):
            close()
        if current or score >= options.on_threshold:
            current.append(i)
    close()
    return segments


def track_extents(face: FaceAnalysis, observations: list[FaceObservation]) -> np.ndarray:
    """[n, 2]: the time each of a track's observations stands for: from its sample to the analysis's
    next sample, seen or not (``sample_extents``), or to the end of the video."""
    extents = sample_extents(np.array([f.time_s for f in face.frames]), float(face.media["duration_s"]))
    row_of = {f.sample_index: row for row, f in enumerate(face.frames)}
    return extents[[row_of[o.sample_index] for o in observations]]
