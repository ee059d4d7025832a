"""A live session: the stream is read in the calling thread, the face and voice models each run in a
thread of their own, and a one-place slot between them drops what the models cannot take in time.

Reading never waits for a model, so the input is never left unread (a camera or a UDP stream would lose
data, a TCP sender would stall) and a result is never older than about two model runs. At the end the
session holds the same result types as ``annotate`` (``FaceAnalysis``, ``VoiceAnalysis``), so every
export writes them unchanged, and a ``LiveSummary`` of rates, skips and latencies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from ..face_analysis import FaceAnalysisOptions, prepare_frame, score_frames
from ..faces.detect import FaceDetector
from ..faces.track import FaceTracker
from ..persons.evidence import snr_db
from ..persons.quality import QualityOptions
from ..results import FaceAnalysis, FaceObservation, FrameRecord, VoiceAnalysis, VoiceSegment
from ..audio import SAMPLE_RATE, window_samples
from ..segments.sliding import SlidingOptions, SpeechWindows
from ..voice_analysis import VoiceAnalysisOptions
from .events import face_event, start_event, voice_event
from .sampling import AudioRing, FrameSampler, Sample, VoiceWindow
from .slot import LatestSlot, SlotClosed
from .source import AudioIn, StreamDropped, StreamInfo, VideoIn
from .summary import LiveSummary, StreamStats

_POLL_S = 0.1  # how often an idle model thread looks whether the session is over


class Source(Protocol):
    """What a session reads: ``LiveSource``, or any iterable of the same items (tests)."""

    info: StreamInfo
    stop: threading.Event

    def __iter__(self): ...


@dataclass(frozen=True)
class LiveOptions:
    faces: FaceAnalysisOptions | None = field(default_factory=lambda: FaceAnalysisOptions(pps=2.0))
    voices: SlidingOptions | None = field(default_factory=SlidingOptions)
    top_k: int = 3  # emotions per face or window in the events
    quality: QualityOptions = field(default_factory=QualityOptions)
    waiting: int = 1  # items that may wait for each model; the older ones are skipped

    def __post_init__(self):
        if self.faces is None and self.voices is None:
            raise ValueError("a live session needs faces, voices or both")
        if not 1 <= self.top_k <= 40:
            raise ValueError(f"top_k must be between 1 and 40, got {self.top_k}")


@dataclass(frozen=True)
class LiveResult:
    face: FaceAnalysis | None
    voice: VoiceAnalysis | None
    summary: LiveSummary


@dataclass
class _Lane:
    """One model's side of the session: its slot, its results, and the error that stopped it."""

    slot: LatestSlot
    latencies: list[float] = field(default_factory=list)
    error: BaseException | None = None
    thread: threading.Thread | None = None


def session_name(source: str) -> str:
    """A file-name stem for the session's documents: the file or stream path's last part."""
    tail = source.split("://", 1)[-1].split("?", 1)[0].rstrip("/")
    stem = PurePosixPath(tail).stem if "/" in tail else ""
    return stem or "live"


class LiveSession:
    def __init__(self, options: LiveOptions, face_model=None, voice_model=None,
                 detector: FaceDetector | None = None,
                 on_event: Callable[[dict], None] | None = None):
        if options.faces is not None and (face_model is None or detector is None):
            raise ValueError("faces need a face model and a detector")
        if options.voices is not None and voice_model is None:
            raise ValueError("voices need a voice model")
        self.options = options
        self.face_model = face_model
        self.voice_model = voice_model
        self.detector = detector
        self._on_event = on_event or (lambda event: None)
        self._emit_lock = threading.Lock()
        self._frames: list[FrameRecord] = []
        self._faces: list[FaceObservation] = []
        self._segments: list[VoiceSegment] = []
        self._last_video: VideoIn | None = None  # the newest frame read, for the stream's end and size

    def _emit(self, event: dict) -> None:
        with self._emit_lock:
            self._on_event(event)

    # --- the model threads -------------------------------------------------------------------

    def _run_lane(self, lane: _Lane, handle: Callable[[object], None], stop: threading.Event) -> None:
        try:
            while True:
                try:
                    item = lane.slot.get(timeout=_POLL_S)
                except SlotClosed:
                    return
                if item is not None:
                    handle(item)
        except BaseException as error:  # handed to the reading thread, which ends the session
            lane.error = error
            stop.set()

    def _face_handler(self, lane: _Lane) -> Callable[[Sample[VideoIn]], None]:
        options = self.options.faces
        tracker = FaceTracker(options.tracking)

        def handle(sample: Sample[VideoIn]) -> None:
            rgb = sample.payload.rgb
            record = FrameRecord(sample.sample_index, sample.frame_index, sample.time_s, rgb.shape[1], rgb.shape[0])
            prepared = prepare_frame(rgb, record, self.detector, self.face_model, options.crop_margin)
            faces = score_frames([prepared], self.face_model, tracker)
            latency = time.perf_counter() - sample.payload.arrived
            self._frames.append(record)
            self._faces.extend(faces)
            lane.latencies.append(latency)
            self._emit(face_event(sample.sample_index, sample.frame_index, sample.time_s, faces, latency,
                                  self.options.top_k, self.options.quality))
        return handle

    def _voice_handler(self, lane: _Lane) -> Callable[[tuple[VoiceWindow, float]], None]:
        speech = SpeechWindows(self.options.voices)

        def handle(item: tuple[VoiceWindow, float]) -> None:
            window, arrived = item
            span, spoken = speech.speech(window.samples, window.start_s)
            segment, snr = None, 0.0
            if span is not None:
                clip = window_samples(window.samples, span.start_s, span.end_s, origin_s=window.start_s)
                raw = self.voice_model.raw_scores([clip])
                (emotions, attributes), = self.voice_model.score(raw)
                quality, = self.voice_model.audio_quality(raw)  # Voice-Plus's experts; () for the others
                segment = VoiceSegment(len(self._segments), span.start_s, span.end_s, None, emotions, attributes,
                                       audio_quality=quality)
                snr = snr_db(clip, SAMPLE_RATE)
                self._segments.append(segment)
            latency = time.perf_counter() - arrived
            lane.latencies.append(latency)
            self._emit(voice_event(window.index, (window.start_s, window.end_s), segment, spoken, snr, latency,
                                   self.options.top_k, self.options.quality))
        return handle

    # --- reading -----------------------------------------------------------------------------

    def run(self, source: Source) -> LiveResult:
        """Reads ``source`` until it ends, is stopped (``source.stop``, Ctrl-C) or drops."""
        options = self.options
        stop = source.stop
        lanes: dict[str, _Lane] = {}
        if options.faces is not None:
            lanes["face"] = _Lane(LatestSlot(options.waiting))
        if options.voices is not None:
            lanes["voice"] = _Lane(LatestSlot(options.waiting))
        handlers = {"face": self._face_handler, "voice": self._voice_handler}
        for name, lane in lanes.items():
            lane.thread = threading.Thread(target=self._run_lane, args=(lane, handlers[name](lane), stop),
                                           name=f"empathic-live-{name}", daemon=True)
        window = (options.voices.window_s, options.voices.hop_s) if options.voices else None
        self._emit(start_event(source.info, options.faces.pps if options.faces else None, window))
        for lane in lanes.values():
            lane.thread.start()
        sampler = FrameSampler(options.faces.pps) if options.faces else None
        ring = AudioRing(options.voices) if options.voices else None
        started = time.perf_counter()
        ended = "end of stream"
        try:
            ended = self._read(source, lanes, sampler, ring) or ended
        except StreamDropped as why:
            ended = f"stream dropped: {why}"
        except KeyboardInterrupt:
            ended = "stopped"
            stop.set()
        last_video = self._last_video
        if sampler is not None and last_video is not None:
            frame_s = last_video.duration_s or (1 / source.info.nominal_fps if source.info.nominal_fps else 0.0)
            for sample in sampler.finish(last_video.time_s + frame_s):
                lanes["face"].slot.put(sample)
        if ring is not None:
            for closed in ring.finish():
                lanes["voice"].slot.put((closed, time.perf_counter()))
        for lane in lanes.values():
            lane.slot.close()
        for lane in lanes.values():
            lane.thread.join()
        for lane in lanes.values():
            if lane.error is not None:
                raise lane.error
        wall = time.perf_counter() - started
        media_s = max(getattr(source, "media_s", 0.0), ring.duration_s if ring else 0.0)
        summary = LiveSummary(
            source=source.info.source, ended=ended, wall_s=wall, media_s=media_s,
            face=self._stats(lanes.get("face"), sampler.decided if sampler else 0),
            voice=self._stats(lanes.get("voice"), ring.closed if ring else 0))
        return LiveResult(self._face_analysis(source.info, media_s, summary),
                          self._voice_analysis(source.info, ring), summary)

    def _read(self, source: Iterable, lanes: dict[str, _Lane], sampler: FrameSampler | None,
              ring: AudioRing | None) -> str | None:
        stop = source.stop
        for item in source:
            if isinstance(item, VideoIn):
                self._last_video = item
                if sampler is not None:
                    for sample in sampler.push(item.frame_index, item.time_s, item):
                        lanes["face"].slot.put(sample)
            elif isinstance(item, AudioIn) and ring is not None:
                for closed in ring.extend(item.samples):
                    lanes["voice"].slot.put((closed, item.arrived))
            if stop.is_set():
                failed = [lane for lane in lanes.values() if lane.error is not None]
                return None if failed else "stopped"
        return None

    @staticmethod
    def _stats(lane: _Lane | None, offered: int) -> StreamStats | None:
        if lane is None:
            return None
        return StreamStats(offered, len(lane.latencies), lane.slot.dropped, tuple(lane.latencies))

    def _face_analysis(self, info: StreamInfo, media_s: float, summary: LiveSummary) -> FaceAnalysis | None:
        if self.options.faces is None:
            return None
        frames_received = self._last_video.frame_index + 1 if self._last_video else 0
        last_time = self._last_video.time_s if self._last_video else 0.0
        width, height = (self._frames[0].width, self._frames[0].height) if self._frames else (info.width, info.height)
        media = {"path": info.source, "file_name": session_name(info.source), "width": width, "height": height,
                 "frame_count": frames_received, "duration_s": round(media_s, 6),
                 "average_fps": round((frames_received - 1) / last_time, 6) if last_time > 0 else info.nominal_fps,
                 "is_image": False, "codec": info.codec, "live": True}
        parameters = self.options.faces.as_parameters() + (
            ("live_skipped_samples", summary.face.skipped if summary.face else 0),)
        return FaceAnalysis(media=media, frames=tuple(self._frames), faces=tuple(self._faces),
                            model=self.face_model.info, parameters=parameters)

    def _voice_analysis(self, info: StreamInfo, ring: AudioRing | None) -> VoiceAnalysis | None:
        if self.options.voices is None:
            return None
        media = {"path": info.source, "file_name": session_name(info.source),
                 "duration_s": round(ring.duration_s, 6), "sample_rate": ring.sample_rate,
                 "source_sample_rate": info.audio_sample_rate, "channels": info.audio_channels, "live": True}
        parameters = VoiceAnalysisOptions(segmentation="sliding", sliding=self.options.voices).as_parameters()
        return VoiceAnalysis(media=media, segments=tuple(self._segments), model=self.voice_model.info,
                             segmentation_mode="sliding", parameters=parameters)
