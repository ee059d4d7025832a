"""The events a live session gives out as it goes: JSON-ready dictionaries, one per face sample and one
per voice window, a ``start`` before them and a ``summary`` after them.

Every event carries its media time (seconds on the stream's clock), the wall-clock time it was made
(UTC, ISO 8601) and its latency: seconds from the media's arrival to the event.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..persons.evidence import SegmentQuality
from ..persons.quality import QualityOptions, face_quality, voice_quality
from ..results import EmotionScore, FaceObservation, VoiceSegment
from .source import StreamInfo


def wall_time() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def top_emotions(emotions: tuple[EmotionScore, ...], top_k: int) -> list[dict]:
    return [{"id": e.emotion_id, "name": e.name, "share": round(float(e.share), 4), "raw": round(float(e.raw), 4)}
            for e in emotions[:top_k]]


def start_event(info: StreamInfo, face_pps: float | None, window: tuple[float, float] | None) -> dict:
    event = {"type": "start", "source": info.source, "wall_time": wall_time(), "video": info.has_video,
             "audio": info.has_audio, "width": info.width, "height": info.height,
             "nominal_fps": round(info.nominal_fps, 3), "face": face_pps is not None, "voice": window is not None}
    if face_pps is not None:
        event["pps"] = face_pps
    if window is not None:
        event["window_s"], event["hop_s"] = window
    return event


def face_event(sample_index: int, frame_index: int, time_s: float, faces: list[FaceObservation],
               latency_s: float, top_k: int, quality: QualityOptions) -> dict:
    shown = []
    for face in faces:
        score, flags = face_quality(face, quality)
        shown.append({"track_id": face.track_id, "box": face.box.to_list(),
                      "detection_confidence": round(float(face.detection_confidence), 4),
                      "quality": score, "flags": list(flags), "top": top_emotions(face.emotions, top_k),
                      "dimensions": {k: round(float(v), 4) for k, v in face.dimensions}})
    return {"type": "face", "media_time_s": round(time_s, 6), "wall_time": wall_time(),
            "latency_s": round(latency_s, 4), "sample_index": sample_index, "frame_index": frame_index,
            "faces": shown}


def voice_event(window_index: int, window: tuple[float, float], segment: VoiceSegment | None,
                speech_s: float, snr_db: float, latency_s: float, top_k: int, quality: QualityOptions) -> dict:
    """A window with too little speech is reported too (``speech: false``), so a follower sees silence.
    Quality as in fusion (``persons.quality``): Voice-Plus's experts where the model has them, else the
    SNR estimate and the share of the segment that silero-vad found to be speech."""
    event = {"type": "voice", "media_time_s": round(window[1], 6), "wall_time": wall_time(),
             "latency_s": round(latency_s, 4), "window_index": window_index,
             "window": [round(window[0], 6), round(window[1], 6)], "speech": segment is not None,
             "speech_s": round(speech_s, 3)}
    if segment is None:
        return event
    measured = SegmentQuality(segment.segment_index, snr_db, min(1.0, speech_s / max(segment.duration_s, 1e-9)))
    score, flags = voice_quality(segment, measured, False, quality)
    event.update({"segment_index": segment.segment_index,
                  "segment": [round(segment.start_s, 6), round(segment.end_s, 6)],
                  "snr_db": round(snr_db, 2), "quality": score, "flags": list(flags),
                  "top": top_emotions(segment.emotions, top_k),
                  "attributes": {k: round(float(v), 4) for k, v in segment.attributes}})
    if segment.audio_quality:  # Voice-Plus: its audio-quality experts, on their MOS-like 1-5 scale
        event["audio_quality"] = {k: round(float(v), 4) for k, v in segment.audio_quality}
    return event
