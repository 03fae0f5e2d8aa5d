"""The simulator's vendors: each module answers like one CRM's search API.

Adding a vendor is adding one module here that defines ``VENDOR = Vendor(...)``
(its routes and its over-limit and unauthorized answers; optionally its
``Quota`` and its OAuth token endpoints) and appending the module's name to
``VENDOR_MODULES``. One simulator serves every vendor's routes at once, so
vendors' paths must not overlap.
"""

from __future__ import annotations

import importlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..contacts import ContactBook
from ..limits import Clock, Limits, Quota
from ..oauth import TokenDesk

VENDOR_MODULES: tuple[str, ...] = ("hubspot", "generic", "salesforce", "zoho", "pipedrive", "gohighlevel", "xml")


@dataclass(slots=True)
class SimRequest:
    method: str
    path: str
    params: dict[str, str]  # the route regex's named groups
    groups: tuple[str, ...]  # ... and all of its groups in order
    query: dict[str, str]  # repeated keys: the last one wins
    headers: Mapping[str, str]  # case-insensitive
    body: Any  # parsed JSON, a form dict, or the raw text ("" when none)
    content_type: str = ""
    raw: bytes = b""
    target: str = ""  # the path and query string exactly as sent (URL-encoded)

    def base_url(self) -> str:
        """The simulator's own URL as the client reached it (for ``instance_url``, ``api_domain``)."""
        return f"http://{self.headers.get('Host', '127.0.0.1')}"


@dataclass(slots=True)
class SimResponse:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes as given; None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None  # None: inferred from the body


Handler = Callable[[SimRequest, ContactBook], SimResponse]
TokenHandler = Callable[[SimRequest, TokenDesk], SimResponse]


@dataclass(frozen=True)
class Route:
    method: str
    path_regex: str  # matched against the whole path
    handler: Handler | TokenHandler  # token routes' handlers get the TokenDesk instead of the book
    name: str = ""  # label in the stats; default "METHOD path_regex"

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.path_regex)

    @property
    def label(self) -> str:
        return self.name or f"{self.method.upper()} {self.path_regex}"


def default_credentials(req: SimRequest) -> str | None:
    """The token the caller sent, wherever CRMs usually take one."""
    auth = req.headers.get("Authorization", "")
    if auth:
        scheme, _, rest = auth.partition(" ")
        return rest.strip() if scheme.lower() in ("bearer", "token", "zoho-oauthtoken") and rest else auth.strip()
    for header in ("X-Api-Key", "Api-Key", "X-Auth-Token"):
        if req.headers.get(header):
            return req.headers[header]
    body = req.body if isinstance(req.body, dict) else {}
    for key in ("api_key", "apikey", "api_token", "hapikey", "token"):
        value = req.query.get(key) or body.get(key)
        if value:
            return str(value)
    return None


def generic_server_error(status: int) -> SimResponse:
    return SimResponse(status, {"error": "server_error", "status": status, "message": "simulated server error"})


@dataclass(frozen=True)
class Vendor:
    name: str
    routes: tuple[Route, ...]
    over_limit: Callable[[], SimResponse]  # the simulator adds Retry-After
    unauthorized: Callable[[], SimResponse]
    server_error: Callable[[int], SimResponse] = generic_server_error
    credentials: Callable[[SimRequest], str | None] = default_credentials
    quota: Callable[[Limits, Clock], Quota] | None = None  # None: the vendor has no limits
    token_routes: tuple[Route, ...] = ()  # OAuth token endpoints: no auth, no quota
    expired: Callable[[], SimResponse] | None = None  # the 401 for an expired token (None: unauthorized)


def all_vendors() -> list[Vendor]:
    return [importlib.import_module(f"{__name__}.{name}").VENDOR for name in VENDOR_MODULES]


def correlation_id() -> str:
    return str(uuid.uuid4())
