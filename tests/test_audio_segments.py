"""Audio decoding at 16 kHz mono, and the fixed and VAD segmentations on real synthesised speech."""

import subprocess
import wave

import numpy as np
import pytest

from empathic.audio import SAMPLE_RATE, decode_audio
from empathic.media import MediaError
from empathic.segments import Segment, finalize, split_long
from empathic.segments.fixed import FixedSegmenter, WindowOptions, fixed_windows
from empathic.segments.vad import VadOptions, VadSegmenter
from media_factory import write_video, background


def test_a_16_khz_wav_is_read_sample_exact(two_voices):
    with wave.open(str(two_voices.path)) as source:
        expected = np.frombuffer(source.readframes(source.getnframes()), "<i2") / 32768.0
    clip = decode_audio(two_voices.path)
    assert clip.sample_rate == SAMPLE_RATE and clip.samples.dtype == np.float32
    np.testing.assert_allclose(clip.samples, expected, atol=1e-7)


def test_stereo_is_averaged_and_44k_resampled_without_gain_change(tmp_path):
    # left: 440 Hz at 0.5, right: silent -> mono 440 Hz at 0.25 (librosa's to_mono is a mean)
    t = np.arange(2 * 44100) / 44100
    frames = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(np.round(frames * 32767).astype("<i2").tobytes())
    clip = decode_audio(path)
    assert clip.source_channels == 2 and clip.source_sample_rate == 44100
    assert clip.duration_s == pytest.approx(2.0, abs=1e-3)
    middle = clip.samples[4000:-4000]
    assert np.abs(middle).max() == pytest.approx(0.25, rel=0.02)
    spectrum = np.abs(np.fft.rfft(middle))
    assert np.fft.rfftfreq(len(middle), 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_the_sound_of_a_video_matches_its_source(two_voices, two_voice_video):
    wav = decode_audio(two_voices.path).samples
    from_video = decode_audio(two_voice_video).samples
    assert len(from_video) / SAMPLE_RATE == pytest.approx(len(wav) / SAMPLE_RATE, abs=0.1)
    n = min(len(wav), len(from_video))
    correlation = np.corrcoef(wav[:n], from_video[:n])[0, 1]
    assert correlation > 0.95  # AAC is lossy, but aligned in time and level


def test_audio_that_starts_late_in_a_video_keeps_the_video_clock(two_voices, tmp_path):
    late = tmp_path / "late.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=6",
                    "-itsoffset", "0.5", "-i", str(two_voices.path), "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "6", str(late)], check=True)

    def onset_s(samples):
        return np.flatnonzero(np.abs(samples) > 0.01)[0] / SAMPLE_RATE

    shifted = decode_audio(late).samples
    assert onset_s(shifted) == pytest.approx(onset_s(decode_audio(two_voices.path).samples) + 0.5, abs=0.005)


def test_a_video_without_sound_gets_a_clear_message(media_dir):
    silent = write_video(media_dir / "silent.mp4", [background(160, 120, s) for s in range(5)])
    with pytest.raises(MediaError, match=r"silent\.mp4: has no audio stream \(a video without sound\)"):
        decode_audio(silent)


def test_fixed_windows_cover_the_recording_and_merge_a_short_tail():
    assert fixed_windows(0, 12.5, WindowOptions()) == [Segment(0, 5), Segment(5, 10), Segment(10, 12.5)]
    assert fixed_windows(0, 10.5, WindowOptions()) == [Segment(0, 5), Segment(5, 10.5)]
    assert fixed_windows(0, 4, WindowOptions(pps=0.5, overlap_s=1)) == [Segment(0, 2), Segment(1, 3),
                                                                       Segment(2, 4)]
    assert fixed_windows(0, 0.5, WindowOptions()) == []  # shorter than the minimum duration


def test_segments_longer_than_30_s_are_split_never_cut():
    forty = fixed_windows(0, 40, WindowOptions(pps=1 / 40))
    assert forty == [Segment(0, 20), Segment(20, 40)]
    assert split_long(Segment(3, 33, "SPEAKER_01"), 30) == [Segment(3, 33, "SPEAKER_01")]
    pieces = split_long(Segment(0, 61, "A"), 30)
    assert len(pieces) == 3 and pieces[0].start_s == 0 and pieces[-1].end_s == 61
    assert all(p.speaker == "A" and p.duration_s == pytest.approx(61 / 3) for p in pieces)
    assert finalize([Segment(5, 5.2), Segment(0, 4)], 0.5, 30) == [Segment(0, 4)]


@pytest.mark.parametrize("kwargs, message", [
    ({"pps": 0}, "pps must be > 0"), ({"overlap_s": 5}, "overlap"),
    ({"max_duration_s": 31}, "one Whisper window"), ({"min_duration_s": -1}, "minimum")])
def test_bad_window_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowOptions(**kwargs)


def test_fixed_segmenter_on_the_two_voice_track(two_voices):
    segments = FixedSegmenter(WindowOptions(pps=0.25)).segment(decode_audio(two_voices.path))
    assert [s.start_s for s in segments] == [0, 4, 8]
    assert segments[-1].end_s == pytest.approx(two_voices.duration_s, abs=1e-6)


def test_vad_finds_each_voice_and_nothing_in_the_silences(two_voices):
    options = VadOptions()
    segments = VadSegmenter(options).segment(decode_audio(two_voices.path))
    assert len(segments) == 2
    for segment, (start, end) in zip(segments, two_voices.speech_s):
        # silero works on 32 ms frames and pads each region by speech_pad_s
        assert abs(segment.start_s - start) < options.speech_pad_s + 0.15
        assert abs(segment.end_s - end) < options.speech_pad_s + 0.4
        assert segment.speaker is None
    for start, end in two_voices.silence_s:
        middle = (start + end) / 2
        assert not any(s.start_s <= middle <= s.end_s for s in segments)


def test_vad_splits_speech_longer_than_the_maximum(two_voices):
    segments = VadSegmenter(VadOptions(max_duration_s=2.0)).segment(decode_audio(two_voices.path))
    assert len(segments) >= 4 and all(s.duration_s <= 2.0 + 1e-9 for s in segments)


def test_bad_vad_options_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        VadOptions(threshold=1.5)
