"""Reading video (and still images) as a stream of sampled RGB frames, by presentation time.

Samples are taken at t = k / pps seconds. The sample for t is the frame being displayed at t: the
last frame whose presentation time is <= t. Frame indices count frames in presentation order from
0, as a player steps through them; they come from the container's packet timestamps, so variable
frame rate files get exact indices and no fps arithmetic is involved.

Decoding is sequential and streamed (memory stays bounded on hours of video). Where the next
wanted frame lies beyond the next keyframe, a seek to that keyframe skips the frames in between.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

TIME_TOLERANCE_S = 1e-6  # far below any frame duration, far above floating-point error
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class MediaError(ValueError):
    """The input cannot be used: missing, unreadable, not a video, no frames."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    frame_count: int
    duration_s: float  # end of the last frame's display interval
    average_fps: float
    is_image: bool = False
    codec: str = ""


@dataclass(frozen=True)
class FrameTimeline:
    """Presentation times of every frame, in presentation order, and where the keyframes are."""

    times_s: np.ndarray  # float64 [frame_count], relative to the stream start
    pts: np.ndarray  # int64 [frame_count], in the stream time base
    keyframe_pts: np.ndarray  # int64, sorted
    end_s: float


@dataclass(frozen=True, eq=False)
class SampledFrame:
    sample_index: int  # 0-based position in the sample sequence
    frame_index: int  # 0-based frame number in presentation order
    time_s: float  # presentation time of that frame
    rgb: np.ndarray  # [height, width, 3] uint8, RGB


def plan_samples(times_s: np.ndarray, end_s: float, pps: float) -> list[int]:
    """Frame indices shown at t = 0, 1/pps, 2/pps, ... < end_s; each frame listed once, in order.

    A target before the first frame takes the first frame (players show it from t = 0).
    """
    if pps <= 0:
        raise ValueError(f"pps must be > 0, got {pps}")
    if len(times_s) == 0:
        return []
    chosen: list[int] = []
    k = 0
    while True:
        target = k / pps
        if target >= end_s and k > 0:
            break
        # A microsecond of slack: k / pps and a frame's pts * time_base can land one ulp apart
        # (7 / 5 < 35 * 512 / 12800 in floating point), which would pick the frame before.
        index = max(0, int(np.searchsorted(times_s, target + TIME_TOLERANCE_S, side="right")) - 1)
        if not chosen or chosen[-1] != index:
            chosen.append(index)
        k += 1
    return chosen


def _open(path: Path):
    import av

    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a media file")
    try:
        return av.open(str(path))
    except Exception as exc:
        raise MediaError(f"{path}: not a readable media file ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise MediaError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _timeline_from_packets(container, stream) -> FrameTimeline | None:
    """Demux (no decoding) to list every frame's pts; None when the container has no pts."""
    pts: list[int] = []
    keys: list[int] = []
    last_duration = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the flush packet at the end
        if packet.pts is None:
            return None
        if packet.is_discard:
            continue  # before the edit list's start: decoded for reference, never shown
        pts.append(packet.pts)
        if packet.is_keyframe:
            keys.append(packet.pts)
        last_duration = packet.duration or last_duration
    return _timeline(stream, pts, keys, last_duration)


def _timeline_from_decoding(container, stream) -> FrameTimeline:
    pts: list[int] = []
    keys: list[int] = []
    for frame in container.decode(stream):
        if frame.pts is None:
            raise ValueError("frames carry no timestamps")
        pts.append(frame.pts)
        if frame.key_frame:
            keys.append(frame.pts)
    return _timeline(stream, pts, keys, 0)


def _timeline(stream, pts: list[int], keys: list[int], last_duration: int) -> FrameTimeline:
    order = np.sort(np.asarray(pts, dtype=np.int64))
    if len(order) == 0:
        return FrameTimeline(np.zeros(0), order, np.zeros(0, np.int64), 0.0)
    time_base = Fraction(stream.time_base)
    origin = stream.start_time if stream.start_time is not None else int(order[0])
    times = (order - origin).astype(np.float64) * float(time_base)
    if last_duration <= 0:
        gaps = np.diff(order)
        if len(gaps):
            last_duration = int(np.median(gaps))
        elif stream.average_rate:
            last_duration = int(round(1 / (float(stream.average_rate) * float(time_base))))
        else:
            last_duration = 0
    end = float(times[-1] + last_duration * float(time_base))
    return FrameTimeline(times, order, np.unique(np.asarray(keys, dtype=np.int64)), end)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _read_image(path: Path) -> np.ndarray:
    import cv2

    if not path.exists():
        raise MediaError(f"{path}: no such file")
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies the EXIF orientation
    except cv2.error:  # OpenCV refuses pictures over its pixel limit (a header claiming a huge size)
        width, height = image_size(path)
        raise MediaError(f"{path}: a {width}x{height} picture is too large to read") from None
    if bgr is None:
        raise MediaError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_size(path: str | Path) -> tuple[int, int]:
    """A picture's width and height from its header, without decoding it and without Pillow's
    decompression-bomb refusal (the caller compares the size with its own limit); (0, 0) when no
    format reads it."""
    from PIL import Image

    Image.init()
    with open(path, "rb") as stream:
        prefix = stream.read(16)
        for name in Image.ID:
            factory, accept = Image.OPEN[name]
            if accept is not None and not accept(prefix):
                continue
            stream.seek(0)
            try:
                return tuple(factory(stream, str(path)).size)
            except Exception:  # not this format: try the next one, as Image.open does
                continue
    return 0, 0


def probe(path: str | Path) -> tuple[VideoInfo, FrameTimeline]:
    """Size, frame count and every frame's presentation time; decodes only the first picture
    (for its display rotation), the rest comes from packet timestamps."""
    path = Path(path)
    if _is_image(path):
        rgb = _read_image(path)
        info = VideoInfo(str(path), rgb.shape[1], rgb.shape[0], 1, 0.0, 0.0, is_image=True, codec="image")
        return info, FrameTimeline(np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64), 0.0)
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            timeline = _timeline_from_packets(container, stream)
            if timeline is None:
                container.seek(0)
                timeline = _timeline_from_decoding(container, stream)
            if len(timeline.pts) == 0:
                raise MediaError(f"{path}: the video stream has no frames")
            rotation = _display_rotation(container, stream)
        except MediaError:
            raise
        except Exception as exc:
            raise MediaError(f"{path}: corrupt or unreadable video ({_reason(exc)})") from None
        context = stream.codec_context
        fps = (len(timeline.pts) - 1) / timeline.times_s[-1] if timeline.times_s[-1] > 0 else (
            float(stream.average_rate or 0))
        width, height = int(context.width), int(context.height)
        if rotation in (90, 270):
            width, height = height, width
        info = VideoInfo(str(path), width, height, len(timeline.pts), timeline.end_s, float(fps),
                         codec=context.name)
    return info, timeline


def _rotation_of(frame) -> int:
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


def _display_rotation(container, stream) -> int:
    """The display rotation, read off the first frame (the only place PyAV exposes it)."""
    container.seek(0)
    for frame in container.decode(stream):
        return _rotation_of(frame)
    return 0


def frame_rgb(frame) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    # Phones store portrait video as landscape pictures plus a display rotation; players (and
    # Label Studio) show the rotated picture, so boxes must be found on that one.
    rotation = _rotation_of(frame)
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


def iter_frames(path: str | Path, frame_indices: Sequence[int], timeline: FrameTimeline,
                seek_gap_s: float = 0.0) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the given frames (sorted indices) and yield (frame index, RGB picture).

    Seeks only when the keyframe before the next wanted frame lies ahead of the decoder, and that
    keyframe is more than ``seek_gap_s`` ahead: decoding forward is cheaper below that.
    """
    path = Path(path)
    if not frame_indices:
        return
    if _is_image(path):
        yield 0, _read_image(path)
        return
    wanted_pts = [int(timeline.pts[i]) for i in frame_indices]
    index_of = {p: i for p, i in zip(wanted_pts, frame_indices)}
    keys = timeline.keyframe_pts.tolist()
    with _open(path) as container:
        stream = _video_stream(container, path)
        gap = seek_gap_s / float(stream.time_base) if stream.time_base else 0
        frames = None
        position = None  # pts of the last decoded frame
        sought = None  # keyframe of the last seek: open GOPs can decode frames before it
        next_wanted = 0
        try:
            while next_wanted < len(wanted_pts):
                target = wanted_pts[next_wanted]
                k = bisect.bisect_right(keys, target) - 1
                keyframe = keys[k] if k >= 0 else None
                ahead = (keyframe is not None and keyframe != sought and position is not None
                         and keyframe > position + gap)
                if frames is None or ahead:
                    if frames is not None or (keyframe is not None and keyframe > int(timeline.pts[0])):
                        container.seek(keyframe, stream=stream, backward=True, any_frame=False)
                        sought = keyframe
                    frames = container.decode(stream)
                    position = None
                frame = next(frames, None)
                if frame is None:
                    break  # the decoder gave out before the last packet (truncated file)
                position = frame.pts
                while next_wanted < len(wanted_pts) and wanted_pts[next_wanted] < position:
                    next_wanted += 1  # that frame was never produced by the decoder: skip it
                if next_wanted < len(wanted_pts) and position == wanted_pts[next_wanted]:
                    yield index_of[position], frame_rgb(frame)
                    next_wanted += 1
        except MediaError:
            raise
        except Exception as exc:
            raise MediaError(f"{path}: decoding failed ({_reason(exc)})") from None


def sample_frames(path: str | Path, pps: float,
                  probed: tuple[VideoInfo, FrameTimeline] | None = None) -> Iterator[SampledFrame]:
    """The frames displayed at t = k / pps, decoded one at a time."""
    info, timeline = probed or probe(path)
    indices = plan_samples(timeline.times_s, timeline.end_s, pps)
    for sample_index, (frame_index, rgb) in enumerate(iter_frames(path, indices, timeline)):
        yield SampledFrame(sample_index, frame_index, float(timeline.times_s[frame_index]), rgb)
