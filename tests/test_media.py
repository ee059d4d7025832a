"""Frame sampling by presentation time: the right frame, VFR-safe, seek or sequential alike."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from skimage.data import astronaut

from empathic.media import MediaError, plan_samples, probe, sample_frames
from media_factory import numbered_video, read_frame_number, write_video


def test_plan_takes_the_frame_displayed_at_each_target_time():
    times = np.array([0.0, 0.1, 0.15, 0.6, 0.61, 1.3])
    # targets 0, .25, .5, .75, 1.0, 1.25, 1.5 (< end 1.6)
    assert plan_samples(times, 1.6, 4.0) == [0, 2, 4, 5]
    assert plan_samples(times, 1.6, 100.0) == [0, 1, 2, 3, 4, 5]
    # a first frame that starts late still serves t = 0
    assert plan_samples(np.array([0.04, 0.08]), 0.12, 1.0) == [0]
    with pytest.raises(ValueError):
        plan_samples(times, 1.6, 0)


@pytest.fixture(scope="module")
def numbered_cfr(media_dir) -> Path:
    # 20 s at 30 fps with a keyframe every second: pps 0.2 seeks, pps 5 decodes forward.
    return numbered_video(media_dir / "numbered.mp4", 600, fps=30, gop=30)


@pytest.mark.parametrize("pps", [0.2, 1.0, 5.0, 7.3])
def test_samples_follow_pps_and_carry_the_right_frame(numbered_cfr, pps):
    samples = list(sample_frames(numbered_cfr, pps))
    expected_count = int(np.ceil(20.0 * pps - 1e-9))
    assert len(samples) == expected_count
    for k, sample in enumerate(samples):
        target = k / pps
        assert sample.sample_index == k
        assert sample.frame_index == int(np.floor(target * 30 + 1e-9))
        assert sample.time_s == pytest.approx(sample.frame_index / 30, abs=1e-6)
        assert sample.time_s <= target + 1e-9 < sample.time_s + 1 / 30
        assert read_frame_number(sample.rgb) == sample.frame_index  # the pixels are that frame's
        assert sample.rgb.shape == (360, 640, 3) and sample.rgb.dtype == np.uint8


def test_a_sample_on_a_frame_boundary_takes_that_frame(media_dir):
    # At 25 fps (time base 1/12800), 7 / 5 is one ulp below frame 35's time 17920 / 12800.
    path = numbered_video(media_dir / "numbered25.mp4", 50, fps=25, gop=25)
    frames = [s.frame_index for s in sample_frames(path, 5.0)]
    assert frames == [5 * k for k in range(10)]


def test_variable_frame_rate_uses_presentation_times(media_dir):
    rng = np.random.default_rng(3)
    times = np.round(np.cumsum(np.r_[0.0, rng.uniform(0.02, 0.4, 59)]), 3)
    path = numbered_video(media_dir / "vfr.mp4", 60, gop=12, times_s=times)
    info, timeline = probe(path)
    assert info.frame_count == 60
    np.testing.assert_allclose(timeline.times_s, times, atol=2e-3)
    for pps in (0.5, 2.0, 9.0):
        samples = list(sample_frames(path, pps))
        assert [s.frame_index for s in samples] == plan_samples(timeline.times_s, timeline.end_s, pps)
        for sample in samples:
            assert read_frame_number(sample.rgb) == sample.frame_index
    # independently of the probe: at 2 pps the frame shown at t = k/2 is the last one that
    # started by then according to the times the clip was written with
    for k, sample in enumerate(sample_frames(path, 2.0)):
        expected = max(0, int(np.searchsorted(times, k / 2.0, side="right")) - 1)
        if np.min(np.abs(times - k / 2.0)) > 0.005:  # away from container rounding
            assert sample.frame_index == expected


def test_an_image_is_a_one_frame_video(tmp_path):
    import cv2

    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    info, _ = probe(path)
    assert info.is_image and info.frame_count == 1 and (info.width, info.height) == (512, 512)
    samples = list(sample_frames(path, 3.0))
    assert len(samples) == 1 and samples[0].frame_index == 0 and samples[0].time_s == 0.0
    np.testing.assert_array_equal(samples[0].rgb, astronaut())  # RGB, not BGR


def test_bad_inputs_raise_one_line_media_errors(tmp_path, numbered_cfr):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(numbered_cfr.read_bytes()[:3000])
    garbage_png = tmp_path / "broken.png"
    garbage_png.write_bytes(b"\x89PNG garbage")
    audio = tmp_path / "tone.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    str(audio)], check=True)
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "is a folder",
        text: "not a readable media file",
        truncated: "",
        garbage_png: "not a readable image",
        audio: "has no video stream",
    }
    for path, message in cases.items():
        with pytest.raises(MediaError) as caught:
            probe(path)
            list(sample_frames(path, 1.0))
        assert message in str(caught.value) and "\n" not in str(caught.value)
        assert str(path) in str(caught.value)


def test_a_video_without_frames_is_an_error(tmp_path):
    path = tmp_path / "empty.mkv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=1",
                    "-frames:v", "0", "-c:v", "mpeg4", str(path)], check=True)
    with pytest.raises(MediaError, match="no frames|not a readable"):
        probe(path)


def test_memory_stays_bounded_frames_are_streamed(media_dir):
    path = write_video(media_dir / "long.mp4", [np.full((90, 160, 3), i % 255, np.uint8) for i in range(300)])
    iterator = sample_frames(path, 30.0)
    first = next(iterator)
    assert first.frame_index == 0  # a generator: frames are decoded on demand, not collected
    assert sum(1 for _ in iterator) == 299


@pytest.mark.parametrize("degrees", [90, 270])
def test_display_rotation_is_applied_like_players_do(tmp_path, degrees):
    import cv2

    canvas = np.zeros((180, 320, 3), np.uint8)
    canvas[0:40, 0:40] = 255  # a marker in one corner tells the orientation
    source = write_video(tmp_path / "flat.mp4", [canvas] * 3)
    rotated = tmp_path / f"rot{degrees}.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(source), "-c", "copy",
                    "-metadata:s:v:0", f"rotate={degrees}", str(rotated)], check=True)
    shown = tmp_path / "shown.png"  # what ffmpeg (autorotate on, as players) displays
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(rotated), "-frames:v", "1", str(shown)], check=True)
    expected = cv2.cvtColor(cv2.imread(str(shown)), cv2.COLOR_BGR2RGB)
    info, _ = probe(rotated)
    assert (info.width, info.height) == (180, 320)
    sample = next(sample_frames(rotated, 1.0))
    assert sample.rgb.shape == expected.shape
    assert np.abs(sample.rgb.astype(int) - expected).mean() < 2
