"""The one outbound FHIR client: allowlist, SSRF-safe targets, timeouts, no redirects, byte cap, deadline.

Every outbound request of a hook call goes through :class:`FHIRClient`. It refuses targets that are not on
the configured allowlist, that resolve to loopback/private/link-local/metadata addresses (unless allowed),
and ``next`` links on another origin. It connects only to the address it checked (no second DNS lookup, so a
name cannot be re-pointed between the check and the connection). Redirects are never followed. Bodies are read
in chunks up to a cap. All requests of one call share a :class:`Deadline`.
"""

from __future__ import annotations

import ipaddress
import socket
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
    """A per-call time budget shared by every outbound request of that call."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()

    def check(self) -> float:
        left = self.remaining()
        if left <= 0:
            raise FHIRAccessError("per-call deadline exceeded")
        return left


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


def _pinned(connection: type[HTTPConnection], pins: Pins) -> type[HTTPConnection]:
    """``connection`` opening its socket to the approved address of its host; the Host header, TLS SNI and the
    certificate check still use the name."""

    class Pinned(connection):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            address = pins.get((self.host.strip("[]").lower(), self.port or 0))
            if address is None:
                raise NewConnectionError(self, "address not approved by the SSRF check")
            try:
                return create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
            except OSError as exc:
                raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc

    return Pinned


class PinnedAdapter(HTTPAdapter):
    """A transport that connects only to the addresses in ``pins`` (filled by the client's SSRF check).

    Requests through a proxy (``HTTPS_PROXY`` in the environment) are resolved by the proxy and are not pinned."""

    def __init__(self, pins: Pins) -> None:
        self._pins = pins
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _pinned(HTTPConnection, self._pins)}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": _pinned(HTTPSConnection, self._pins)}),
        }


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
        if session is None:
            session = requests.Session()
            adapter = PinnedAdapter(self._pins)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self.requests_made = 0
        self._check_origin_allowed(self.origin)

    def __repr__(self) -> str:  # never show the token
        return f"FHIRClient({self.base_url!r})"

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
                addresses = self._resolver(origin.host, origin.port)
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
                for chunk in resp.iter_content(chunk_size=65536):
                    size += len(chunk)
                    if size > cap:
                        raise FHIRAccessError("FHIR response larger than the configured cap")
                    if self.deadline.remaining() <= 0:
                        raise FHIRAccessError("per-call deadline exceeded")
                    chunks.append(chunk)
        except requests.Timeout:
            raise FHIRAccessError("FHIR server timed out") from None
        except requests.RequestException as exc:
            raise FHIRAccessError(f"FHIR server unreachable ({type(exc).__name__})") from None
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
