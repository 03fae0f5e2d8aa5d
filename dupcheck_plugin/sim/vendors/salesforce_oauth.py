"""Salesforce's OAuth 2.0 token endpoint: ``POST /services/oauth2/token`` (form body).

Grants: ``refresh_token`` (client_id, refresh_token), ``client_credentials``
(client_id, client_secret) and the JWT bearer flow
(``urn:ietf:params:oauth:grant-type:jwt-bearer`` with an ``assertion``).
The answer is Salesforce's: ``access_token``, ``instance_url`` (the
simulator), ``id``, ``token_type``, ``issued_at``, ``signature``, ``scope``
and **no** ``expires_in``: a session lives as long as the org's session
timeout (``salesforce_session_lifetime``, 2 h by default), and an API call
with an expired one answers 401 ``INVALID_SESSION_ID``. With
``salesforce_rotate_refresh_tokens`` a refresh answers a new
``refresh_token`` and the old one stops working. Errors: 400
``{"error", "error_description"}`` (``invalid_grant``,
``unsupported_grant_type``, ``invalid_client_id``, ``invalid_client``).

A JWT assertion is checked for its shape: three base64url parts, header
``alg: RS256``, claims ``iss``, ``sub``, ``aud`` (login/test.salesforce.com
or the simulator's own URL) and an ``exp`` in the future (wall clock, as
JWTs are). Its signature is not verified: the simulator has no org
certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from ..oauth import TokenDesk, form
from . import SimRequest, SimResponse

TOKEN = "/services/oauth2/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
ORG_ID, USER_ID = "00D5e000000SIMEAA", "0055e000001SIMAAA"
ACCESS_PREFIX = ORG_ID[:15] + "!AQ"  # Salesforce session ids start with the org id


def oauth_error(error: str, description: str, status: int = 400) -> SimResponse:
    return SimResponse(status, {"error": error, "error_description": description})


def _b64url_json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def assertion_problem(assertion: str | None, own_url: str) -> str | None:
    """Why a JWT bearer assertion is refused (None: it has the right shape and is not expired)."""
    parts = (assertion or "").split(".")
    if len(parts) != 3 or not all(parts):
        return "invalid assertion"
    try:
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
        base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except (ValueError, binascii.Error, UnicodeError):
        return "invalid assertion"
    if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
        return "invalid assertion"
    if not all(isinstance(claims.get(c), str) and claims[c] for c in ("iss", "sub", "aud")):
        return "invalid assertion"
    if claims["aud"].rstrip("/") not in (*AUDIENCES, own_url):
        return "audience is invalid"
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp <= time.time():
        return "expired assertion"  # JWTs carry wall-clock times, whatever the simulator's time scale
    return None


def token(req: SimRequest, desk: TokenDesk) -> SimResponse:
    p = form(req.body, req.query)
    grant = p.get("grant_type", "")
    refresh = None
    if grant == "refresh_token":
        if not p.get("client_id"):
            return oauth_error("invalid_client_id", "client identifier invalid")
        if not desk.refresh_token_ok(p.get("refresh_token")):
            return oauth_error("invalid_grant", "expired access/refresh token")
        if desk.limits.salesforce_rotate_refresh_tokens:
            desk.revoke(p["refresh_token"])
            refresh = desk.new_refresh_token("5Aep861")
    elif grant == "client_credentials":
        if not p.get("client_id"):
            return oauth_error("invalid_client_id", "client identifier invalid")
        if not p.get("client_secret"):
            return oauth_error("invalid_client", "invalid client credentials")
    elif grant == JWT_BEARER:
        problem = assertion_problem(p.get("assertion"), req.base_url())
        if problem:
            return oauth_error("invalid_grant", problem)
    else:
        return oauth_error("unsupported_grant_type", "grant type not supported")
    access, _ = desk.issue("salesforce", ACCESS_PREFIX, desk.limits.salesforce_session_lifetime)
    base = req.base_url()
    issued_at = str(int(time.time() * 1000))
    ident = f"{base}/id/{ORG_ID}/{USER_ID}"
    signature = base64.b64encode(hmac.new(b"crm-sim", (ident + issued_at).encode(), hashlib.sha256).digest()).decode()
    body = {"access_token": access, "signature": signature, "scope": "api" if grant != "refresh_token" else "api refresh_token",
            "instance_url": base, "id": ident, "token_type": "Bearer", "issued_at": issued_at}
    if refresh:
        body["refresh_token"] = refresh
    return SimResponse(200, body)
