"""A hand-over that never queues: the newest item waits for the model, an older waiting one is dropped.

This is what keeps a live session's latency bounded: when the models are slower than the stream, the
samples they cannot take are skipped (and counted), instead of piling up in a queue whose wait grows
without end. ``depth`` items may wait (1: only the newest).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class SlotClosed(Exception):
    """The producer has finished and nothing is left to take."""


class LatestSlot(Generic[T]):
    def __init__(self, depth: int = 1):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._items: deque[T] = deque()
        self._depth = depth
        self._closed = False
        self._changed = threading.Condition()
        self.dropped = 0

    def put(self, item: T) -> T | None:
        """Hands ``item`` over; returns the waiting item it pushed out (counted in ``dropped``)."""
        with self._changed:
            if self._closed:
                raise SlotClosed("put after close")
            pushed_out = None
            if len(self._items) >= self._depth:
                pushed_out = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._changed.notify()
            return pushed_out

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest waiting item; None when ``timeout`` passes first; SlotClosed when closed and empty."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if self._items:
                return self._items.popleft()
            raise SlotClosed("closed")

    def close(self) -> None:
        """No more items will come; what waits is still handed out."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
