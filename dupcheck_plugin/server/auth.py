"""API tokens: where they come from and how a request's token is checked."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Iterable, Mapping
from ..errors import DupcheckError

ENV_VAR = "DUPCHECK_API_TOKENS"


class TokenError(DupcheckError):
    """No usable token configuration; the message says what to do."""


def read_tokens_file(path: str | Path) -> list[str]:
    """One token per line; blank lines and ``#`` comments are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read tokens file {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def load_tokens(tokens_file: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    tokens = [t.strip() for t in environ.get(ENV_VAR, "").split(",") if t.strip()]
    if tokens_file:
        tokens += read_tokens_file(tokens_file)
    if not tokens:
        raise TokenError(f"no API token configured: set {ENV_VAR}=token1,token2 or pass --tokens-file FILE "
                         "(one token per line); without one no lead could ever be inserted")
    return tokens


class Tokens:
    """The valid tokens. A check hashes the candidate once and compares it
    with every token's hash in constant time, without stopping at a match,
    so timing says neither which token matched nor how much of one did."""

    def __init__(self, tokens: Iterable[str]):
        self._digests = [self._digest(t) for t in tokens]
        if not self._digests:
            raise TokenError("no API token configured")

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def __len__(self) -> int:
        return len(self._digests)

    def valid(self, candidate: str) -> bool:
        digest = self._digest(candidate)
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(digest, known)
        return ok


def token_scope(token: str) -> str:
    """A short, stable name for a token that does not reveal it: idempotency
    keys are scoped by it, so one client cannot replay another's key."""
    return hashlib.sha256(b"dupcheck-idempotency:" + token.encode("utf-8", "surrogatepass")).hexdigest()[:16]
