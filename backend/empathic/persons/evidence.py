"""What linking and fusion read from the media, gathered once and cached beside the analyses.

- Mouth motion: for every face track, inside every voice segment (plus a little context for the
  lag search), frames are decoded at ``motion_rate_hz``; the lower part of the track's face box
  (interpolated between the sampled frames where the face was seen) is cut from the frame and the
  one before it, in grey, at one fixed size, and their mean absolute difference is the motion
  energy of that instant. Only the previous frame is held, never the decoded stretch.
- Speech envelope: the RMS of the 16 kHz sound in 20 ms windows every 10 ms, for the whole file.
- Voice quality per segment: an SNR estimate (the loud frames' level over the quiet frames') and
  silero-vad's mean speech probability over the segment.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from ..audio import AudioClip
from ..media import FrameTimeline, VideoInfo, iter_frames, probe
from ..progress import ProgressHook
from ..results import Box, FaceAnalysis, FaceObservation, VoiceAnalysis
from ..segments.vad import VAD_CHUNK_SAMPLES, speech_probabilities


ENVELOPE_RATE_HZ = 100.0  # envelope values per second
ENVELOPE_WINDOW_S = 0.02
QUALITY_FRAME_S = 0.02  # frames of the per-segment SNR estimate
EVIDENCE_FORMAT = 1


@dataclass(frozen=True)
class EvidenceOptions:
    motion_rate_hz: float = 12.5  # dense frames per second inside voice segments
    context_s: float = 0.3  # decoded before and after each segment (lag search, first difference)
    mouth_width: int = 32  # the mouth region is resized to this many pixels before differencing
    mouth_height: int = 16
    min_face_px: float = 60.0  # faces smaller than this (box height) are never judged: too few mouth pixels
    max_gap_s: float = 2.5  # a track's box is interpolated across at most this gap between sightings

    def __post_init__(self):
        if not 0 < self.motion_rate_hz <= 60:
            raise ValueError(f"motion rate must be in (0, 60] frames per second, got {self.motion_rate_hz}")
        if self.context_s < 0 or self.min_face_px < 0 or self.max_gap_s < 0:
            raise ValueError("context, minimum face size and maximum gap must be >= 0")

    def as_parameters(self) -> tuple[tuple[str, object], ...]:
        return (("motion_rate_hz", self.motion_rate_hz), ("context_s", self.context_s),
                ("mouth_size", [self.mouth_width, self.mouth_height]), ("min_face_px", self.min_face_px),
                ("max_gap_s", self.max_gap_s))


@dataclass(frozen=True, eq=False)
class TrackMotion:
    track_id: int
    times_s: np.ndarray  # float64: the middle of each pair of frames compared
    energy: np.ndarray  # float32: mean absolute grey-level change of the mouth region (0-255 scale)


@dataclass(frozen=True)
class SegmentQuality:
    segment_index: int
    snr_db: float  # the loud frames' level (90th percentile) over the quiet frames' (10th percentile)
    speech_probability: float  # silero-vad's speech probability, averaged over the segment's 32 ms chunks


@dataclass(frozen=True, eq=False)
class AudioVisualEvidence:
    motions: tuple[TrackMotion, ...]
    envelope: np.ndarray  # float32 RMS every 1/ENVELOPE_RATE_HZ s from 0
    segment_quality: tuple[SegmentQuality, ...]
    parameters: tuple[tuple[str, object], ...] = field(default=())

    def motion_of(self, track_id: int) -> TrackMotion | None:
        return next((m for m in self.motions if m.track_id == track_id), None)

    @cached_property
    def _envelope_times(self) -> np.ndarray:
        # Made once: the linker asks for the envelope many times per segment and lag.
        return np.arange(len(self.envelope)) / ENVELOPE_RATE_HZ

    def envelope_at(self, times_s: np.ndarray) -> np.ndarray:
        """The speech envelope at any instants (linear interpolation; 0 outside the recording)."""
        return np.interp(times_s, self._envelope_times, self.envelope, left=0.0, right=0.0)

    def quality_of(self, segment_index: int) -> SegmentQuality | None:
        return next((q for q in self.segment_quality if q.segment_index == segment_index), None)

    def to_cache(self) -> dict:
        return {"format": EVIDENCE_FORMAT, "kind": "evidence",
                "parameters": [[k, v] for k, v in self.parameters],
                "envelope": _pack(self.envelope, np.float32),
                "motions": [{"track_id": m.track_id, "times_s": _pack(m.times_s, np.float64),
                             "energy": _pack(m.energy, np.float32)} for m in self.motions],
                "segment_quality": [[q.segment_index, q.snr_db, q.speech_probability]
                                    for q in self.segment_quality]}

    @classmethod
    def from_cache(cls, document: dict) -> "AudioVisualEvidence":
        try:
            if document.get("format") != EVIDENCE_FORMAT or document.get("kind") != "evidence":
                raise ValueError("not an evidence document of this format")
            return cls(
                motions=tuple(TrackMotion(int(m["track_id"]), _unpack(m["times_s"], np.float64),
                                          _unpack(m["energy"], np.float32)) for m in document["motions"]),
                envelope=_unpack(document["envelope"], np.float32),
                segment_quality=tuple(SegmentQuality(int(i), float(s), float(r))
                                      for i, s, r in document["segment_quality"]),
                parameters=tuple((k, v) for k, v in document["parameters"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"damaged evidence document: {exc}") from None


def _pack(values: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def _unpack(text: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


def speech_envelope(audio: AudioClip) -> np.ndarray:
    """RMS of the sound in ENVELOPE_WINDOW_S windows centred every 1/ENVELOPE_RATE_HZ s."""
    rate = audio.sample_rate
    hop, half = int(round(rate / ENVELOPE_RATE_HZ)), int(round(rate * ENVELOPE_WINDOW_S / 2))
    samples = np.asarray(audio.samples, dtype=np.float64)
    count = int(np.ceil(len(samples) / hop)) if len(samples) else 0
    squares = np.concatenate([[0.0], np.cumsum(samples ** 2)])
    centres = np.arange(count) * hop
    first, last = np.clip(centres - half, 0, len(samples)), np.clip(centres + half, 0, len(samples))
    sums = squares[last] - squares[first]
    return np.sqrt(sums / np.maximum(last - first, 1)).astype(np.float32)


def segment_quality(audio: AudioClip, voice: VoiceAnalysis,
                    probabilities: np.ndarray | None = None) -> tuple[SegmentQuality, ...]:
    """``probabilities``: silero's per-chunk speech probabilities of the whole audio (computed here
    when not given)."""
    if probabilities is None:
        probabilities = speech_probabilities(audio)
    chunk_s = VAD_CHUNK_SAMPLES / audio.sample_rate
    qualities = []
    for segment in voice.segments:
        first, last = int(segment.start_s / chunk_s), int(np.ceil(segment.end_s / chunk_s))
        speech = float(probabilities[first:last].mean()) if last > first and first < len(probabilities) else 0.0
        snr = snr_db(audio.window(segment.start_s, segment.end_s), audio.sample_rate)
        qualities.append(SegmentQuality(segment.segment_index, round(snr, 3), round(speech, 4)))
    return tuple(qualities)


def snr_db(samples: np.ndarray, sample_rate: int) -> float:
    """The loud frames' level (90th percentile) over the quiet frames' (10th), in dB, over frames of
    QUALITY_FRAME_S; 0 for a clip too short to tell."""
    frame = int(round(sample_rate * QUALITY_FRAME_S))
    samples = np.asarray(samples, dtype=np.float64)
    count = len(samples) // frame
    if count < 2:
        return 0.0
    power = (samples[:count * frame].reshape(count, frame) ** 2).mean(axis=1)
    level_db = 10 * np.log10(power + 1e-12)
    return float(np.percentile(level_db, 90) - np.percentile(level_db, 10))


def track_box_at(sightings: list[FaceObservation], times: np.ndarray, time_s: float,
                 max_gap_s: float) -> Box | None:
    """The track's box at ``time_s``: linear between the two sightings around it (at most
    ``max_gap_s`` apart), the nearest sighting within half a gap at either end, else None.
    ``times``: the sightings' times, made once per track (this runs for every decoded frame)."""
    k = int(np.searchsorted(times, time_s, side="right"))
    before = sightings[k - 1] if k > 0 else None
    after = sightings[k] if k < len(sightings) else None
    if before is not None and after is not None and after.time_s - before.time_s <= max_gap_s:
        span = after.time_s - before.time_s
        w = 0.0 if span <= 0 else (time_s - before.time_s) / span
        a, b = before.box, after.box
        return Box(a.x + w * (b.x - a.x), a.y + w * (b.y - a.y), a.w + w * (b.w - a.w), a.h + w * (b.h - a.h))
    for near in (before, after):
        if near is not None and abs(near.time_s - time_s) <= max_gap_s / 2:
            return near.box
    return None


def mouth_region(box: Box) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of the mouth: the lower third of the face box, the middle 60 % of its width."""
    return (box.x + 0.2 * box.w, box.y + 0.62 * box.h, box.x + 0.8 * box.w, box.y + 0.95 * box.h)


def _mouth_patch(grey: np.ndarray, box: Box, options: EvidenceOptions) -> np.ndarray | None:
    height, width = grey.shape
    x0, y0, x1, y1 = mouth_region(box)
    x0, y0 = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
    x1, y1 = int(min(width, np.ceil(x1))), int(min(height, np.ceil(y1)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    patch = cv2.resize(grey[y0:y1, x0:x1], (options.mouth_width, options.mouth_height),
                       interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32)


def dense_frame_plan(timeline: FrameTimeline, voice: VoiceAnalysis, options: EvidenceOptions) -> list[int]:
    """Frame indices inside the voice segments (with context), about ``motion_rate_hz`` per second."""
    times = timeline.times_s
    if len(times) < 2:
        return []
    chosen: set[int] = set()
    step_s = 1.0 / options.motion_rate_hz
    for segment in voice.segments:
        start, end = segment.start_s - options.context_s, segment.end_s + options.context_s
        targets = np.arange(max(0.0, start), min(end, timeline.end_s), step_s)
        indices = np.searchsorted(times, targets + 1e-6, side="right") - 1
        chosen.update(int(i) for i in indices if i >= 0)
    return sorted(chosen)


def mouth_motion(path: str | Path, face: FaceAnalysis, voice: VoiceAnalysis,
                 options: EvidenceOptions = EvidenceOptions(),
                 probed: tuple[VideoInfo, FrameTimeline] | None = None,
                 hook: ProgressHook | None = None) -> tuple[TrackMotion, ...]:
    """Mouth motion energy of every face track large enough to judge, inside the voice segments."""
    info, timeline = probed or probe(path)
    tracks: dict[int, list[FaceObservation]] = {}
    for observation in face.faces:
        tracks.setdefault(observation.track_id, []).append(observation)
    sighting_times = {t: np.array([o.time_s for o in sightings]) for t, sightings in tracks.items()}
    plan = dense_frame_plan(timeline, voice, options) if tracks else []
    times: dict[int, list[float]] = {t: [] for t in tracks}
    energy: dict[int, list[float]] = {t: [] for t in tracks}
    previous: tuple[int, float, np.ndarray] | None = None  # frame index, time, grey picture
    longest_step = 1.5 / options.motion_rate_hz + 1e-6
    if hook:
        hook("mouth motion", 0, len(plan))
    for done, (index, rgb) in enumerate(iter_frames(path, plan, timeline), start=1):
        time_s = float(timeline.times_s[index])
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if previous is not None and time_s - previous[1] <= longest_step:
            middle = (time_s + previous[1]) / 2
            for track_id, sightings in tracks.items():
                box = track_box_at(sightings, sighting_times[track_id], middle, options.max_gap_s)
                if box is None or box.h < options.min_face_px:
                    continue
                now, before = _mouth_patch(grey, box, options), _mouth_patch(previous[2], box, options)
                if now is None or before is None:
                    continue
                times[track_id].append(middle)
                energy[track_id].append(float(np.abs(now - before).mean()))
        previous = (index, time_s, grey)
        if hook and (done % 25 == 0 or done == len(plan)):
            hook("mouth motion", done, len(plan))
    return tuple(TrackMotion(t, np.asarray(times[t], np.float64), np.asarray(energy[t], np.float32))
                 for t in sorted(tracks) if times[t])


def gather_evidence(path: str | Path, face: FaceAnalysis, voice: VoiceAnalysis, audio: AudioClip,
                    options: EvidenceOptions = EvidenceOptions(),
                    probed: tuple[VideoInfo, FrameTimeline] | None = None,
                    hook: ProgressHook | None = None) -> AudioVisualEvidence:
    return AudioVisualEvidence(
        motions=mouth_motion(path, face, voice, options, probed=probed, hook=hook),
        envelope=speech_envelope(audio), segment_quality=segment_quality(audio, voice),
        parameters=options.as_parameters())
