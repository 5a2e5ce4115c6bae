"""The transport under the FHIR client: where a request may connect (SSRF checks on the resolved address, pinned so no
second lookup can re-point a name), and the per-call deadline that bounds the whole exchange — a watchdog that shuts
every connection of the call down when the deadline passes (a dripping server cannot hold it), and a name lookup
waited for only until then."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from .config import Settings
from .errors import FHIRAccessError, FHIRTargetRefused

Resolver = Callable[[str, int], list[str]]

# Cloud metadata endpoints that are not covered by the generic range checks.
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FHIRAccessError(f"cannot resolve host ({exc.strerror})") from None
    return [str(info[4][0]) for info in infos]


class Deadline:
    """A per-call time budget shared by every outbound request of that call, and the watchdog that enforces it.

    ``watch(sock)`` registers a connection; when the budget is spent a timer thread shuts every registered connection
    down, so no read can outlast it. ``close()`` (at the end of the call) stops the timer and releases the duplicates.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []  # duplicates of the connections' descriptors, owned here
        self._timer: threading.Timer | None = None
        self._closed = False
        self.fired = False  # the watchdog shut connections down: whatever was read since is incomplete

    def remaining(self) -> float:
        return self._end - self._clock()

    def expired(self) -> bool:
        return self.fired or self.remaining() <= 0

    def check(self) -> float:
        left = self.remaining()
        if left <= 0 or self.fired:
            raise FHIRAccessError("per-call deadline exceeded")
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock``'s connection down when the deadline passes (at once if it already has)."""
        duplicate = sock.dup()  # shutdown() acts on the connection, whichever descriptor names it
        with self._lock:
            if not (self.fired or self._closed):
                self._watched.append(duplicate)
                if self._timer is None:
                    self._timer = threading.Timer(max(0.0, self.remaining()), self._expire)
                    self._timer.name = "fhir-deadline"
                    self._timer.daemon = True
                    self._timer.start()
                return
        _shut(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self.fired = not self._closed
            watched, self._watched = self._watched, []
        for duplicate in watched:
            _shut(duplicate)

    def close(self) -> None:
        """The call is over: no more watching; release the duplicates (the connections themselves stay as they are)."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
            watched, self._watched = self._watched, []
        if timer is not None:
            timer.cancel()
        for duplicate in watched:
            duplicate.close()


def _shut(duplicate: socket.socket) -> None:
    try:
        duplicate.shutdown(socket.SHUT_RDWR)  # a recv blocked on this connection in another thread returns now
    except OSError:
        pass  # already closed by the peer
    finally:
        duplicate.close()


_RESOLVERS: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None
_RESOLVERS_LOCK = threading.Lock()


def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    """A few threads for name resolution, per process (a pool made before a fork has no threads in the child)."""
    global _RESOLVERS
    with _RESOLVERS_LOCK:
        if _RESOLVERS is None or _RESOLVERS[0] != os.getpid():
            _RESOLVERS = (
                os.getpid(),
                concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fhir-dns"),
            )
        return _RESOLVERS[1]


def resolve_within(resolver: Resolver, host: str, port: int, deadline: Deadline) -> list[str]:
    """``resolver(host, port)``, waited for only until the deadline (getaddrinfo itself cannot be interrupted)."""
    future = _resolver_pool().submit(resolver, host, port)
    try:
        return future.result(timeout=max(0.0, deadline.remaining()))
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise FHIRAccessError("name resolution did not finish within the per-call deadline") from None


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise FHIRTargetRefused("not an http(s) URL")
        if parts.username or parts.password:
            raise FHIRTargetRefused("credentials in URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FHIRTargetRefused("invalid port") from None
        return cls(parts.scheme, parts.hostname.lower(), port)


def _pattern_matches(pattern: str, origin: Origin) -> bool:
    scheme, _, rest = pattern.partition("://")
    if scheme != origin.scheme:
        return False
    host, port = rest, "*" if rest == "*" else ""
    if rest.startswith("["):  # IPv6 literal
        end = rest.index("]")
        host, port = rest[1:end], rest[end + 2 :] if len(rest) > end + 1 else ""
    elif ":" in rest:
        host, port = rest.rsplit(":", 1)
    if host != "*" and host.lower() != origin.host:
        return False
    if port in ("", None):
        return origin.port == (443 if origin.scheme == "https" else 80)
    return port == "*" or port == str(origin.port)


def check_address(address: str, settings: Settings) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES or ip.is_link_local:
        raise FHIRTargetRefused("link-local or cloud-metadata address")
    if ip.is_loopback:
        if not settings.fhir_allow_loopback:
            raise FHIRTargetRefused("loopback address")
        return
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        raise FHIRTargetRefused("unroutable address")
    if (
        ip.is_private or getattr(ip, "is_shared", False) or not ip.is_global
    ) and not settings.fhir_allow_private_networks:
        raise FHIRTargetRefused("private-network address")


Pins = dict[tuple[str, int], str]  # (host, port) → the address the SSRF check approved


def _pinned(
    connection: type[HTTPConnection], pins: Pins, on_connect: Callable[[socket.socket], None]
) -> type[HTTPConnection]:
    """``connection`` opening its socket to the approved address of its host; the Host header, TLS SNI and the
    certificate check still use the name. Every new socket is handed to ``on_connect`` (the deadline's watchdog)
    before anything is sent or read on it, TLS handshake included."""

    class Pinned(connection):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            address = pins.get((self.host.strip("[]").lower(), self.port or 0))
            if address is None:
                raise NewConnectionError(self, "address not approved by the SSRF check")
            try:
                sock = create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
                on_connect(sock)
                return sock
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc

    return Pinned


def _watched(connection: type[HTTPConnection], on_connect: Callable[[socket.socket], None]) -> type[HTTPConnection]:
    """``connection`` handing its new sockets to ``on_connect`` (connections to an HTTP(S) proxy: not pinned)."""

    class Watched(connection):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            on_connect(sock)
            return sock

    return Watched


class WatchedAdapter(HTTPAdapter):
    """A transport handing every socket it opens to ``on_connect`` (a deadline's watchdog), no retries.

    Connections to an HTTP(S) proxy (``HTTPS_PROXY`` in the environment) are watched too; a SOCKS proxy's are not
    (only their timeouts bound them)."""

    def __init__(self, on_connect: Callable[[socket.socket], None] = lambda sock: None) -> None:
        self._on_connect = on_connect
        super().__init__(max_retries=0)

    def _watched_pools(self) -> dict[str, type[HTTPConnectionPool]]:
        return {
            "http": type(
                "WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _watched(HTTPConnection, self._on_connect)}
            ),
            "https": type(
                "WatchedHTTPSPool",
                (HTTPSConnectionPool,),
                {"ConnectionCls": _watched(HTTPSConnection, self._on_connect)},
            ),
        }

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._watched_pools()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = self._watched_pools()
        return manager


class PinnedAdapter(WatchedAdapter):
    """A watched transport that connects only to the addresses in ``pins`` (filled by the client's SSRF check).

    Requests through a proxy are resolved by the proxy and are not pinned (they are still watched)."""

    def __init__(self, pins: Pins, on_connect: Callable[[socket.socket], None] = lambda sock: None) -> None:
        self._pins = pins
        super().__init__(on_connect)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http = _pinned(HTTPConnection, self._pins, self._on_connect)
        https = _pinned(HTTPSConnection, self._pins, self._on_connect)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }


def watched_session(deadline: Deadline) -> requests.Session:
    """A session whose every connection the deadline's watchdog shuts down when the deadline passes."""
    session = requests.Session()
    adapter = WatchedAdapter(deadline.watch)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
