"""Scene mode: the video's shots (hard cuts), then fixed windows inside each shot.

A voice segment then never straddles a cut, so a segment's sound belongs to one shot.

Shot detection follows PySceneDetect's ContentDetector: every frame is scaled down, converted to
HSV (OpenCV's scales: hue 0-179, saturation and value 0-255) and compared with the frame before;
the score is the mean absolute difference of the three channels, averaged. A cut is declared where
the score reaches the threshold and the current shot has lasted at least the minimum duration.

Hue is compared on the colour circle (hue 179 and hue 0 are both red, 1 step apart, not 179).
Without that, noise in red areas that flips the hue between ~0 and ~179 scores like a change of
colour across the whole picture and can fake a cut; for every pair of hues that does not cross red
the difference is PySceneDetect's own, so its threshold keeps its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..audio import AudioClip
from ..media import MediaError, _open, _reason
from ..progress import ProgressHook
from . import Segment
from .fixed import WindowOptions, fixed_windows

HOOK_EVERY_FRAMES = 250  # progress is reported every this many decoded frames
HUE_STEPS = 180  # OpenCV's 8-bit hue: degrees / 2


@dataclass(frozen=True)
class ShotOptions:
    # PySceneDetect's ContentDetector default: 27 on the same HSV score (0-255 channels), tuned there
    # on real footage; motion inside a shot scores well below it, hard cuts well above.
    threshold: float = 27.0
    min_shot_duration_s: float = 0.6  # a cut sooner than this after the last one is ignored (flashes)
    analysis_width: int = 160  # frames are scaled to this width before comparing: fast, noise-robust

    def __post_init__(self):
        if not 0 < self.threshold <= 255:
            raise ValueError(f"shot threshold must be in (0, 255], got {self.threshold}")
        if not self.min_shot_duration_s >= 0:
            raise ValueError(f"minimum shot duration must be >= 0, got {self.min_shot_duration_s}")
        if isinstance(self.analysis_width, bool) or not isinstance(self.analysis_width, int) \
                or self.analysis_width < 8:
            raise ValueError(f"shot analysis width must be an integer >= 8 pixels, got {self.analysis_width}")


def _small_size(width: int, height: int, analysis_width: int) -> tuple[int, int]:
    """The analysis size: ``analysis_width`` wide (never wider than the video), same aspect."""
    if width <= analysis_width:
        return width, height
    return analysis_width, max(1, int(round(height * analysis_width / width)))


def _hsv(reformatter, frame, size: tuple[int, int]) -> np.ndarray:
    import cv2

    # One reformatter for the whole stream: frame.reformat builds a new scaler per frame, and that
    # set-up costs more than the scaling (5x slower at 720p).
    small = reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24",
                                 interpolation="AREA")
    return cv2.cvtColor(small.to_ndarray(), cv2.COLOR_RGB2HSV)


def content_score(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute HSV difference of two frames (H on the colour circle), channels averaged."""
    delta = np.abs(current.astype(np.int16) - previous.astype(np.int16))
    hue = delta[..., 0]
    hue = np.minimum(hue, HUE_STEPS - hue)
    return float((hue.mean() + delta[..., 1].mean() + delta[..., 2].mean()) / 3.0)


def detect_shots(path: str | Path, options: ShotOptions = ShotOptions(),
                 hook: ProgressHook | None = None) -> list[float]:
    """Start times of the video's shots, in seconds from the video stream start (0.0 first).

    A cut's time is the presentation time of the first frame of the new shot, on the same time
    base as ``media.FrameTimeline.times_s``. Frames are decoded in order and dropped once
    compared: memory stays bounded whatever the length.
    """
    import av
    from av.video.reformatter import VideoReformatter

    path = Path(path)
    reformatter = VideoReformatter()
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream; scene segmentation needs a video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = Fraction(stream.time_base) if stream.time_base else None
        rate = float(stream.average_rate or 0) or 25.0
        total = int(stream.frames) if stream.frames else None
        shots = [0.0]
        origin = stream.start_time
        previous = None
        size = None
        count = 0
        last_time = None
        if hook:
            hook("shots", 0, total)
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and time_base is not None:
                    if origin is None:
                        origin = frame.pts
                    time_s = float((frame.pts - origin) * time_base)
                else:  # no timestamps: count frames at the average rate
                    time_s = (last_time + 1.0 / rate) if last_time is not None else 0.0
                last_time = time_s
                if size is None:
                    size = _small_size(frame.width, frame.height, options.analysis_width)
                current = _hsv(reformatter, frame, size)
                if (previous is not None and time_s > shots[-1]
                        and time_s - shots[-1] >= options.min_shot_duration_s - 1e-9):
                    if content_score(previous, current) >= options.threshold:
                        shots.append(time_s)
                previous = current
                count += 1
                if hook and count % HOOK_EVERY_FRAMES == 0:
                    hook("shots", count, total)
        except MediaError:
            raise
        except (av.FFmpegError, ValueError) as exc:  # not the hook's own errors (a cancellation)
            raise MediaError(f"{path}: decoding the video failed ({_reason(exc)})") from None
    if count == 0:
        raise MediaError(f"{path}: the video stream has no frames")
    if hook:
        hook("shots", count, count)
    return shots


class SceneSegmenter:
    """Fixed windows (``windows``) inside each shot of ``video_path``; the shots are found once."""

    def __init__(self, video_path: str | Path, windows: WindowOptions = WindowOptions(),
                 shots: ShotOptions = ShotOptions(), hook: ProgressHook | None = None):
        self.video_path = Path(video_path)
        self.windows = windows
        self.shot_options = shots
        self.hook = hook
        self._shots: list[float] | None = None

    def shots(self) -> list[float]:
        """Shot start times in seconds (detected on first use, then cached)."""
        if self._shots is None:
            self._shots = detect_shots(self.video_path, self.shot_options, self.hook)
        return list(self._shots)

    @property
    def shots_s(self) -> tuple[float, ...]:
        """The shots found so far (empty before ``segment`` or ``shots`` ran), for the output."""
        return tuple(self._shots or ())

    def segment(self, audio: AudioClip) -> list[Segment]:
        end = audio.duration_s
        starts = [s for s in self.shots() if s < end - 1e-9]
        segments: list[Segment] = []
        for index, start in enumerate(starts):
            stop = starts[index + 1] if index + 1 < len(starts) else end
            segments.extend(fixed_windows(start, min(stop, end), self.windows))
        return segments
