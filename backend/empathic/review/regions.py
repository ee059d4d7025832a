"""What annotators (or the model) marked on one task, independent of Label Studio's JSON: face
tracks as keyframed boxes, time spans with labels, and labels for the whole clip.

Boxes are in percent of the frame (Label Studio's unit), frames are 1-based at the editor's frame
rate. ``track_boxes`` plays a track the way Label Studio's video editor does (VideoRegion and
VideoRectangleRegion in web/libs/editor, the same in the 1.23.2 bundle):

- a frame with a keyframe shows that keyframe's box;
- between two keyframes the box moves linearly from one to the next;
- after the last keyframe the box stays where it is;
- before the first keyframe there is no box;
- the box is shown when the last keyframe at or before the frame is enabled, or is that very
  frame (a disabled keyframe still shows on its own frame and ends the track after it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Keyframe:
    frame: int  # 1-based
    x: float  # percent of the frame width, top-left corner
    y: float
    width: float
    height: float
    enabled: bool = True


@dataclass(frozen=True)
class Track:
    """A VideoRectangle region with the labels its per-region controls gave it."""

    region_id: str
    control: str
    keyframes: tuple[Keyframe, ...]
    labels: tuple[str, ...] = ()  # from the Labels the rectangle carries
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (per-region control, chosen labels)
    origin: str | None = None  # Label Studio's: prediction, prediction-changed, manual
    meta_text: str | None = None

    @property
    def first_frame(self) -> int:
        return min(k.frame for k in self.keyframes)

    def all_labels(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(control, labels) pairs: the rectangle's own labels, then each per-region control's."""
        own = ((self.control, self.labels),) if self.labels else ()
        return own + self.choices


@dataclass(frozen=True)
class Span:
    """A region with a start and an end in seconds: an audio segment or a timeline range."""

    region_id: str
    control: str
    start_s: float
    end_s: float
    labels: tuple[str, ...]
    kind: str = "audio"  # audio | timeline
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    numbers: tuple[tuple[str, float], ...] = ()
    text: str | None = None  # a per-region TextArea (the transcript)
    origin: str | None = None
    meta_text: str | None = None  # the speaker or person the region names
    frames: tuple[int, int] | None = None  # timeline ranges: the 1-based inclusive frames

    def all_labels(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return ((self.control, self.labels),) + self.choices


@dataclass(frozen=True)
class RegionSet:
    """Everything one annotation (or one prediction) holds for one task."""

    tracks: tuple[Track, ...] = ()
    spans: tuple[Span, ...] = ()
    clip_choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (control, chosen labels)
    fps: float | None = None  # the editor's frame rate, where the task has a video
    frames_count: int | None = None
    duration_s: float | None = None
    annotator: str | None = None
    source_id: int | None = None  # the annotation's or prediction's id in Label Studio
    extra: tuple[tuple[str, object], ...] = field(default=())

    def timeline(self) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.kind == "timeline")

    def audio(self) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.kind == "audio")


def track_boxes(track: Track, frames_count: int) -> np.ndarray:
    """(frames_count, 4) boxes x, y, width, height in percent for frames 1..frames_count; NaN
    where the editor shows no box."""
    boxes = np.full((frames_count, 4), np.nan)
    keys = sorted(track.keyframes, key=lambda k: k.frame)
    if not keys or frames_count < 1:
        return boxes
    frames = np.arange(1, frames_count + 1)
    key_frames = np.array([k.frame for k in keys], dtype=np.float64)
    values = np.array([[k.x, k.y, k.width, k.height] for k in keys], dtype=np.float64)
    for column in range(4):
        # np.interp holds the end values outside the keyframes, as the editor does after the last one.
        boxes[:, column] = np.interp(frames, key_frames, values[:, column])
    previous = np.searchsorted(key_frames, frames, side="right") - 1  # last keyframe at or before
    enabled = np.array([k.enabled for k in keys])
    shown = previous >= 0
    shown[shown] = enabled[previous[shown]] | (key_frames[previous[shown]] == frames[shown])
    boxes[~shown] = np.nan
    return boxes


def track_lifespan(track: Track, frames_count: int) -> np.ndarray:
    """A boolean per frame 1..frames_count: whether the editor shows the track there."""
    return ~np.isnan(track_boxes(track, frames_count)[:, 0])
