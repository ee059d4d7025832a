"""Speech regions from silero-vad (its model ships inside the wheel: no download, runs offline)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import AudioClip
from ..progress import ProgressHook
from . import WHISPER_WINDOW_S, Segment, finalize

VAD_SAMPLE_RATE = 16000  # silero-vad runs at 8 or 16 kHz; the audio is decoded at 16 kHz


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5  # speech probability above which a 32 ms frame counts as speech
    min_silence_s: float = 0.5  # pauses shorter than this stay inside one segment
    speech_pad_s: float = 0.1  # added on both sides of each region, so word edges are kept
    min_duration_s: float = 0.5  # shorter regions are dropped
    max_duration_s: float = WHISPER_WINDOW_S  # longer ones are split, at a pause where possible

    def __post_init__(self):
        if not 0 < self.threshold < 1:
            raise ValueError(f"VAD threshold must be between 0 and 1, got {self.threshold}")
        for name in ("min_silence_s", "speech_pad_s", "min_duration_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"VAD {name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.max_duration_s <= WHISPER_WINDOW_S:
            raise ValueError(f"maximum segment duration must be in (0, {WHISPER_WINDOW_S:g}] s, "
                             f"got {self.max_duration_s}")


VAD_CHUNK_SAMPLES = 512  # silero scores 32 ms chunks at 16 kHz


def load_vad_model():
    import warnings

    from silero_vad import load_silero_vad

    # silero ships a TorchScript file and reads it with a legacy importlib call: both warn.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


def speech_probabilities(audio: AudioClip, model=None) -> np.ndarray:
    """silero-vad's speech probability of every 32 ms chunk of the audio (float32, from t = 0)."""
    import torch

    if audio.sample_rate != VAD_SAMPLE_RATE:
        raise ValueError(f"VAD needs {VAD_SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
    if len(audio.samples) == 0:
        return np.zeros(0, dtype=np.float32)
    model = model or load_vad_model()
    model.reset_states()
    with torch.inference_mode():
        probabilities = model.audio_forward(torch.from_numpy(np.ascontiguousarray(audio.samples)), VAD_SAMPLE_RATE)
    return probabilities.reshape(-1).numpy().astype(np.float32)


class VadSegmenter:
    def __init__(self, options: VadOptions = VadOptions(),
                 hook: ProgressHook | None = None):
        self.options = options
        self.hook = hook
        self._model = None

    def _load(self):
        if self._model is None:
            self._model = load_vad_model()
        return self._model

    def segment(self, audio: AudioClip) -> list[Segment]:
        import torch
        from silero_vad import get_speech_timestamps

        if audio.sample_rate != VAD_SAMPLE_RATE:
            raise ValueError(f"VAD needs {VAD_SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
        if len(audio.samples) == 0:
            return []
        o = self.options
        progress = None
        if self.hook is not None:
            hook = self.hook
            progress = lambda percent: hook("vad", int(percent), 100)  # noqa: E731
        model = self._load()
        model.reset_states()  # the JIT model keeps state between calls
        with torch.inference_mode():
            regions = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(audio.samples)), model,
                threshold=o.threshold, sampling_rate=VAD_SAMPLE_RATE,
                min_silence_duration_ms=int(round(o.min_silence_s * 1000)),
                speech_pad_ms=int(round(o.speech_pad_s * 1000)),
                max_speech_duration_s=o.max_duration_s, progress_tracking_callback=progress)
        rate = float(audio.sample_rate)
        return finalize((Segment(r["start"] / rate, min(r["end"] / rate, audio.duration_s))
                         for r in regions if r["end"] > r["start"]),
                        o.min_duration_s, o.max_duration_s)
