"""Access tokens the simulator's token endpoints hand out, and when each one dies.

Vendors' token endpoints (``zoho.py``: ``POST /oauth/v2/token``;
``salesforce.py``: ``POST /services/oauth2/token``) issue tokens here; every
API call whose credential is an issued token is checked here first, and an
expired one gets the vendor's 401. A credential the simulator never issued is
left to the ``auth`` knob (any token when it is unset), as before.

Client ids, secrets and refresh tokens: any non-empty value is accepted,
except a refresh token that was revoked (``POST /_sim/oauth/revoke``, or
replaced by rotation).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from .limits import EPSILON, Clock, Limits, expires_in


@dataclass
class Issued:
    vendor: str
    expires_at: float | None  # simulated seconds; None: never


class TokenDesk:
    """Issued access tokens, revoked refresh tokens, and the clock they live by."""

    def __init__(self, clock: Clock, limits: Limits):
        self.clock, self.limits = clock, limits
        self._access: dict[str, Issued] = {}
        self._revoked: set[str] = set()

    def issue(self, vendor: str, prefix: str, lifetime: float | None) -> tuple[str, int | None]:
        """A new access token and its ``expires_in`` (real seconds; None: it does not expire)."""
        token = prefix + secrets.token_hex(16)
        now = self.clock.now()
        self._access[token] = Issued(vendor, None if lifetime is None else now + lifetime)
        return token, None if lifetime is None else expires_in(self.clock, lifetime)

    def state(self, token: str | None) -> str:
        """``valid``, ``expired`` or ``unknown`` (not issued here)."""
        issued = self._access.get(token or "")
        if issued is None:
            return "unknown"
        if issued.expires_at is not None and self.clock.now() >= issued.expires_at - EPSILON:
            return "expired"
        return "valid"

    def refresh_token_ok(self, refresh_token: str | None) -> bool:
        return bool(refresh_token) and refresh_token not in self._revoked

    def revoke(self, refresh_token: str) -> None:
        self._revoked.add(refresh_token)

    def new_refresh_token(self, prefix: str) -> str:
        return prefix + secrets.token_hex(20)

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        live = sum(1 for i in self._access.values() if i.expires_at is None or i.expires_at > now)
        return {"issued": len(self._access), "live": live, "revoked_refresh_tokens": len(self._revoked)}


def refresh_grant(desk: TokenDesk, params: dict[str, str]) -> str | None:
    """What is wrong with a refresh_token grant (``grant_type``, ``client``, ``refresh_token``), or None."""
    if params.get("grant_type") != "refresh_token":
        return "grant_type"
    if not params.get("client_id") or not params.get("client_secret"):
        return "client"
    if not desk.refresh_token_ok(params.get("refresh_token")):
        return "refresh_token"
    return None


def form(req_body: Any, query: dict[str, str]) -> dict[str, str]:
    """Token request parameters: the form body, or the query string (Zoho documents both)."""
    params = dict(query)
    if isinstance(req_body, dict):
        params.update({k: str(v) for k, v in req_body.items()})
    return params
