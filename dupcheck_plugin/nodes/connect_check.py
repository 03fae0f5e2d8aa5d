"""The ``convoso_connect`` node's configuration checks, apart from the node:
``dupcheck check`` runs them without importing httpx and the connection code
(``Secrets`` is stdlib only)."""

from __future__ import annotations

from typing import Any, Mapping

from ..config.secret_names import looks_like_credential, not_a_name
from ..connection.secrets import SecretMissing, Secrets
from ..types import WorkflowView


def check(config: Mapping[str, Any], view: WorkflowView) -> list[tuple[tuple, str]]:
    adaptor, problems = view.resolve_adaptor(config["adaptor"])
    if adaptor is None and not problems:
        from ..config.suggest import did_you_mean

        return [(("adaptor",), f"no adaptor named {config['adaptor']!r} (not a file next to the workflow, not a shipped adaptor)",
                 did_you_mean(config["adaptor"], view.adaptor_names()))]
    if any(p.code == "ambiguous_name" for p in problems):
        return [(("adaptor",), p.message) for p in problems]
    return [(("adaptor",), f"adaptor {config['adaptor']!r} is invalid: {p}") for p in problems]


# the auth keys that name secrets, by auth type (OAuthSettings.secret_names for oauth2)
_SECRET_KEYS = {"oauth2": ("client_id", "client_secret", "refresh_token", "username", "private_key")}


def auth_findings(config: Mapping[str, Any], environ: Mapping[str, str]) -> list[tuple[tuple, str, str, bool]]:
    """What ``dupcheck check`` can tell of the connection's auth secrets from this
    environment: [(path in config, message, code, is a problem (else a warning))].
    A secret's value is never quoted."""
    auth = config.get("auth")
    if not isinstance(auth, Mapping):
        return []
    kind = auth.get("type")
    secrets = Secrets(environ)
    out: list[tuple[tuple, str, str, bool]] = []
    for key in _SECRET_KEYS.get(kind, ("secret",)):
        name = auth.get(key)
        if not isinstance(name, str) or not name:
            continue
        if not secrets.has(name):
            if looks_like_credential(name):  # never echoed: it may be the live credential
                out.append((("auth", key), not_a_name(key, credential=True), "secret_not_a_name", True))
                continue
            out.append((("auth", key), f"{name} is not set in this environment (nor {name}_FILE): the {kind} auth "
                        "of this connection reads it; export it before run or serve", "auth_secret_missing", False))
            continue
        if kind != "basic":
            continue
        try:
            value = secrets.get(name)
        except SecretMissing as exc:
            out.append((("auth", key), str(exc), "auth_secret_missing", False))
            continue
        if ":" not in value:
            out.append((("auth", key), f"the value of {name} has no ':': HTTP Basic auth sends user:password "
                        "(a CRM that takes an API key as the user wants 'KEY:'); as it is, the CRM answers 401 "
                        "and every lead ends in on_error", "auth_basic_secret", True))
    return out
