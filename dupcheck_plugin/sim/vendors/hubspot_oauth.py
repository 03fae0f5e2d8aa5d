"""HubSpot public apps' OAuth: ``POST /oauth/v1/token`` and the 401 for an expired access token.

``grant_type=refresh_token`` with ``client_id``, ``client_secret``,
``refresh_token`` (form body) answers ``{"token_type": "bearer",
"refresh_token", "access_token", "expires_in"}`` (``hubspot_token_lifetime``,
30 minutes); the refresh token stays the same. A refused grant answers 400
``{"status": "BAD_REFRESH_TOKEN" | "BAD_CLIENT_ID" | "BAD_GRANT_TYPE", "message"}``.
An API call with an expired token answers 401 ``EXPIRED_AUTHENTICATION``.
(Private-app tokens, the ``--token`` knob, never expire.)
"""

from __future__ import annotations

from ..oauth import TokenDesk, form
from . import SimRequest, SimResponse, correlation_id

TOKEN = "/oauth/v1/token"


def _refused(status: str, message: str) -> SimResponse:
    return SimResponse(400, {"status": status, "message": message, "correlationId": correlation_id()})


def token(req: SimRequest, desk: TokenDesk) -> SimResponse:
    p = form(req.body, req.query)
    if p.get("grant_type") != "refresh_token":
        return _refused("BAD_GRANT_TYPE", "grant_type must be refresh_token here")
    if not p.get("client_id") or not p.get("client_secret"):
        return _refused("BAD_CLIENT_ID", "missing or unknown client id")
    if not desk.refresh_token_ok(p.get("refresh_token")):
        return _refused("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
    access, expires = desk.issue("hubspot", "CNb", desk.limits.hubspot_token_lifetime)
    body = {"token_type": "bearer", "refresh_token": p["refresh_token"], "access_token": access}
    if expires is not None:
        body["expires_in"] = expires
    return SimResponse(200, body)


def expired() -> SimResponse:
    return SimResponse(401, {"status": "error", "message": "The OAuth token used to make this call expired.",
                             "correlationId": correlation_id(), "category": "EXPIRED_AUTHENTICATION"})
