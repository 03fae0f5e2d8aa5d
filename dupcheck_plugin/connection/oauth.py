"""OAuth 2.0 access tokens for a CRM connection, kept fresh.

Grants: ``refresh_token`` (Zoho, HubSpot public apps, GoHighLevel,
Salesforce), ``client_credentials`` and ``jwt_bearer`` (Salesforce
server-to-server). Authlib builds the token requests and signs the JWT
assertion (its httpx client is deprecated for httpx in favour of httpx2 and
cannot share our CRM client, so the token requests go through a small httpx
client here).

- A token is refreshed before it expires (from ``expires_in``, a margin of
  a fifth of its life, at most 60 s), and once more after a 401 answer
  (Salesforce ``INVALID_SESSION_ID``, Zoho ``INVALID_TOKEN``; HubSpot says a
  401 is no sure sign, so it is one retry, not a loop).
- One refresh at a time: however many requests wait on an expired token,
  one token request is made; the others take its result (or its error).
- A rotated refresh token (GoHighLevel, Salesforce if configured) is
  written to ``token_file`` (mode 0600) at once, so a restart does not fall
  back to the dead one. The file remembers a hash of the refresh token it
  started from: a new one set by the operator wins over the file.
- Tokens and secrets never reach a log line, a decision record or
  ``render``: the request carries ``Authorization: <scheme> ****`` in the
  masked copy; the real header is added by :class:`OAuth2Auth` on the way out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncGenerator, Mapping

import httpx
from authlib.common.urls import url_decode
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc7523 import JWTBearerGrant
from joserfc.jwk import RSAKey

from ..adaptor.headers import unsendable
from ..http.call import CallRefused
from .secrets import SecretMissing, Secrets

log = logging.getLogger(__name__)

GRANT_TYPES = {"refresh_token": "refresh_token", "client_credentials": "client_credentials",
               "jwt_bearer": JWTBearerGrant.GRANT_TYPE}
# Zoho's data centres: accounts server (tokens) and API domain
ZOHO_DC = {
    "com": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "com.au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    "uk": ("https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    "com.cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
}
# provider -> (token URL, Authorization scheme)
PROVIDERS = {
    "zoho": (None, "Zoho-oauthtoken"),  # the token URL follows the data centre (dc)
    "hubspot": ("https://api.hubapi.com/oauth/v1/token", "Bearer"),
    "gohighlevel": ("https://services.leadconnectorhq.com/oauth/token", "Bearer"),
    "salesforce": ("https://login.salesforce.com/services/oauth2/token", "Bearer"),
}
SALESFORCE_AUDIENCE = "https://login.salesforce.com"
MAX_MARGIN = 60.0  # seconds before expiry that a token is refreshed (a fifth of its life if shorter)
# a grant the token endpoint refused is not asked again with the same credentials for this long:
# every lead would otherwise make its own doomed token request
REFUSAL_HOLD = 60.0
_ANY_CREDENTIALS = ""  # a refusal held whatever the credentials (not a hash): the token itself was unusable


@dataclass(frozen=True)
class OAuthSettings:
    """A connection's ``auth = { type = "oauth2", ... }`` table, resolved.
    Credential fields hold secret *names* (environment variables)."""

    node_id: str
    grant: str
    token_url: str
    scheme: str
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    username: str | None = None
    private_key: str | None = None
    audience: str | None = None
    scope: str | None = None
    token_file: Path | None = None
    lifetime: float | None = None  # when the token answer has no expires_in (Salesforce)
    api_origin: str | None = None  # Zoho: the data centre's API domain

    @classmethod
    def from_config(cls, node_id: str, auth: Mapping[str, Any], base_dir: Path | None,
                    environ: Mapping[str, str]) -> "OAuthSettings":
        provider = auth.get("provider")
        default_url, scheme = PROVIDERS.get(provider, (None, "Bearer"))
        api_origin = None
        if provider == "zoho":
            accounts, api_origin = ZOHO_DC[auth.get("dc", "com")]
            default_url = f"{accounts}/oauth/v2/token"
        token_url = auth.get("token_url") or default_url
        grant = auth["grant"]
        token_file = None
        if grant == "refresh_token":
            token_file = Path(auth["token_file"]) if auth.get("token_file") else default_token_file(
                node_id, token_url, auth.get("client_id", ""), environ)
            if not token_file.is_absolute() and base_dir is not None:
                token_file = base_dir / token_file
        return cls(node_id=node_id, grant=grant, token_url=token_url, scheme=auth.get("scheme", scheme),
                   client_id=auth.get("client_id"), client_secret=auth.get("client_secret"),
                   refresh_token=auth.get("refresh_token"), username=auth.get("username"),
                   private_key=auth.get("private_key"),
                   audience=auth.get("audience") or (SALESFORCE_AUDIENCE if grant == "jwt_bearer" else None),
                   scope=auth.get("scope"), token_file=token_file, lifetime=auth.get("lifetime"),
                   api_origin=api_origin)

    def secret_names(self) -> list[tuple[str, str]]:
        """(config key, secret name) of every secret this connection names."""
        keys = ("client_id", "client_secret", "refresh_token", "username", "private_key")
        return [(k, getattr(self, k)) for k in keys if getattr(self, k)]


def default_token_file(node_id: str, token_url: str, client_id: str, environ: Mapping[str, str]) -> Path:
    """Where a rotated refresh token is kept when the workflow names no file:
    ``$DUPCHECK_STATE_DIR`` (else ``$XDG_STATE_HOME/dupcheck``, else
    ``~/.local/state/dupcheck``) / ``oauth-<node>-<hash>.json``."""
    base = environ.get("DUPCHECK_STATE_DIR") or os.path.join(
        environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "dupcheck")
    digest = hashlib.sha256(f"{token_url}\n{client_id}".encode()).hexdigest()[:12]
    return Path(base) / f"oauth-{node_id}-{digest}.json"


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class RefreshTokenFile:
    """The current refresh token, written atomically with mode 0600."""

    def __init__(self, path: Path):
        self.path = path

    def load(self, seed: str) -> str | None:
        """The rotated token, if the file was started from ``seed``."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(doc, dict) and doc.get("seed") == _fingerprint(seed) and isinstance(doc.get("refresh_token"), str):
            return doc["refresh_token"]
        return None  # absent, unreadable, or from an older seed: the operator's token wins

    def save(self, seed: str, token: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".oauth-", suffix=".tmp")  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"seed": _fingerprint(seed), "refresh_token": token}, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass
class AccessToken:
    value: str
    refresh_at: float | None  # time.monotonic(); None: only a 401 says it is over
    after_401: bool = False  # fetched because the previous one was refused
    worked: bool = False  # a request with it was answered other than 401

    def due(self, now: float) -> bool:
        return self.refresh_at is not None and now >= self.refresh_at


class TokenKeeper:
    """One connection's access token: fetched when first needed, refreshed
    when due or refused, one token request at a time."""

    def __init__(self, settings: OAuthSettings, secrets: Secrets, *, timeout: float = 10.0):
        self.s = settings
        self.secrets = secrets
        self.timeout = timeout
        self.store = RefreshTokenFile(settings.token_file) if settings.token_file else None
        self._token: AccessToken | None = None
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None
        self._attempts = 0  # token requests made
        self._failure: CallRefused | None = None  # the last token request's failure, if it failed
        self._refused: tuple[str, float, CallRefused] | None = None  # (credentials hash, when, error)
        self._rotated: tuple[str, str] | None = None  # (seed, refresh token) rotated in this process
        self._unsaved = False  # the last rotated token could not be written to the file
        self.grants = 0
        self.failures = 0

    async def current(self, stale: AccessToken | None = None) -> AccessToken:
        """A token that is not due and is not ``stale`` (the one a 401 refused)."""
        token = self._token
        if token is not None and token is not stale and not token.due(time.monotonic()):
            return token
        if self._lock is None:
            self._lock = asyncio.Lock()
        seen = self._attempts
        async with self._lock:
            token = self._token
            if token is not None and token is not stale and not token.due(time.monotonic()):
                return token  # another request refreshed it while this one waited
            if self._attempts != seen and self._failure is not None:
                raise self._failure  # it failed while this one waited: do not ask again at once
            self._attempts += 1
            try:
                self._token = await self._fetch(after_401=stale is not None)
                self._failure = None
            except CallRefused as exc:
                self._failure = exc
                self.failures += 1
                log.warning("OAuth token for %s: %s", self.s.node_id, exc.detail)
                raise
            return self._token

    async def _fetch(self, *, after_401: bool) -> AccessToken:
        try:
            params, seed = self._params()
        except SecretMissing as exc:
            raise CallRefused("auth", str(exc)) from None
        credentials = hashlib.sha256(json.dumps(
            {k: v for k, v in params.items() if k != "assertion"} | {"key": self._key_hint()}, sort_keys=True).encode()).hexdigest()
        if (self._refused is not None and self._refused[0] in (credentials, _ANY_CREDENTIALS)
                and time.monotonic() - self._refused[1] < REFUSAL_HOLD):
            raise self._refused[2]
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        body = dict(url_decode(prepare_token_request(GRANT_TYPES[self.s.grant], **params)))
        try:
            resp = await self._client.post(self.s.token_url, data=body, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise CallRefused("auth", f"token endpoint unreachable: {type(exc).__name__}") from None
        try:
            answer = _token_answer(resp)
        except CallRefused as exc:
            if resp.status_code < 500:  # refused, not broken: the same credentials will be refused again
                self._refused = (credentials, time.monotonic(), exc)
            raise
        self._refused = None
        self.grants += 1
        new_refresh = answer.get("refresh_token")
        if self.s.grant == "refresh_token" and isinstance(new_refresh, str) and new_refresh != params["refresh_token"]:
            self._rotated = (seed, new_refresh)  # the old one is dead: keep the new one even if the file fails
            try:
                if self.store is not None:
                    self.store.save(seed, new_refresh)
                self._unsaved = False
                log.info("OAuth refresh token for %s rotated and saved", self.s.node_id)
            except OSError as exc:
                self._unsaved = True
                log.error("OAuth refresh token for %s rotated but not saved to %s (%s): a restart will need a new one",
                          self.s.node_id, self.store.path, type(exc).__name__)
        problem = unsendable("Authorization", answer["access_token"])
        if problem is not None:  # checked after the rotation above: a new refresh token is kept all the same
            # a control character or a letter that is not ASCII: no request could carry it (each
            # transport would refuse or mangle it, and count it against the lead): the CRM's token is
            # at fault, so the leads go to on_error as auth, and the endpoint is not asked at every lead
            refused = CallRefused("auth", f"the token endpoint answered an access_token no request can carry ({problem})")
            self._refused = (_ANY_CREDENTIALS, time.monotonic(), refused)
            raise refused
        lifetime = _lifetime(answer.get("expires_in"), self.s.lifetime)
        refresh_at = None if lifetime is None else time.monotonic() + lifetime - min(MAX_MARGIN, lifetime / 5)
        log.info("OAuth token for %s obtained (grant %s, %s)", self.s.node_id, self.s.grant,
                 f"expires in {lifetime:g}s" if lifetime is not None else "no expiry given")
        return AccessToken(answer["access_token"], refresh_at, after_401=after_401)

    def _params(self) -> tuple[dict[str, str], str | None]:
        s, get = self.s, self.secrets.get
        params: dict[str, str] = {}
        seed = None
        if s.grant == "refresh_token":
            seed = get(s.refresh_token)
            # the file first: another process (or a reloaded workflow) may have rotated it since;
            # this process's own rotation when the file could not take it
            saved = self.store.load(seed) if self.store and not self._unsaved else None
            rotated = self._rotated[1] if self._rotated and self._rotated[0] == seed else None
            params["refresh_token"] = saved or rotated or seed
            params["client_id"] = get(s.client_id)
            if s.client_secret:
                params["client_secret"] = get(s.client_secret)
        elif s.grant == "client_credentials":
            params["client_id"], params["client_secret"] = get(s.client_id), get(s.client_secret)
        else:
            try:
                key = RSAKey.import_key(get(s.private_key))  # a key object: Authlib's string form is deprecated
                assertion = JWTBearerGrant.sign(key, issuer=get(s.client_id), audience=s.audience,
                                                subject=get(s.username), alg="RS256", expires_in=180)
            except SecretMissing:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad key; its text may quote the key, so name the type only
                raise CallRefused("auth", f"cannot sign the JWT assertion with {s.private_key}: {type(exc).__name__}") from None
            params["assertion"] = assertion.decode() if isinstance(assertion, bytes) else assertion
        if s.scope:
            params["scope"] = s.scope
        return params, seed

    def _key_hint(self) -> str | None:
        """The private key's hash (jwt_bearer): a new key is new credentials."""
        if self.s.grant != "jwt_bearer":
            return None
        try:
            return _fingerprint(self.secrets.get(self.s.private_key))
        except SecretMissing:
            return None

    def snapshot(self) -> dict[str, Any]:
        token = self._token
        left = None
        if token is not None and token.refresh_at is not None:
            left = round(max(0.0, token.refresh_at - time.monotonic()), 1)
        return {"grant": self.s.grant, "has_token": token is not None, "refresh_in_s": left,
                "tokens_obtained": self.grants, "token_failures": self.failures,
                "last_error": self._failure.detail if self._failure else None}

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _lifetime(expires_in: Any, configured: float | None) -> float | None:
    try:
        value = float(expires_in)
    except (TypeError, ValueError):
        return configured
    return value if value > 0 else configured


def _token_answer(resp: httpx.Response) -> dict[str, Any]:
    """The token endpoint's JSON answer, or CallRefused("auth") naming the
    OAuth error (Zoho answers errors with HTTP 200 and an ``error`` key;
    HubSpot with ``status`` and ``message``)."""
    try:
        answer = resp.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CallRefused("auth", f"token endpoint answered HTTP {resp.status_code} without a JSON object")
    if resp.status_code != 200 or "error" in answer or not isinstance(answer.get("access_token"), str):
        # RFC 6749's error/error_description; HubSpot says status/message
        error = answer.get("error") or answer.get("status") or "no access_token"
        description = answer.get("error_description") or answer.get("message")
        text = f"{error}: {description}" if isinstance(description, str) else str(error)
        raise CallRefused("auth", f"token endpoint refused (HTTP {resp.status_code}): {text[:200]}")
    return answer


class OAuth2Auth(httpx.Auth):
    """Adds ``Authorization: <scheme> <token>`` to each CRM request; after a
    401 gets a fresh token and sends the request once more."""

    def __init__(self, keeper: TokenKeeper):
        self.keeper = keeper
        self.scheme = keeper.s.scheme

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.keeper.current()
        request.headers["Authorization"] = f"{self.scheme} {token.value}"
        response = yield request
        if response.status_code != 401:
            token.worked = True
            return
        if token.after_401 and not token.worked:
            return  # a fresh token was refused too: the 401 is not about expiry, the answer stands
        token = await self.keeper.current(stale=token)
        request.headers["Authorization"] = f"{self.scheme} {token.value}"
        response = yield request
        if response.status_code != 401:
            token.worked = True

    def sync_auth_flow(self, request):  # the CRM client is async only
        raise RuntimeError("OAuth2Auth works with httpx.AsyncClient only")
