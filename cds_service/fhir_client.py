"""The one outbound FHIR client: allowlist, SSRF-safe targets, timeouts, no redirects, byte cap, deadline.

Every outbound request of a hook call goes through :class:`FHIRClient`. It refuses targets that are not on
the configured allowlist, that resolve to loopback/private/link-local/metadata addresses (unless allowed),
and ``next`` links on another origin. It connects only to the address it checked (no second DNS lookup, so a
name cannot be re-pointed between the check and the connection). Redirects are never followed. Bodies are read
in chunks up to a cap. All requests of one call share a :class:`Deadline`.

The deadline bounds the whole exchange whatever the server does. Socket timeouts alone cannot: a read timeout
restarts with every byte, so a server dripping its status line, headers, TLS handshake or body one byte at a time
never trips it. So the deadline is also a watchdog: every socket the client opens is registered with it, and when
the deadline passes a timer shuts those connections down (through a duplicate descriptor the deadline owns, so it
works mid-handshake and can never touch a descriptor the system has reused), which ends any blocked read at once.
Name resolution runs in a helper thread the call waits for only until the deadline. Each request's connect and read
timeouts are also capped by the time left.
"""

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

import orjson
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
_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                       ipaddress.ip_address("100.100.100.200")}


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
            _RESOLVERS = (os.getpid(), concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fhir-dns"))
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
        host, port = rest[1:end], rest[end + 2:] if len(rest) > end + 1 else ""
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
    if (ip.is_private or getattr(ip, "is_shared", False) or not ip.is_global) and not settings.fhir_allow_private_networks:
        raise FHIRTargetRefused("private-network address")


Pins = dict[tuple[str, int], str]  # (host, port) → the address the SSRF check approved


def _pinned(connection: type[HTTPConnection], pins: Pins, on_connect: Callable[[socket.socket], None]) -> type[HTTPConnection]:
    """``connection`` opening its socket to the approved address of its host; the Host header, TLS SNI and the
    certificate check still use the name. Every new socket is handed to ``on_connect`` (the deadline's watchdog)
    before anything is sent or read on it, TLS handshake included."""

    class Pinned(connection):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            address = pins.get((self.host.strip("[]").lower(), self.port or 0))
            if address is None:
                raise NewConnectionError(self, "address not approved by the SSRF check")
            try:
                sock = create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)
                on_connect(sock)
                return sock
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
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
            "http": type("WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _watched(HTTPConnection, self._on_connect)}),
            "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": _watched(HTTPSConnection, self._on_connect)}),
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


class FHIRClient:
    """GETs FHIR JSON from one server for one hook call."""

    def __init__(self, base_url: str, settings: Settings, *, access_token: str | None = None,
                 deadline: Deadline | None = None, session: requests.Session | None = None,
                 resolver: Resolver = system_resolver) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.origin = Origin.of(self.base_url)
        self._token = access_token
        self.deadline = deadline or Deadline(settings.fhir_call_deadline)
        self._resolver = resolver
        self._pins: Pins = {}
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = PinnedAdapter(self._pins, self.deadline.watch)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self.requests_made = 0
        self._check_origin_allowed(self.origin)

    def __repr__(self) -> str:  # never show the token
        return f"FHIRClient({self.base_url!r})"

    def close(self) -> None:
        """Close this client's connections (a session it was given is the giver's to close)."""
        if self._own_session:
            self._session.close()

    def _check_origin_allowed(self, origin: Origin) -> None:
        if not any(_pattern_matches(p, origin) for p in self.settings.fhir_allowed_origins):
            raise FHIRTargetRefused("fhirServer is not on the allowlist")
        key = (origin.host.strip("[]"), origin.port)
        if key in self._pins:
            return
        try:
            literal = ipaddress.ip_address(origin.host.strip("[]"))
            addresses = [str(literal)]
        except ValueError:
            if origin.host == "localhost" or origin.host.endswith(".localhost"):
                addresses = ["127.0.0.1"]
            else:
                self.deadline.check()
                addresses = resolve_within(self._resolver, origin.host, origin.port, self.deadline)
        if not addresses:
            raise FHIRAccessError("host has no address")
        for address in addresses:
            check_address(address, self.settings)
        self._pins[key] = addresses[0]

    def url_for(self, relative: str) -> str:
        return f"{self.base_url}/{relative.lstrip('/')}"

    def get_json(self, url: str) -> dict[str, Any]:
        """GET one URL on this server's origin; returns the parsed JSON object."""
        if Origin.of(url) != self.origin:
            raise FHIRTargetRefused("URL is not on the fhirServer origin")
        left = self.deadline.check()
        headers = {"Accept": "application/fhir+json, application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        timeout = (min(self.settings.fhir_connect_timeout, left), min(self.settings.fhir_read_timeout, left))
        self.requests_made += 1
        try:
            with self._session.get(url, headers=headers, timeout=timeout, allow_redirects=False, stream=True) as resp:
                if 300 <= resp.status_code < 400:
                    raise FHIRTargetRefused(f"FHIR server answered a redirect ({resp.status_code}); not followed")
                if resp.status_code != 200:
                    raise FHIRAccessError(f"FHIR server answered HTTP {resp.status_code}", fhir_status=resp.status_code)
                declared = resp.headers.get("Content-Length")
                cap = self.settings.fhir_max_response_bytes
                if declared and declared.isdigit() and int(declared) > cap:
                    raise FHIRAccessError("FHIR response larger than the configured cap")
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_content(chunk_size=16384):
                    size += len(chunk)
                    if size > cap:
                        raise FHIRAccessError("FHIR response larger than the configured cap")
                    if self.deadline.expired():
                        raise FHIRAccessError("per-call deadline exceeded")
                    chunks.append(chunk)
        except FHIRAccessError:
            raise
        except Exception as exc:  # requests/urllib3/http.client/ssl/OS errors: whatever the server did, it is a failed fetch
            if self.deadline.expired():
                raise FHIRAccessError("per-call deadline exceeded") from None
            if isinstance(exc, requests.Timeout):
                raise FHIRAccessError("FHIR server timed out") from None
            raise FHIRAccessError(f"FHIR server unreachable ({type(exc).__name__})") from None
        if self.deadline.expired():  # the watchdog cut the body short: what was read is not the whole of it
            raise FHIRAccessError("per-call deadline exceeded")
        try:
            data = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise FHIRAccessError("FHIR server returned non-JSON") from None
        if not isinstance(data, dict) or "resourceType" not in data:
            raise FHIRAccessError("FHIR server returned JSON that is not a resource")
        return data

    def read(self, relative: str) -> dict[str, Any]:
        """Fetch a prefetch template result; searchsets are followed through ``next`` within caps."""
        data = self.get_json(self.url_for(relative))
        if data.get("resourceType") == "Bundle":
            return self.complete_bundle(data)
        return data

    def complete_bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """Follow ``next`` links (same origin only) and return one Bundle holding every entry."""
        entries = list(bundle.get("entry") or [])
        pages = 1
        next_url = _next_link(bundle)
        while next_url:
            if pages >= self.settings.fhir_max_pages or len(entries) >= self.settings.fhir_max_entries:
                raise FHIRAccessError("paged search exceeds the page/entry cap")
            page = self.get_json(next_url)
            if page.get("resourceType") != "Bundle":
                raise FHIRAccessError("next page is not a Bundle")
            entries.extend(page.get("entry") or [])
            pages += 1
            next_url = _next_link(page)
        if len(entries) > self.settings.fhir_max_entries:
            raise FHIRAccessError("paged search exceeds the page/entry cap")
        merged = {k: v for k, v in bundle.items() if k not in ("link", "entry")}
        merged["entry"] = entries
        return merged


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


class Outbound:
    """The outbound FHIR work of one hook call: one deadline over every request (``Deadline``), a client for the call's
    ``fhirServer`` when asked (``client``; None without one), and, when the call's outbound work is over (``close``, or
    leaving the ``with`` block), the deadline's watchdog stopped and every connection closed."""

    def __init__(self, fhir_server: str | None, access_token: str | None, settings: Settings, *,
                 session: requests.Session | None = None, resolver: Resolver = system_resolver) -> None:
        self._server, self._token, self._settings = fhir_server, access_token, settings
        self._session, self._resolver = session, resolver
        self.deadline = Deadline(settings.fhir_call_deadline)
        self._opened: list[FHIRClient] = []

    def client(self) -> FHIRClient | None:
        if not self._server:
            return None
        fhir = FHIRClient(self._server, self._settings, access_token=self._token, deadline=self.deadline,
                          session=self._session, resolver=self._resolver)
        self._opened.append(fhir)
        return fhir

    def close(self) -> None:
        self.deadline.close()
        for fhir in self._opened:
            fhir.close()

    def __enter__(self) -> Outbound:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
