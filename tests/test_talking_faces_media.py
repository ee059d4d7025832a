"""The talking-faces clip of media_factory: its sound, its faces and its mouths tell who speaks.

No model is involved: these tests hold the generator to the truth it claims (voice times, face
boxes, which mouth moves with which voice), so that tests of an audio-visual speaker linker can
trust it.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass

import av
import cv2
import numpy as np
import pytest

from media_factory import MOUTH_LEAD_S, TalkingFaces, talking_faces_video

RATE = 16000
HAAR_EVERY = 10  # frames between Haar checks (and the frames of widest-open mouths)


@dataclass
class Decoded:
    clip: TalkingFaces
    frames: int
    size: tuple[int, int]  # width, height of the decoded frames
    video_codec: str
    audio_codec: str
    mouths: list[np.ndarray]  # per face: [frames, h, w] grey mouth regions
    faces_rest: list[np.ndarray]  # per face: [frames, h, w] grey face boxes with the mouth region blanked
    haar_frames: dict[int, np.ndarray]  # frame index -> grey frame, every HAAR_EVERY-th frame
    audio: np.ndarray  # the mp4's sound, 16 kHz mono, time 0 = the first frame


def _box(clip: TalkingFaces, k: int) -> tuple[int, int, int, int]:
    x, y, w, h = clip.faces[k].expected_box()
    return int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))


def _decode(clip: TalkingFaces) -> Decoded:
    from empathic.audio import decode_audio

    mouths, rests, haar = [[], []], [[], []], {}
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        video_codec = stream.codec_context.name
        audio_codec = container.streams.audio[0].codec_context.name
        count = 0
        for frame in container.decode(stream):
            grey = cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY)
            size = grey.shape[1], grey.shape[0]
            for k in (0, 1):
                x0, y0, x1, y1 = clip.mouth_box(k)
                mouths[k].append(grey[y0:y1, x0:x1].astype(np.float32))
                fx0, fy0, fx1, fy1 = _box(clip, k)
                rest = grey[fy0:fy1, fx0:fx1].astype(np.float32)
                rest[y0 - fy0:y1 - fy0, x0 - fx0:x1 - fx0] = 0.0
                rests[k].append(rest)
            if count % HAAR_EVERY == 0:
                haar[count] = grey
            count += 1
    return Decoded(clip, count, size, video_codec, audio_codec, [np.stack(m) for m in mouths],
                   [np.stack(r) for r in rests], haar, decode_audio(clip.path).samples)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Decoded]:
    folder = tmp_path_factory.mktemp("talking")
    return {name: _decode(talking_faces_video(folder, swap=name == "swap", still=name == "still"))
            for name in ("plain", "swap", "still")}


def _read_wav(path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        return samples, w.getframerate(), w.getnchannels()


def _rms(audio: np.ndarray, start_s: float, end_s: float) -> float:
    part = audio[max(0, int(round(start_s * RATE))):max(0, int(round(end_s * RATE)))]
    return float(np.sqrt(np.mean(part.astype(np.float64) ** 2))) if len(part) else 0.0


def _motion_and_envelopes(decoded: Decoded, fps: float):
    """Frames sampled at ``fps`` (nearest frame of each tick); per face the mean absolute change of
    its mouth region between consecutive samples; per voice the RMS of its sound over the span that
    change covers (40 ms either side, shifted by the mouth's lead), zero outside its speech."""
    clip = decoded.clip
    ticks = np.arange(0.0, decoded.frames / clip.fps, 1.0 / fps)
    picked = np.unique(np.minimum(np.round(ticks * clip.fps).astype(int), decoded.frames - 1))
    before, after = picked[:-1], picked[1:]
    motion = [np.abs(m[after] - m[before]).mean(axis=(1, 2)) for m in decoded.mouths]
    times = after / clip.fps
    envelopes = {}
    for name, start, end, _ in clip.voices:
        own = decoded.audio.copy()
        own[:int(round(start * RATE))] = 0.0
        own[int(round(end * RATE)):] = 0.0
        envelopes[name] = np.array([_rms(own, b / clip.fps + MOUTH_LEAD_S - 0.02, a / clip.fps + MOUTH_LEAD_S + 0.02)
                                    for b, a in zip(before, after)])
    return times, motion, envelopes


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_sound_and_picture_last_the_clip_and_voices_take_turns(clips):
    plain = clips["plain"]
    clip = plain.clip
    assert (plain.video_codec, plain.audio_codec) == ("h264", "aac")
    assert plain.size == (960, 540) and clip.fps == 25
    assert plain.frames == round(clip.duration_s * clip.fps)
    assert 12.0 <= clip.duration_s <= 15.0
    assert abs(len(plain.audio) / RATE - clip.duration_s) < 0.05

    samples, rate, channels = _read_wav(clip.wav)
    assert (rate, channels) == (RATE, 1) and len(samples) == round(clip.duration_s * RATE)

    names = [v[0] for v in clip.voices]
    assert names == ["A", "B", "C"] and [v[3] for v in clip.voices] == [0, 1, None]
    (_, a0, a1, _), (_, b0, b1, _), (_, c0, c1, _) = clip.voices
    assert a0 == pytest.approx(1.0, abs=0.001)
    assert b0 - a1 == pytest.approx(1.5, abs=0.001) and c0 - b1 == pytest.approx(1.5, abs=0.001)
    assert clip.duration_s - c1 >= 1.0
    for _, start, end, _ in clip.voices:
        assert 2.5 <= end - start <= 4.0
        # The times are the speech itself: loud at both ends, silent just outside.
        for sound in (samples, plain.audio):
            assert _rms(sound, start, start + 0.1) > 0.01 and _rms(sound, end - 0.1, end) > 0.005
        assert np.abs(samples[int(round((start - 0.02) * RATE)):int(round(start * RATE))]).max() < 1e-3
        assert np.abs(samples[int(round(end * RATE)):int(round((end + 0.02) * RATE))]).max() < 1e-3
    for start, end in ((0.0, a0), (a1, b0), (b1, c0), (c1, clip.duration_s)):
        assert np.abs(samples[int(round(start * RATE)):int(round(end * RATE))]).max() < 1e-3
        assert _rms(plain.audio, start + 0.05, end - 0.05) < 2e-3

    # The three voices differ: their median pitch is apart.
    pitches = [_median_pitch(samples[int(start * RATE):int(end * RATE)]) for _, start, end, _ in clip.voices]
    assert min(abs(p - q) for i, p in enumerate(pitches) for q in pitches[i + 1:]) > 10, pitches


def _median_pitch(speech: np.ndarray) -> float:
    """Hz: per voiced 64 ms window, the shortest lag (60-400 Hz) whose normalised autocorrelation
    comes within 10 % of the best."""
    lags, found = np.arange(RATE // 400, RATE // 60), []
    for s in range(0, len(speech) - 1024, 400):
        w = speech[s:s + 1024] - speech[s:s + 1024].mean()
        if np.sqrt(np.mean(w ** 2)) < 0.05:
            continue
        nacf = np.array([np.dot(w[:-k], w[k:]) / np.sqrt(np.dot(w[:-k], w[:-k]) * np.dot(w[k:], w[k:]) + 1e-12)
                         for k in lags])
        if nacf.max() > 0.6:
            found.append(RATE / lags[np.flatnonzero(nacf > 0.9 * nacf.max())[0]])
    assert len(found) > 20
    return float(np.median(found))


@pytest.mark.parametrize("name", ["plain", "swap", "still"])
def test_haar_finds_both_faces_where_expected_in_every_sampled_frame(clips, name):
    decoded = clips[name]
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    expected = [decoded.clip.faces[k].expected_box() for k in (0, 1)]
    assert 130 <= expected[0][2] <= 170
    assert len(decoded.haar_frames) >= 30

    def iou(a, b):
        w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)

    for index, grey in decoded.haar_frames.items():
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(80, 80))
        assert len(found) == 2, (index, found)
        for box in expected:
            assert max(iou(tuple(map(float, f)), box) for f in found) > 0.7, (index, found, box)


@pytest.mark.parametrize("name", ["plain", "swap"])
@pytest.mark.parametrize("fps", [25, 10])
def test_each_mouth_moves_with_its_own_voice_only(clips, name, fps):
    decoded = clips[name]
    clip = decoded.clip
    times, motion, envelopes = _motion_and_envelopes(decoded, fps)
    owner = {face: voice for voice, _, _, face in clip.voices if face is not None}
    assert owner == ({0: "A", 1: "B"} if name == "plain" else {0: "B", 1: "A"})
    for face in (0, 1):
        mine = owner[face]
        start, end = next((s, e) for v, s, e, _ in clip.voices if v == mine)
        during = (times >= start) & (times <= end)
        assert _pearson(motion[face][during], envelopes[mine][during]) > 0.8
        assert _pearson(motion[face], envelopes[mine]) > 0.8
        assert motion[face][during].mean() > 5.0  # grey levels: a plainly visible movement
        for other, o_start, o_end, _ in clip.voices:
            if other == mine:
                continue
            assert _pearson(motion[face], envelopes[other]) < 0.0
            # While another voice speaks (B, or C off screen), this mouth keeps still.
            theirs = (times >= o_start) & (times <= o_end)
            assert motion[face][theirs].max() < 1.0


def _settled(regions: np.ndarray) -> tuple[float, float]:
    """The largest change between consecutive frames and the largest departure from the median
    frame (mean absolute grey levels): H.264 sharpens a still picture over its first second or
    two, which no frame-to-frame change shows but the departure from one frame does."""
    steps = np.abs(np.diff(regions, axis=0)).mean(axis=(1, 2))
    departures = np.abs(regions - np.median(regions, axis=0)).mean(axis=(1, 2))
    return float(steps.max()), float(departures.max())


def test_the_rest_of_each_face_never_moves(clips):
    for name in ("plain", "swap", "still"):
        for rest in clips[name].faces_rest:
            step, departure = _settled(rest)
            assert step < 1.0 and departure < 1.5, (name, step, departure)


def test_still_mouths_stay_closed_over_the_same_sound(clips):
    still, plain = clips["still"], clips["plain"]
    assert still.clip.still and not plain.clip.still
    assert still.clip.voices == plain.clip.voices and still.clip.duration_s == plain.clip.duration_s
    assert np.array_equal(_read_wav(still.clip.wav)[0], _read_wav(plain.clip.wav)[0])
    for face in (0, 1):
        step, departure = _settled(still.mouths[face])
        assert step < 1.0 and departure < 1.5, (step, departure)
        # ... where the moving clip's mouths stray far, and settle back to the same closed mouth.
        moving = plain.mouths[face]
        assert _settled(moving)[1] > 10.0
        assert np.abs(np.median(still.mouths[face], axis=0) - np.median(moving, axis=0)).mean() < 1.0
    _, motion, _ = _motion_and_envelopes(still, 25)
    assert max(m.max() for m in motion) < 1.0
