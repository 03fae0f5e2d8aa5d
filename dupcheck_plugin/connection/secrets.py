"""Secrets by name: an environment variable ``NAME``, or a file named by
``NAME_FILE`` (as container secrets are mounted). A file is read again when
it changes (its size, mtime or inode), so a rotated secret is picked up
without a restart."""

from __future__ import annotations

import os
from typing import Mapping

from ..config.secret_names import looks_like_credential
from ..errors import DupcheckError


class SecretMissing(DupcheckError, LookupError):
    """A secret the request or its auth reads is not set (nor its ``NAME_FILE``)."""


class Secrets:
    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self._files: dict[str, tuple[tuple[int, int, int], str]] = {}

    def has(self, name: str) -> bool:
        return bool(self.environ.get(name)) or bool(self.environ.get(f"{name}_FILE"))

    def get(self, name: str) -> str:
        """The secret's current value; raises SecretMissing (naming the
        variable, never a value) when it is not set or its file is unreadable."""
        value = self.environ.get(name)
        if value:
            return value
        path = self.environ.get(f"{name}_FILE")
        if not path:
            if looks_like_credential(name):  # not echoed to a log: it may be the live credential
                raise SecretMissing("a secret's name looks like the credential itself (not shown): the auth and "
                                    "request templates name an environment variable that holds it ('dupcheck "
                                    "check' says where)")
            raise SecretMissing(f"secret {name} not set: export it, or {name}_FILE naming a file that holds it")
        try:
            st = os.stat(path)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            cached = self._files.get(name)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            with open(path, encoding="utf-8") as f:
                value = f.read().strip()  # a trailing newline is not part of the secret
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretMissing(f"secret file {name}_FILE={path} cannot be read: {type(exc).__name__}") from None
        if not value:
            raise SecretMissing(f"secret file {name}_FILE={path} is empty")
        self._files[name] = (stamp, value)
        return value
