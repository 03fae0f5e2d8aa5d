"""Who may open the settings console: admin tokens, the session cookie, CSRF.

Admin tokens are not insert tokens: they come from ``DUPCHECK_ADMIN_TOKENS``
and/or a file, each optionally named (``alice:token``) so the change log can
say who applied a change. A browser logs in once with a token; the session
cookie (signed by Starlette's SessionMiddleware, HttpOnly, SameSite=Strict)
then carries the name, a digest of the token (a removed token logs its
sessions out) and the CSRF token every state-changing request must echo.
Scripts may instead send ``Authorization: Bearer <admin token>``; such a
request carries no cookie, so CSRF does not apply to it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Mapping

from starlette.requests import Request

from ..auth import TokenError, read_tokens_file

ENV_VAR = "DUPCHECK_ADMIN_TOKENS"
SECRET_ENV_VAR = "DUPCHECK_ADMIN_SESSION_SECRET"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
_NAMED = re.compile(r"^([A-Za-z0-9_.@-]{1,64}):(.+)$")


@dataclass(frozen=True)
class Admin:
    name: str
    digest: str  # sha256 of the token, hex: what a session remembers


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _admin(entry: str) -> Admin:
    named = _NAMED.match(entry)
    token, name = (named.group(2), named.group(1)) if named else (entry, None)
    digest = _digest(token)
    return Admin(name or f"admin-{digest[:8]}", digest)


def load_admin_tokens(tokens_file: str | None = None, environ: Mapping[str, str] | None = None) -> list[Admin]:
    """The configured admins; an empty list means the console is off. Raises TokenError for an unreadable file."""
    environ = os.environ if environ is None else environ
    entries = [t.strip() for t in environ.get(ENV_VAR, "").split(",") if t.strip()]
    if tokens_file:
        entries += read_tokens_file(tokens_file)
    return [_admin(e) for e in entries]


class AdminTokens:
    """Constant-time lookup of an admin by token (every digest compared, as :class:`..auth.Tokens`)."""

    def __init__(self, admins: list[Admin], insert_tokens: list[str] = ()):
        if not admins:
            raise TokenError("no admin token configured")
        clash = {_digest(t) for t in insert_tokens} & {a.digest for a in admins}
        if clash:
            raise TokenError("an admin token must not also be an API insert token")
        self.admins = admins

    def find(self, token: str | None) -> Admin | None:
        if not token:
            return None
        digest = _digest(token)
        found = None
        for admin in self.admins:
            if hmac.compare_digest(digest, admin.digest):
                found = admin
        return found

    def by_digest(self, digest: str | None) -> Admin | None:
        found = None
        for admin in self.admins:
            if digest and hmac.compare_digest(digest, admin.digest):
                found = admin
        return found


def session_secret(environ: Mapping[str, str] | None = None) -> str:
    """A fixed secret keeps sessions across restarts; without one each start makes its own."""
    environ = os.environ if environ is None else environ
    return environ.get(SECRET_ENV_VAR) or secrets.token_urlsafe(32)


def current_admin(request: Request, tokens: AdminTokens) -> tuple[Admin | None, bool]:
    """(admin, by_cookie): from a bearer header, else from the session."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return tokens.find(header[7:].strip()), False
    session = request.session
    return tokens.by_digest(session.get("admin")), True


def log_in(request: Request, admin: Admin) -> None:
    request.session.clear()  # a fresh session: no fixation of a pre-login one
    request.session.update(admin=admin.digest, who=admin.name, csrf=secrets.token_urlsafe(24))


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use, also before login for the login form)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


async def csrf_ok(request: Request) -> bool:
    expected = request.session.get("csrf")
    if not expected:
        return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get(CSRF_FIELD)
    return isinstance(sent, str) and hmac.compare_digest(sent, expected)
