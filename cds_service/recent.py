"""A small thread-safe map of recent items, bounded by count and age: what the per-worker caches are built on."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Recent:
    """key → value, least recently used first; at most ``entries`` items, none older than ``seconds``.

    ``on_add(key)`` and ``on_evict(key)`` are called under the lock when a key comes in and when it leaves (pushed
    out or expired), so a subclass can keep an index of its keys in step.
    """

    def __init__(self, entries: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.entries, self.seconds = entries, seconds
        self._clock = clock
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or self._clock() - item[0] > self.seconds:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: Hashable, value: Any) -> None:
        now = self._clock()
        with self._lock:
            if key not in self._items:
                self.on_add(key)
            self._items[key] = (now, value)
            self._items.move_to_end(key)
            while len(self._items) > self.entries or (self._items and now - next(iter(self._items.values()))[0] > self.seconds):
                old, _ = self._items.popitem(last=False)
                self.on_evict(old)

    def on_add(self, key: Any) -> None:
        pass

    def on_evict(self, key: Any) -> None:
        pass
