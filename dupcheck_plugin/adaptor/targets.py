"""Is a connection URL aimed at this machine or a link-local service? (pure)

A CRM is never on loopback or link-local addresses; a cloud metadata
service (``169.254.169.254``) is, and so is whatever listens on this
machine. ``dupcheck check`` warns for such a URL unless the adaptor says
``allow_local_network = true``. Only literal hosts are judged: check does
no DNS.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_LOCAL_NAMES = {"localhost": "loopback", "metadata.google.internal": "link-local (cloud metadata)"}


def local_target(url: str) -> str | None:
    """``"loopback"`` or ``"link-local"`` when the URL's host is one, else None."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if host in _LOCAL_NAMES:
        return _LOCAL_NAMES[host]
    if host.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    return None


def origin_problem(url: str) -> str | None:
    """What keeps a literal ``scheme://host[:port]`` from being reached: a port out of
    range or not a number, a host with a space or another character no host name
    has. None when the origin is fine or is a template (judged per lead)."""
    head = url.split("/", 3)
    if "{" in "/".join(head[:3]):
        return None
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced IPv6 bracket
        return f"not a URL: {exc}"
    try:
        port = parts.port  # raises ValueError for a port that is not a number up to 65535
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        return f"the port of {parts.netloc!r} is not a number from 1 to 65535: every call would fail"
    host = parts.hostname or ""
    if not host:
        return "the URL names no host"
    if host.startswith("[") or ":" in host:  # an IPv6 literal
        return None
    bad = sorted({ch for ch in host if not (ch.isalnum() or ch in ".-_")})  # letters of any script: IDNA
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        return f"the host {host!r} holds {shown}, which no host name has: every call would fail"
    return None
