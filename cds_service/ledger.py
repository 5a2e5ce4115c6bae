"""The card ledger: which cards were issued (uuid → service, topic, indicator, covered topics), for the feedback
summary, written off the clinical path by a background thread per process that also keeps the feedback store within
its retention."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .feedback import FeedbackStore

log = logging.getLogger("backpain_cds.request")


class CardLedger:
    """Records issued cards (uuid → topic) for the feedback summary, in a background thread per process, and keeps the
    feedback store within its retention.

    Off the clinical path: a call only queues its cards. The thread writes whatever has queued in one transaction
    (after a short linger), so a busy worker commits a few times a second instead of once per hook call. A crash can
    lose the last moments of issued-card records (the summary then counts that feedback under "unknown"), never
    feedback itself, which is written before it is acknowledged.

    The same thread prunes the store (``FeedbackStore.prune``) at most once per ``PRUNE_INTERVAL`` per process — the
    app prunes once at start-up too — deleting only what is older than the retention settings.
    """

    LINGER_SECONDS = 0.05
    MAX_BATCH = 500
    PRUNE_INTERVAL = 3600.0  # seconds: a retention counted in days needs no finer grain

    def __init__(
        self,
        store: FeedbackStore,
        *,
        feedback_days: int = 400,
        issued_cards_days: int = 30,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[str, list[dict[str, Any]], dict[str, tuple[str, ...]]]] = queue.Queue(
            maxsize=10_000
        )
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._retention = (feedback_days, issued_cards_days)
        self._clock = clock
        self._next_prune = time.monotonic() + self.PRUNE_INTERVAL

    def ensure_running(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    threading.Thread(target=self._run, name="card-ledger", daemon=True).start()

    def record(
        self, service_id: str, cards: list[dict[str, Any]], covers: dict[str, tuple[str, ...]] | None = None
    ) -> None:
        """Queue a call's cards; ``covers``: card uuid → other topics whose facts the card carries."""
        self.ensure_running()
        if not cards:
            return
        try:
            self._queue.put_nowait((service_id, cards, covers or {}))
        except queue.Full:
            log.warning("card ledger queue full; issued-card records dropped")

    def prune(self) -> None:
        """Delete what is older than the retention settings; never fails the caller."""
        self._next_prune = time.monotonic() + self.PRUNE_INTERVAL
        try:
            feedback, cards = self._store.prune(self._clock(), *self._retention)
        except Exception as exc:
            log.warning("feedback store prune failed", extra={"error": type(exc).__name__})
            return
        if feedback or cards:
            log.info("feedback store pruned", extra={"feedback_deleted": feedback, "issued_cards_deleted": cards})

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=max(0.0, self._next_prune - time.monotonic()))
            except queue.Empty:
                self.prune()
                continue
            batch = [first]
            time.sleep(self.LINGER_SECONDS)
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._store.record_cards(
                    [(service, cards) for service, cards, _ in batch],
                    {uuid: topics for _, _, covers in batch for uuid, topics in covers.items()},
                )
            except Exception as exc:  # the ledger must never take the service down
                log.warning("card ledger write failed", extra={"error": type(exc).__name__})
            finally:
                for _ in batch:
                    self._queue.task_done()
                del batch, first  # not held while waiting for the next call's cards
            if time.monotonic() >= self._next_prune:
                self.prune()

    def flush(self, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)
