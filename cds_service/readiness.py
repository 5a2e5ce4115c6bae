"""Readiness (``GET /ready``): can this process answer hook calls now? Each check is a named callable that raises when
its dependency cannot answer; all of them run at once, each in a thread waited for at most ``timeout`` seconds, so a
probe is answered within about that time whatever a database or Redis does.

A failure is reported by check name with a short reason: an exception's class name or "timed out" — never its
message, which can carry a connection string (a password) or a host the operator did not mean to publish.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

Check = Callable[[float], None]  # raises when not ready; given the seconds it may take


def run_checks(checks: Mapping[str, Check], timeout: float) -> dict[str, str]:
    """Failing check name → reason; empty when every check passed within ``timeout``."""
    passed: set[str] = set()
    failed: dict[str, str] = {}
    lock = threading.Lock()

    def run(name: str, check: Check) -> None:
        try:
            check(timeout)
        except NotReady as exc:  # the check's own finding: fixed text
            with lock:
                failed[name] = str(exc)
        except Exception as exc:  # whatever the driver raised, the dependency did not answer: its class, not its text
            with lock:
                failed[name] = type(exc).__name__
        else:
            with lock:
                passed.add(name)

    threads = [threading.Thread(target=run, args=item, name=f"ready-{item[0]}", daemon=True) for item in checks.items()]
    for thread in threads:
        thread.start()
    end = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))  # one budget for all: the checks run at once
    with lock:
        return {name: failed.get(name, f"timed out after {timeout:g} s") for name in checks if name not in passed}


def require(condition: bool, reason: str) -> None:
    if not condition:
        raise NotReady(reason)


class NotReady(Exception):
    """A check's own finding (not a driver's error); its name is the reason reported."""


def redis_check(url: str) -> Check:
    def check(timeout: float) -> None:
        import redis  # optional dependency: only when redis_url is configured

        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            if not client.ping():
                raise NotReady("no PONG")
        finally:
            client.close()

    return check
