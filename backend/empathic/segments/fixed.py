"""Fixed windows: one segment every 1/pps seconds (pps 0.2 = 5 s windows), optionally overlapping."""

from __future__ import annotations

from dataclasses import dataclass

from ..audio import AudioClip
from . import WHISPER_WINDOW_S, Segment, finalize


@dataclass(frozen=True)
class WindowOptions:
    pps: float = 0.2  # segments per second: the window is 1/pps seconds long
    overlap_s: float = 0.0  # seconds shared by consecutive windows
    min_duration_s: float = 1.0  # shorter pieces are merged into the window before, or dropped
    max_duration_s: float = WHISPER_WINDOW_S  # longer windows are split into equal parts

    def __post_init__(self):
        if not self.pps > 0:
            raise ValueError(f"pps must be > 0, got {self.pps}")
        if not 0 <= self.overlap_s < self.window_s:
            raise ValueError(f"segment overlap must be >= 0 and shorter than the {self.window_s:g} s "
                             f"window, got {self.overlap_s}")
        if self.min_duration_s < 0:
            raise ValueError(f"minimum segment duration must be >= 0, got {self.min_duration_s}")
        if not 0 < self.max_duration_s <= WHISPER_WINDOW_S:
            raise ValueError(f"maximum segment duration must be in (0, {WHISPER_WINDOW_S:g}] s (one "
                             f"Whisper window), got {self.max_duration_s}")

    @property
    def window_s(self) -> float:
        return 1.0 / self.pps


def fixed_windows(start_s: float, end_s: float, options: WindowOptions,
                  speaker: str | None = None) -> list[Segment]:
    """Windows of ``options.window_s`` from ``start_s`` on, the last one ending at ``end_s``.

    A last piece shorter than the minimum joins the window before it (so the end of the recording
    is never dropped) unless that would exceed the maximum duration.
    """
    step = options.window_s - options.overlap_s
    windows: list[list[float]] = []
    k = 0
    while True:
        a = start_s + k * step
        if a >= end_s - 1e-9:
            break
        b = min(a + options.window_s, end_s)
        windows.append([a, b])
        if b >= end_s - 1e-9:
            break
        k += 1
    if len(windows) > 1 and windows[-1][1] - windows[-1][0] < options.min_duration_s:
        tail = windows.pop()
        if tail[1] - windows[-1][0] <= options.max_duration_s:
            windows[-1][1] = tail[1]
        else:
            windows.append(tail)
    return finalize((Segment(a, b, speaker) for a, b in windows),
                    options.min_duration_s, options.max_duration_s)


class FixedSegmenter:
    def __init__(self, options: WindowOptions = WindowOptions()):
        self.options = options

    def segment(self, audio: AudioClip) -> list[Segment]:
        return fixed_windows(0.0, audio.duration_s, self.options)
