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
