"""What a worker keeps between hook calls, in its own memory only (never on disk or in logs), bounded by count, age and
size: the parsed prefetch of recent requests (``PrefetchParses``) and the facts read from it (``SnapshotCache``).

An EHR fires order-select on every keystroke of an order with the same prefetch, and re-sends it when a chart is
reopened; keeping both for a couple of minutes makes a keystroke stream cost less than parsing its body.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import cachetools
import orjson

from .prefetch import resource_count

if TYPE_CHECKING:
    from .body import HookBody
    from .config import Settings

T = TypeVar("T")


class _TTLCache(cachetools.TTLCache[Any, Any]):
    """cachetools' TTL + LRU map, telling its owner which keys leave it (pushed out, or expired)."""

    def __init__(self, owner: Recent, maxsize: int, ttl: float, timer: Callable[[], float]) -> None:
        super().__init__(maxsize=maxsize, ttl=ttl, timer=timer)
        self._owner = owner

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        self._owner.on_evict(key)
        return key, value

    def expire(self, time: float | None = None) -> list[tuple[Any, Any]]:
        expired = list(super().expire(time))
        for key, _ in expired:
            self._owner.on_evict(key)
        return expired


class Recent:
    """key → value, least recently used first; at most ``entries`` items, none older than ``seconds`` (a cachetools
    ``TTLCache`` under a lock: the workers' threads share it). ``on_add(key)`` and ``on_evict(key)`` are called under
    the lock when a key comes in and when it leaves, so a subclass can keep an index of its keys in step."""

    def __init__(self, entries: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.entries, self.seconds = entries, seconds
        self._items = _TTLCache(self, max(entries, 1), seconds, clock)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._items.expire()
            return len(self._items)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        if self.entries <= 0:
            return
        with self._lock:
            if key not in self._items:
                self.on_add(key)
            self._items[key] = value

    def on_add(self, key: Any) -> None:
        pass

    def on_evict(self, key: Any) -> None:
        pass


class ChartCache(Recent):
    """Something kept per chart in this worker's memory, bounded by count, age and each chart's size.

    ``entries`` charts at most (0: nothing kept), none older than ``seconds``; a chart over ``max_resources`` resources
    or ``max_bytes`` of prefetch JSON is never kept. Both per-worker caches (parses, facts) share these settings.

    ``admit_on_sight``: a chart is kept from its n-th sighting, each within ``seconds`` of the last (a doorkeeper: a
    small fingerprint is remembered before that). Most calls are first looks at charts that never come back; keeping
    each of them evicts another, and building and later freeing a kept chart costs more than the cache saves (bench/). A
    keystroke stream, which re-sends its chart, is kept from its second call (``snapshot_cache_admission``).
    """

    def __init__(
        self,
        entries: int = 16,
        seconds: float = 120.0,
        max_resources: int = 2_000,
        max_bytes: int = 2 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        admit_on_sight: int = 1,
    ) -> None:
        super().__init__(entries, seconds, clock)
        self.max_resources, self.max_bytes = max_resources, max_bytes
        self.admit_on_sight = admit_on_sight
        self._sightings: cachetools.TTLCache[int, int] = cachetools.TTLCache(
            maxsize=max(entries, 1) * 16, ttl=seconds, timer=clock
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            settings.snapshot_cache_entries,
            settings.snapshot_cache_seconds,
            settings.snapshot_cache_max_resources,
            settings.snapshot_cache_max_bytes,
            admit_on_sight=settings.snapshot_cache_admission,
        )

    def admits(self, fingerprint: Hashable) -> bool:
        """Count a sighting of the chart ``fingerprint`` stands for; whether it is now to be kept."""
        if self.admit_on_sight <= 1:
            return True
        key = hash(fingerprint)
        with self._lock:
            seen = self._sightings.get(key, 0) + 1
            self._sightings[key] = seen
        return seen >= self.admit_on_sight

    def keeps(self, prefetch: Mapping[str, Any], size: int | None = None) -> bool:
        """Whether a chart with this prefetch (of ``size`` JSON bytes, when known) may be kept at all."""
        return (
            self.entries > 0
            and (size is None or size <= self.max_bytes)
            and resource_count(prefetch) <= self.max_resources
        )


class PrefetchParses(ChartCache):
    """Parsed prefetch values by the request bytes that carry them (``HookBody.prefetch_key``), per worker, in memory.

    The parsed prefetch of a typical chart (~350 resources, 300 KB) costs more to build and free than the rest of a
    cached call.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # ChartCache's bounds
        super().__init__(*args, **kwargs)
        self._kept: Counter[tuple[int, bytes, bytes]] = Counter()  # fingerprints of the keys held

    def on_add(self, key: bytes) -> None:
        self._kept[_fingerprint(key)] += 1

    def on_evict(self, key: bytes) -> None:
        fingerprint = _fingerprint(key)
        self._kept[fingerprint] -= 1
        if self._kept[fingerprint] <= 0:
            del self._kept[fingerprint]

    def get(self, key: Hashable) -> Any | None:
        """The parse kept for these bytes. A key whose fingerprint no kept key has is answered without hashing it: the
        bytes of a typical prefetch (300 KB) take ~0.2 ms to hash, which a first look would pay for nothing."""
        if isinstance(key, bytes) and _fingerprint(key) not in self._kept:
            return None
        return super().get(key)

    def remember(self, body: HookBody) -> None:
        """Keep a request's parsed prefetch for the next request that ends with the same bytes."""
        value = body.data.get("prefetch") if isinstance(body.data, dict) else None
        key = body.prefetch_key
        if (
            not body.reused
            and key is not None
            and isinstance(value, dict)
            and self.keeps(value, len(key))
            and self.admits((_patient(body.data), *_fingerprint(key)))  # a false match only keeps it
        ):
            self.put(key, value)


def _patient(data: dict[str, Any]) -> Any:
    """The patient a request is about (its context's ``patientId``): a chart's bytes may begin and end alike for every
    patient (the id only in the middle), so a sighting counts for one patient's chart only."""
    context = data.get("context")
    return context.get("patientId") if isinstance(context, dict) else None


def _fingerprint(key: bytes) -> tuple[int, bytes, bytes]:
    """A cheap stand-in for a prefetch's bytes: equal bytes have equal fingerprints (never the converse)."""
    return len(key), key[:512], key[-512:]


class SnapshotCache(ChartCache, Generic[T]):
    """Facts read from a prefetch, kept briefly in this worker's memory for the calls that re-send it.

    An EHR fires order-select on every keystroke of an order with the same prefetch, and re-sends it when a chart is
    reopened. The key is the prefetch's content with the patient, the day and the read settings, so a hit gives exactly
    the facts a fresh read would (draft orders are always read per call). It holds patient data in process memory only
    (never on disk), bounded as every ``ChartCache``; ``entries = 0`` turns it off. One cache serves one terminology
    (each ``Knowledge`` owns its own).

    The first look at a chart (no entry for that patient and day) costs nothing on the request path: the content is
    only serialised when there is an entry to compare it with, and a new reading is stored by ``get_or_read``'s third
    return value, which the service runs after its response has been sent.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # ChartCache's bounds
        super().__init__(*args, **kwargs)
        self._scopes: Counter[tuple[Any, ...]] = Counter()  # entries per scope (patient, day, …)

    def on_add(self, key: tuple[tuple[Any, ...], bytes]) -> None:
        self._scopes[key[0]] += 1

    def on_evict(self, key: tuple[tuple[Any, ...], bytes]) -> None:
        self._scopes[key[0]] -= 1
        if self._scopes[key[0]] <= 0:
            del self._scopes[key[0]]

    def get_or_read(
        self, scope: tuple[Any, ...], prefetch: Mapping[str, Any], read: Callable[[], T], content: bytes | None = None
    ) -> tuple[T, bool, Callable[[], None] | None]:
        """(the prefetch's reading, whether it came from the cache, a call that stores a new reading — or None).

        Keyed by ``scope`` and ``content``: bytes that determine the prefetch exactly, else the prefetch serialised.
        Run the third value once the response is on its way; a reading that is never stored is simply not reused.
        """
        if not self.keeps(prefetch, None if content is None else len(content)):
            return read(), False, None  # checked before serialising: a large chart pays nothing for the cache
        scope = (*scope, content is not None)  # the two kinds of key never meet
        if scope in self._scopes:  # a reading for this patient and day exists: is it of this very content?
            if content is None:
                try:
                    content = orjson.dumps(prefetch)
                except (TypeError, orjson.JSONEncodeError):
                    return read(), False, None
            cached = self.get((scope, content))
            if cached is not None:
                return cached, True, None
        reading = read()
        if not self.admits(scope):  # a first look at this patient and day: nothing kept yet (``admit_on_sight``)
            return reading, False, None
        return reading, False, lambda: self._store(scope, content, prefetch, reading)

    def _store(self, scope: tuple[Any, ...], content: bytes | None, prefetch: Mapping[str, Any], reading: T) -> None:
        if content is None:
            try:
                content = orjson.dumps(prefetch)
            except (TypeError, orjson.JSONEncodeError):
                return
        if self.keeps(prefetch, len(content)):
            self.put((scope, content), reading)
