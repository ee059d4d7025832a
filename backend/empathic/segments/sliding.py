"""Sliding windows over the last ``window_s`` seconds every ``hop_s`` seconds, speech only.

This is what ``empathic live`` scores while a stream plays (it cannot wait for the end of the
recording to cut it), and what ``annotate --segmentation sliding`` reproduces on a file, so that a live
session can be re-run offline with the same segments.

A window ends at every multiple of the hop (3, 6, 9... s) and reaches ``window_s`` back (never before
0), and a last one ends at the end of the audio when at least ``min_speech_s`` has come since the
previous end. silero-vad runs on the window's own samples (as it must live: the audio after the window
is not there yet); a window with less than ``min_speech_s`` of speech is not scored, and a scored one is
trimmed to its speech, from the first region's start to the last one's end. The clip is then padded to
30 s by the Whisper features, as the heads were trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..audio import AudioClip
from . import WHISPER_WINDOW_S, Segment
from .vad import VAD_SAMPLE_RATE, VadOptions, load_vad_model

TIME_SLACK_S = 1e-9


@dataclass(frozen=True)
class SlidingOptions:
    window_s: float = 10.0  # how far back each window reaches
    hop_s: float = 3.0  # a window every hop of media time
    min_speech_s: float = 0.5  # a window with less speech than this is not scored
    vad: VadOptions = field(default_factory=VadOptions)  # threshold, pauses and padding of the regions

    def __post_init__(self):
        if not 0 < self.window_s <= WHISPER_WINDOW_S:
            raise ValueError(f"sliding window must be in (0, {WHISPER_WINDOW_S:g}] s (one Whisper window), "
                             f"got {self.window_s}")
        if not 0 < self.hop_s:
            raise ValueError(f"sliding hop must be > 0 s, got {self.hop_s}")
        if self.min_speech_s < 0:
            raise ValueError(f"minimum speech must be >= 0 s, got {self.min_speech_s}")

    def as_parameters(self) -> tuple[tuple[str, object], ...]:
        return (("window", self.window_s), ("hop", self.hop_s), ("min_speech", self.min_speech_s),
                ("vad_threshold", self.vad.threshold), ("vad_min_silence_s", self.vad.min_silence_s),
                ("vad_speech_pad_s", self.vad.speech_pad_s))


def window_bounds(end_s: float, options: SlidingOptions) -> tuple[float, float]:
    """The window that closes at ``end_s``."""
    return max(0.0, end_s - options.window_s), end_s


def window_ends(duration_s: float, options: SlidingOptions) -> list[float]:
    """Every window's end for audio of ``duration_s``: each hop, then the end of the audio when
    enough has come after the last hop."""
    ends = []
    k = 1
    while k * options.hop_s <= duration_s + TIME_SLACK_S:
        ends.append(k * options.hop_s)
        k += 1
    last = ends[-1] if ends else 0.0
    if duration_s - last >= max(options.min_speech_s, TIME_SLACK_S) and duration_s > 0:
        ends.append(duration_s)
    return ends


class SpeechWindows:
    """Cuts one window's samples to its speech. Holds the silero model (one per thread: it keeps
    state between calls)."""

    def __init__(self, options: SlidingOptions):
        self.options = options
        self._model = None

    def speech(self, samples: np.ndarray, start_s: float) -> tuple[Segment | None, float]:
        """(the speech span of a window starting at ``start_s``, or None when it has too little
        speech; the seconds of speech found)."""
        import torch
        from silero_vad import get_speech_timestamps

        if len(samples) == 0:
            return None, 0.0
        if self._model is None:
            self._model = load_vad_model()
        o = self.options.vad
        self._model.reset_states()
        with torch.inference_mode():
            regions = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), self._model,
                threshold=o.threshold, sampling_rate=VAD_SAMPLE_RATE,
                min_silence_duration_ms=int(round(o.min_silence_s * 1000)),
                speech_pad_ms=int(round(o.speech_pad_s * 1000)))
        regions = [r for r in regions if r["end"] > r["start"]]
        spoken = sum(r["end"] - r["start"] for r in regions) / VAD_SAMPLE_RATE
        if not regions or spoken + TIME_SLACK_S < self.options.min_speech_s:
            return None, spoken
        first = regions[0]["start"] / VAD_SAMPLE_RATE
        last = min(regions[-1]["end"], len(samples)) / VAD_SAMPLE_RATE
        return Segment(start_s + first, start_s + last), spoken


class SlidingSegmenter:
    """The live segmentation applied to a whole recording."""

    def __init__(self, options: SlidingOptions = SlidingOptions()):
        self.options = options
        self._speech = SpeechWindows(options)

    def segment(self, audio: AudioClip) -> list[Segment]:
        if audio.sample_rate != VAD_SAMPLE_RATE:
            raise ValueError(f"VAD needs {VAD_SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
        found = []
        for end_s in window_ends(audio.duration_s, self.options):
            start_s, _ = window_bounds(end_s, self.options)
            span, _ = self._speech.speech(audio.window(start_s, end_s), start_s)
            if span is not None:
                found.append(span)
        return found
