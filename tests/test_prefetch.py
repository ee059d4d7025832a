import threading
import time

import pytest

from empathic.prefetch import prefetch


def test_order_is_kept_and_everything_arrives():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch(iter(range(5)), depth=0)) == list(range(5))


def test_a_producer_error_reaches_the_consumer_after_the_good_items():
    def items():
        yield 1
        yield 2
        raise ValueError("frame 3 is corrupt")

    got = []
    with pytest.raises(ValueError, match="frame 3 is corrupt"):
        for item in prefetch(items(), depth=2):
            got.append(item)
    assert got == [1, 2]


def test_the_producer_runs_ahead_but_only_depth_items():
    produced, closed = [], []

    def items():
        try:
            for i in range(50):
                produced.append(i)
                yield i
        finally:
            closed.append(True)

    iterator = prefetch(items(), depth=4)
    assert next(iterator) == 0
    deadline = time.monotonic() + 20
    while len(produced) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # one taken, four queued, one made and waiting to be queued: bounded, not the whole stream
    assert len(produced) == 6
    iterator.close()  # the consumer stops early: the producer thread must end
    assert not any(t.name == "empathic-prefetch" and t.is_alive() for t in threading.enumerate())
    assert closed == [True]  # the half-read source was closed (its files released) right away
