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

from ..oauth import TokenDesk, form, refresh_grant
from . import SimRequest, SimResponse, correlation_id

TOKEN = "/oauth/v1/token"


REFUSALS = {"grant_type": ("BAD_GRANT_TYPE", "grant_type must be refresh_token here"),
            "client": ("BAD_CLIENT_ID", "missing or unknown client id"),
            "refresh_token": ("BAD_REFRESH_TOKEN", "missing or unknown refresh token")}


def token(req: SimRequest, desk: TokenDesk) -> SimResponse:
    p = form(req.body, req.query)
    wrong = refresh_grant(desk, p)
    if wrong:
        status, message = REFUSALS[wrong]
        return SimResponse(400, {"status": status, "message": message, "correlationId": correlation_id()})
    access, expires = desk.issue("hubspot", "CNb", desk.limits.hubspot_token_lifetime)
    body = {"token_type": "bearer", "refresh_token": p["refresh_token"], "access_token": access}
    if expires is not None:
        body["expires_in"] = expires
    return SimResponse(200, body)


def expired() -> SimResponse:
    return SimResponse(401, {"status": "error", "message": "The OAuth token used to make this call expired.",
                             "correlationId": correlation_id(), "category": "EXPIRED_AUTHENTICATION"})
