"""Scene segmentation: shot cuts found on the exact frame, and voice windows that never cross one.

The clips are real H.264 (B-frames, AAC sound) made here with PyAV: textured pictures that pan and
carry a moving square inside each shot (motion that must not read as a cut), and hard cuts between
differently coloured shots at known frames.
"""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from empathic.audio import AudioClip, decode_audio
from empathic.media import MediaError, probe
from empathic.segments.fixed import WindowOptions
from empathic.segments.scene import SceneSegmenter, ShotOptions, content_score, detect_shots

FPS = 25
SIZE = (320, 180)  # width, height
PAN_PX = 3  # per frame
TINTS = [(60, 90, 200), (220, 120, 40), (70, 200, 90), (200, 60, 160)]  # RGB, one per shot


def _texture(seed: int, tint, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.55, 1.0, (height // 10, width // 10, 1)).astype(np.float32)
    noise = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 1.5), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(noise[..., None] * np.asarray(tint, np.float32), 0, 255).astype(np.uint8)


def _frames(cut_frames: list[int], count: int):
    """RGB frames; a new shot (texture and tint) starts at each of ``cut_frames``."""
    width, height = SIZE
    pan = PAN_PX * count
    textures = [_texture(shot, TINTS[shot % len(TINTS)], width + pan, height)
                for shot in range(len(cut_frames) + 1)]
    for i in range(count):
        shot = sum(1 for c in cut_frames if i >= c)
        x = PAN_PX * i
        rgb = textures[shot][:, x:x + width].copy()
        square = 30 + (4 * i) % (width - 90)
        rgb[60:110, square:square + 50] = (240, 240, 240)
        yield rgb


def write_clip(path: Path, cut_frames: list[int], seconds: float, sound: bool = True) -> Path:
    count = int(round(seconds * FPS))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        video.options = {"crf": "23", "preset": "ultrafast", "g": "50", "bf": "2"}
        audio = None
        if sound:
            audio = container.add_stream("aac", rate=16000, layout="mono")
        for rgb in _frames(cut_frames, count):
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            rate, chunk = 16000, 1024
            t = np.arange(int(seconds * rate)) / rate
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for first in range(0, len(samples), chunk):
                frame = av.AudioFrame.from_ndarray(samples[None, first:first + chunk], format="fltp",
                                                   layout="mono")
                frame.sample_rate = rate
                frame.pts = first
                frame.time_base = Fraction(1, rate)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


@pytest.fixture(scope="module")
def three_shots(tmp_path_factory) -> Path:
    """12 s: shots at 0-4 s, 4-9 s and 9-12 s (cuts on frames 100 and 225)."""
    return write_clip(tmp_path_factory.mktemp("scene") / "three_shots.mp4", [100, 225], 12.0)


def clip(seconds: float) -> AudioClip:
    return AudioClip(np.zeros(int(seconds * 16000), np.float32))


def spans(segments) -> list[float]:
    return [t for s in segments for t in (s.start_s, s.end_s)]


def flat(pairs) -> list[float]:
    return [float(t) for pair in pairs for t in pair]


def test_cuts_land_on_the_first_frame_of_each_new_shot(three_shots):
    _, timeline = probe(three_shots)
    calls = []
    shots = detect_shots(three_shots, ShotOptions(), hook=lambda *a: calls.append(a))
    assert shots == [0.0, float(timeline.times_s[100]), float(timeline.times_s[225])]
    assert shots == pytest.approx([0.0, 4.0, 9.0], abs=1e-9)
    assert calls[0] == ("shots", 0, 300) and calls[-1] == ("shots", 300, 300)
    assert all(step == "shots" for step, _, _ in calls)


def test_motion_inside_a_shot_is_no_cut_but_cuts_score_far_above(three_shots):
    """The pan and the moving square change every frame, well below the threshold."""
    size = (160, 90)
    scores = []
    previous = None
    with av.open(str(three_shots)) as container:
        for frame in container.decode(video=0):
            rgb = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
            hsv = cv2.cvtColor(rgb.to_ndarray(), cv2.COLOR_RGB2HSV)
            if previous is not None:
                scores.append(content_score(previous, hsv))
            previous = hsv
    scores = np.asarray(scores)  # scores[i] compares frame i + 1 with frame i
    cuts = {99, 224}
    inside = np.asarray([s for i, s in enumerate(scores) if i not in cuts])
    assert inside.max() < ShotOptions().threshold / 2
    assert inside.mean() > 1.0  # there is motion to ignore
    assert min(scores[99], scores[224]) > ShotOptions().threshold + 5


def test_a_cut_sooner_than_the_minimum_shot_duration_is_not_declared(tmp_path):
    # cuts at 2.0 s and 2.4 s (a 0.4 s shot), then at 4.0 s
    path = write_clip(tmp_path / "flash.mp4", [50, 60, 100], 6.0, sound=False)
    assert detect_shots(path, ShotOptions(min_shot_duration_s=0.6)) == pytest.approx([0.0, 2.0, 4.0])
    assert detect_shots(path, ShotOptions(min_shot_duration_s=0.3)) == pytest.approx([0.0, 2.0, 2.4, 4.0])
    # a higher threshold than any cut's score finds one shot
    assert detect_shots(path, ShotOptions(threshold=250)) == [0.0]


def test_windows_stay_inside_shots_and_cover_them(three_shots):
    segmenter = SceneSegmenter(three_shots, WindowOptions(pps=0.2))
    assert segmenter.shots_s == ()
    segments = segmenter.segment(clip(12.0))
    assert spans(segments) == pytest.approx(flat([(0, 4), (4, 9), (9, 12)]))
    assert segmenter.shots_s == pytest.approx((0.0, 4.0, 9.0))

    # 2 s windows inside each shot; a 1 s tail is kept, or joins the window before when shorter
    # than the minimum duration
    segments = SceneSegmenter(three_shots, WindowOptions(pps=0.5)).segment(clip(12.0))
    assert spans(segments) == pytest.approx(flat([(0, 2), (2, 4), (4, 6), (6, 8), (8, 9), (9, 11),
                                                  (11, 12)]))
    segments = SceneSegmenter(three_shots, WindowOptions(pps=0.5, min_duration_s=1.5)).segment(clip(12.0))
    assert spans(segments) == pytest.approx(flat([(0, 2), (2, 4), (4, 6), (6, 9), (9, 12)]))


def test_windows_on_the_decoded_sound_never_straddle_a_cut(three_shots):
    audio = decode_audio(three_shots)
    segmenter = SceneSegmenter(three_shots, WindowOptions(pps=0.25, overlap_s=1.0))
    segments = segmenter.segment(audio)
    cuts = segmenter.shots()[1:]
    assert segments and segments[-1].end_s == pytest.approx(audio.duration_s)
    for segment in segments:
        assert not any(segment.start_s < cut < segment.end_s for cut in cuts), segment
    starts = [s.start_s for s in segments]
    assert starts[0] == 0.0 and 4.0 in starts and 9.0 in starts  # each shot's first window


def test_shots_beyond_the_sound_are_ignored_and_windows_clipped(three_shots):
    segmenter = SceneSegmenter(three_shots, WindowOptions(pps=0.2))
    segments = segmenter.segment(clip(7.5))
    assert spans(segments) == pytest.approx(flat([(0, 4), (4, 7.5)]))
    segments = segmenter.segment(clip(9.0))  # the shot starting exactly at the end is dropped
    assert spans(segments) == pytest.approx(flat([(0, 4), (4, 9)]))


def test_hue_is_compared_on_the_colour_circle():
    red_a = np.zeros((4, 4, 3), np.uint8)
    red_a[...] = (179, 200, 200)
    red_b = red_a.copy()
    red_b[..., 0] = 1
    assert content_score(red_a, red_b) == pytest.approx(2 / 3)
    cyan = red_a.copy()
    cyan[..., 0] = 90
    assert content_score(red_b, cyan) == pytest.approx(89 / 3)


def test_an_audio_file_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "voice.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.zeros(16000, np.int16).tobytes())
    with pytest.raises(MediaError, match="scene segmentation needs a video"):
        detect_shots(path)
    with pytest.raises(MediaError, match="scene segmentation needs a video"):
        SceneSegmenter(path).segment(clip(1.0))


def test_unreadable_files_raise_media_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video\xff" * 100)
    with pytest.raises(MediaError):
        detect_shots(junk)
    with pytest.raises(MediaError, match="no such file"):
        detect_shots(tmp_path / "missing.mp4")


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0}, {"threshold": -5}, {"threshold": 300},
    {"min_shot_duration_s": -0.1}, {"min_shot_duration_s": float("nan")},
    {"analysis_width": 4}, {"analysis_width": 16.5}, {"analysis_width": True},
])
def test_bad_shot_options_are_refused(kwargs):
    with pytest.raises(ValueError) as error:
        ShotOptions(**kwargs)
    assert "\n" not in str(error.value)


def test_a_failing_hook_is_not_reported_as_a_decoding_error(three_shots):
    class Cancelled(Exception):
        pass

    def hook(step, completed, total):
        if completed >= 250:
            raise Cancelled

    with pytest.raises(Cancelled):
        detect_shots(three_shots, hook=hook)
