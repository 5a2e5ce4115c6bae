"""The ``cors_origins`` pattern language, compiled to anchored regular expressions for flask-cors.

An entry is one of:

- an exact origin ``scheme://host[:port]`` (scheme ``http`` or ``https``; host a DNS name, an IPv4 address or a
  bracketed IPv6 address; a default port — 443 for https, 80 for http — is the same origin as none);
- ``scheme://*.domain[:port]``: one or more labels in front of ``domain`` (``https://*.ehr.example`` allows
  ``https://portal.ehr.example`` and ``https://a.b.ehr.example``, not ``https://ehr.example`` itself — list that
  separately — and never ``https://ehr.example.attacker.test``); ``domain`` has at least two labels, so a pattern
  cannot cover a whole top-level domain;
- ``*`` alone: any origin (development only; refused in production by :meth:`Settings.validate`).

Nothing else: no path, query, user-info or trailing slash, no ``*`` anywhere else. Matching is anchored at both
ends and case-insensitive (schemes and host names are). Malformed entries are refused at start-up.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"\A{_LABEL}(?:\.{_LABEL})*\Z", re.IGNORECASE)
_ENTRY = re.compile(
    r"\A(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[^\]/]*\]|[^:/\[\]]*)(?::(?P<port>\d{1,5}))?\Z", re.IGNORECASE
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
WILDCARD = "*"


def compile_origin(entry: str) -> re.Pattern[str]:
    """The anchored, case-insensitive regular expression an ``Origin`` header must match for ``entry``."""
    m = _ENTRY.match(entry)
    if not m:
        raise ValueError(f"cors_origins entry {entry!r} is not scheme://host[:port] (no path, no trailing slash)")
    scheme, host, port = m.group("scheme").lower(), m.group("host").lower(), m.group("port")
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"cors_origins entry {entry!r}: scheme must be http or https")
    if port is not None and not 0 < int(port) <= 65535:
        raise ValueError(f"cors_origins entry {entry!r}: port out of range")
    if host.startswith("*."):
        domain = host[2:]
        if not _DNS_NAME.match(domain) or "." not in domain:
            raise ValueError(f"cors_origins entry {entry!r}: '*.' must be followed by a domain of at least two labels")
        host_re = rf"(?:{_LABEL}\.)+{re.escape(domain)}"
    else:
        if host.startswith("["):
            try:
                host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
            except ValueError:
                raise ValueError(f"cors_origins entry {entry!r}: not an IPv6 address") from None
        elif not _DNS_NAME.match(host):
            raise ValueError(
                f"cors_origins entry {entry!r}: host is not a DNS name or an address "
                "(a wildcard is allowed only as a leading '*.')"
            )
        host_re = re.escape(host)
    default = _DEFAULT_PORTS[scheme]
    if port is None or int(port) == default:
        port_re = f"(?::{default})?"  # browsers omit the default port; accept it written out too
    else:
        port_re = f":{int(port)}"
    return re.compile(rf"\A{re.escape(scheme)}://{host_re}{port_re}\Z", re.IGNORECASE)


def compile_origins(entries: list[str]) -> list[re.Pattern[str]] | str:
    """What flask-cors is given: ``"*"`` when the wildcard is listed, else one compiled pattern per entry."""
    if WILDCARD in entries:
        return WILDCARD
    return [compile_origin(e) for e in entries]
