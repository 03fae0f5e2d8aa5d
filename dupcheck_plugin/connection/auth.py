"""How a connection authenticates: a static secret (``bearer``, ``basic``,
``header``, ``query``) or OAuth 2.0 (``oauth2``). Secrets come from the
environment or ``NAME_FILE`` files and are read again when a file changes."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Mapping

import httpx

from ..adaptor.render import MASK
from ..config.problems import ConfigError, Problem
from .secrets import SecretMissing, Secrets

if TYPE_CHECKING:
    from .oauth import TokenKeeper


def _missing(node_id: str, key: str, name: str) -> Problem:
    return Problem(f"node {node_id}", ("config", "auth", key),
                   f"secret {name} not set: export it as an environment variable, or {name}_FILE naming a file",
                   "secret_missing")


class ConnectionAuth:
    """``real()``/``masked``: headers and query parameters to add to the
    rendered request; ``httpx_auth``: what adds the OAuth token on the way out."""

    def __init__(self, node_id: str, auth: Mapping[str, Any] | None, secrets: Secrets, *, offline: bool,
                 timeout: float = 10.0):
        self.node_id = node_id
        self.config = dict(auth or {})
        self.secrets = secrets
        self.offline = offline
        self.kind = self.config.get("type")
        self.keeper: TokenKeeper | None = None
        self.httpx_auth: httpx.Auth | None = None
        self.api_origin: str | None = None
        self._static: tuple[str, dict] | None = None  # (secret value, what it built)
        if self.kind == "oauth2":
            # imported for OAuth only: Authlib, joserfc and cryptography are ~60 ms of a run's start-up
            from .oauth import OAuth2Auth, OAuthSettings, TokenKeeper

            settings = OAuthSettings.from_config(node_id, self.config, None, secrets.environ)
            self._oauth_names = settings.secret_names()
            problems = [_missing(node_id, key, name) for key, name in settings.secret_names()
                        if name and not secrets.has(name)]
            if problems and not offline:
                raise ConfigError(problems)
            self.api_origin = settings.api_origin
            self.masked = {"headers": {"Authorization": f"{settings.scheme} {MASK}"}}
            if not offline:
                self.keeper = TokenKeeper(settings, secrets, timeout=timeout)
                self.httpx_auth = OAuth2Auth(self.keeper)
        elif self.kind:
            if not secrets.has(self.config["secret"]) and not offline:
                raise ConfigError([_missing(node_id, "secret", self.config["secret"])])
            self.masked = self._build(MASK)
        else:
            self.masked = {}

    def _build(self, value: str) -> dict[str, Any]:
        kind, name = self.kind, self.config.get("name")
        if kind == "bearer":
            return {"headers": {"Authorization": f"Bearer {value}"}}
        if kind == "basic":
            token = base64.b64encode(value.encode()).decode() if value != MASK else MASK
            return {"headers": {"Authorization": f"Basic {token}"}}
        if kind == "header":
            return {"headers": {name: value}}
        return {"query": {name: value}}

    def real(self) -> dict[str, Any]:
        """What to add to the request now (a secret file that changed is read
        again). OAuth adds nothing here: :attr:`httpx_auth` does. Raises
        SecretMissing when a secret file went away."""
        if self.kind is None or self.kind == "oauth2":
            return {}
        if self.offline and not self.secrets.has(self.config["secret"]):
            return self.masked
        value = self.secrets.get(self.config["secret"])
        if self._static is None or self._static[0] != value:
            self._static = (value, self._build(value))
        return self._static[1]

    def bind_environ(self, adaptor: Any, environ: Mapping[str, str]) -> dict[str, str]:
        """The secrets the adaptor's templates name, from the environment or
        ``NAME_FILE``. With OAuth, a secret used only in the adaptor's
        ``Authorization`` header is not needed: the token replaces it."""
        out = {}
        for name in adaptor.secret_names:
            try:
                out[name] = self.secrets.get(name)
            except SecretMissing:
                pass  # adaptor.bind reports it (or masks it in a preview)
        if self.kind == "oauth2":
            for path, leaf in adaptor.request.leaves.items():
                if path[:1] == ("headers",) and str(path[-1]).lower() == "authorization":
                    for name in leaf.secrets:
                        out.setdefault(name, MASK)
        return out

    @property
    def secret_names(self) -> frozenset[str]:
        """The environment variables this auth reads."""
        if self.kind == "oauth2":
            return frozenset(name for _, name in self._oauth_names)
        return frozenset({self.config["secret"]}) if self.kind else frozenset()

    def health(self) -> dict[str, Any] | None:
        return self.keeper.snapshot() if self.keeper is not None else None

    async def aclose(self) -> None:
        if self.keeper is not None:
            await self.keeper.aclose()
