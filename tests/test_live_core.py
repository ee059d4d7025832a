"""The pure parts of live analysis: deciding samples and windows while a stream arrives (against the
rules the file analyses apply to a whole file), the hand-over that drops instead of queueing, and the
summary's figures."""

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from empathic.live.sampling import AudioRing, FrameSampler
from empathic.live.slot import LatestSlot, SlotClosed
from empathic.live.summary import LiveSummary, StreamStats
from empathic.media import plan_samples
from empathic.audio import window_samples
from empathic.segments.sliding import SlidingOptions, window_bounds, window_ends


@st.composite
def frame_times(draw):
    count = draw(st.integers(1, 80))
    gaps = draw(st.lists(st.sampled_from([1 / 30, 1 / 25, 0.04, 0.1, 0.5, 0.0333, 1.0]), min_size=count,
                         max_size=count))
    start = draw(st.sampled_from([0.0, 0.0, 0.02, 0.4, 1.3]))
    times = start + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    return times, float(times[-1] + gaps[-1])


@settings(max_examples=300, deadline=None)
@given(frame_times(), st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 30.0]))
def test_streamed_samples_are_the_frames_the_file_analysis_plans(timing, pps):
    times, end_s = timing
    sampler = FrameSampler(pps)
    taken = []
    for index, time_s in enumerate(times):
        taken += sampler.push(index, float(time_s), f"frame {index}")
    taken += sampler.finish(end_s)
    assert [s.frame_index for s in taken] == plan_samples(times, end_s, pps)
    assert [s.sample_index for s in taken] == list(range(len(taken)))
    assert all(s.payload == f"frame {s.frame_index}" and s.time_s == times[s.frame_index] for s in taken)
    assert sampler.decided == len(taken)


def test_a_sample_is_decided_when_the_next_frame_shows_it_is_the_one_displayed():
    sampler = FrameSampler(pps=1.0)
    assert [s.frame_index for s in sampler.push(0, 0.0, None)] == []  # frame 1 may still come at 0.0
    assert [s.frame_index for s in sampler.push(1, 0.6, None)] == [0]  # shown at t = 0
    assert [s.frame_index for s in sampler.push(2, 1.0, None)] == []  # exactly on t = 1: wait for the next
    assert [s.frame_index for s in sampler.push(3, 3.2, None)] == [2]  # frame 2 shows t = 1, 2 and 3: once
    assert [s.frame_index for s in sampler.finish(3.3)] == []  # t = 3 already decided, t = 4 is past the end


@settings(max_examples=150, deadline=None)
@given(st.floats(0.0, 25.0), st.sampled_from([(10.0, 3.0), (5.0, 5.0), (2.0, 0.5), (30.0, 7.0), (4.0, 6.0)]),
       st.lists(st.integers(1, 40000), min_size=1, max_size=30), st.sampled_from([0.0, 0.5, 1.0]))
def test_streamed_windows_close_where_the_file_windows_do_and_hold_the_same_samples(
        duration_s, shape, chunk_sizes, min_speech_s):
    window_s, hop_s = shape
    options = SlidingOptions(window_s=window_s, hop_s=hop_s, min_speech_s=min_speech_s)
    total = int(round(duration_s * 16000))
    sound = np.arange(total, dtype=np.float32)  # every sample tells where it came from
    ring = AudioRing(options)
    closed, position, k = [], 0, 0
    while position < total:
        size = chunk_sizes[k % len(chunk_sizes)]
        closed += ring.extend(sound[position:position + size])
        position += size
        k += 1
    closed += ring.finish()
    expected = window_ends(total / 16000, options)
    assert [w.end_s for w in closed] == pytest.approx(expected)
    assert [w.index for w in closed] == list(range(len(closed)))
    for window in closed:
        start_s, end_s = window_bounds(window.end_s, options)
        assert window.start_s == pytest.approx(start_s)
        np.testing.assert_array_equal(window.samples, window_samples(sound, start_s, end_s))
    assert ring.closed == len(closed)


def test_window_ends_follow_the_hop_then_the_end_of_the_sound():
    options = SlidingOptions(window_s=10, hop_s=3, min_speech_s=0.5)
    assert window_ends(10.0, options) == [3, 6, 9, 10.0]
    assert window_ends(9.3, options) == [3, 6, 9]  # 0.3 s after the last hop: too little to score
    assert window_ends(2.0, options) == [2.0]
    assert window_ends(0.2, options) == []
    assert window_bounds(3.0, options) == (0.0, 3.0) and window_bounds(14.0, options) == (4.0, 14.0)


def test_bad_sliding_settings_are_named():
    with pytest.raises(ValueError, match="sliding window must be in"):
        SlidingOptions(window_s=31)
    with pytest.raises(ValueError, match="sliding hop must be > 0"):
        SlidingOptions(hop_s=0)
    with pytest.raises(ValueError, match="pps must be > 0"):
        FrameSampler(0)


def test_the_slot_keeps_only_the_newest_and_counts_what_it_dropped():
    slot = LatestSlot(depth=1)
    assert slot.put("a") is None
    assert slot.put("b") == "a"
    assert slot.put("c") == "b"
    assert slot.dropped == 2
    assert slot.get(timeout=0) == "c"
    assert slot.get(timeout=0.01) is None  # empty: the timeout passes
    slot.put("d")
    slot.close()
    assert slot.get(timeout=0) == "d"  # what waits is still handed out after close
    with pytest.raises(SlotClosed):
        slot.get(timeout=1)
    with pytest.raises(SlotClosed):
        slot.put("e")


def test_a_waiting_consumer_wakes_for_an_item_and_for_close():
    slot = LatestSlot(depth=2)
    got = []

    def consume():
        try:
            while True:
                got.append(slot.get(timeout=5))
        except SlotClosed:
            got.append("closed")

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.05)
    slot.put(1)
    time.sleep(0.05)
    slot.close()
    consumer.join(timeout=5)
    assert not consumer.is_alive() and got == [1, "closed"]


def test_the_summary_gives_rates_skips_and_latency_percentiles():
    face = StreamStats(offered=20, processed=10, skipped=10, latencies_s=tuple(np.linspace(0.1, 1.0, 10)))
    summary = LiveSummary("udp://127.0.0.1:5000", "end of stream", wall_s=5.0, media_s=10.0, face=face, voice=None)
    document = summary.to_dict()
    assert document["face"]["per_second"] == 2.0
    assert document["face"]["latency_p50_s"] == pytest.approx(0.55)
    assert document["face"]["latency_p95_s"] == pytest.approx(0.1 + 0.9 * 0.95, abs=1e-4)
    assert document["face"]["skipped"] == 10 and "voice" not in document
    assert "faces: 10 of 20 samples (2.00/s), 10 skipped, latency p50 0.550 s" in summary.line()
    assert not summary.dropped and LiveSummary("x", "stream dropped: no data for 5 s", 1, 1, None, None).dropped


class _FramesSource:
    """A stream of plain grey frames at 10 fps (what LiveSource yields), for session tests."""

    def __init__(self, count: int):
        from empathic.live.source import StreamInfo

        self.info = StreamInfo("test://frames", has_video=True, has_audio=False, width=64, height=48,
                               nominal_fps=10.0)
        self.stop = threading.Event()
        self.count = count

    def __iter__(self):
        from empathic.live.source import VideoIn

        for index in range(self.count):
            if self.stop.is_set():
                return
            yield VideoIn(index, index / 10, 0.1, np.full((48, 64, 3), 128, np.uint8), time.perf_counter())


class _BrokenModel:
    def __init__(self, model):
        self.runtime, self.info, self.preprocess = model.runtime, model.info, model.preprocess

    def embed(self, pixels):
        raise RuntimeError("the device fell over")


def test_a_model_failure_ends_the_session_with_that_error(face_model_small):
    from empathic.face_analysis import FaceAnalysisOptions
    from empathic.faces.detect import make_detector
    from empathic.live.session import LiveOptions, LiveSession

    options = LiveOptions(faces=FaceAnalysisOptions(pps=10, detector="none"), voices=None)
    session = LiveSession(options, _BrokenModel(face_model_small), None, make_detector("none"))
    source = _FramesSource(10_000)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="the device fell over"):
        session.run(source)
    assert source.stop.is_set() and time.perf_counter() - started < 30  # the reader stopped too


def test_a_session_on_a_finite_source_scores_every_sample_in_order(face_model_small):
    from empathic.face_analysis import FaceAnalysisOptions
    from empathic.faces.detect import make_detector
    from empathic.live.session import LiveOptions, LiveSession

    events = []
    options = LiveOptions(faces=FaceAnalysisOptions(pps=5, detector="none"), voices=None, waiting=1000)
    result = LiveSession(options, face_model_small, None, make_detector("none"), on_event=events.append).run(
        _FramesSource(20))
    # 20 frames at 10 fps (2 s): samples at 0, 0.2, ... 1.8 s are frames 0, 2, ... 18.
    assert [f.frame_index for f in result.face.frames] == list(range(0, 20, 2))
    assert [e["frame_index"] for e in events if e["type"] == "face"] == list(range(0, 20, 2))
    assert events[0]["type"] == "start" and result.summary.face.skipped == 0
    assert all(len(e["faces"]) == 1 and e["faces"][0]["track_id"] == 1 for e in events if e["type"] == "face")
    assert result.face.media["live"] and result.face.media["frame_count"] == 20
