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

import ipaddress
from typing import Any

import orjson
import requests

from .config import Settings
from .errors import FHIRAccessError, FHIRTargetRefused
from .fhir_transport import (
    Deadline,
    Origin,
    PinnedAdapter,
    Pins,
    Resolver,
    _pattern_matches,
    check_address,
    resolve_within,
    system_resolver,
    watched_session,
)

__all__ = ["Deadline", "FHIRClient", "Outbound", "Resolver", "check_address", "system_resolver", "watched_session"]


class FHIRClient:
    """GETs FHIR JSON from one server for one hook call."""

    def __init__(
        self,
        base_url: str,
        settings: Settings,
        *,
        access_token: str | None = None,
        deadline: Deadline | None = None,
        session: requests.Session | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
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

    # Complexity: the outbound guards in sequence (allowlist, pinning, no redirects, size cap, deadline, status).
    def get_json(self, url: str) -> dict[str, Any]:  # noqa: C901
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
        except (
            Exception
        ) as exc:  # requests/urllib3/http.client/ssl/OS errors: whatever the server did, it is a failed fetch
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

    def __init__(
        self,
        fhir_server: str | None,
        access_token: str | None,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._server, self._token, self._settings = fhir_server, access_token, settings
        self._session, self._resolver = session, resolver
        self.deadline = Deadline(settings.fhir_call_deadline)
        self._opened: list[FHIRClient] = []

    def client(self) -> FHIRClient | None:
        if not self._server:
            return None
        fhir = FHIRClient(
            self._server,
            self._settings,
            access_token=self._token,
            deadline=self.deadline,
            session=self._session,
            resolver=self._resolver,
        )
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
