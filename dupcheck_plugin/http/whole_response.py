"""What both of our transports hand httpx back: an answer read whole.

Each transport maps its errors to httpx's, so the caller tells them apart as
it would with httpx's own transport: a refused or unresolvable host is
``httpx.ConnectError``, a connect timeout ``httpx.ConnectTimeout``, no answer
in time ``httpx.ReadTimeout``, a connection dropped mid-answer
``httpx.RemoteProtocolError`` or ``httpx.ReadError``, a malformed answer
``httpx.RemoteProtocolError``, a URL that is not http(s)
``httpx.UnsupportedProtocol``.
"""

from __future__ import annotations

import httpx

# response.http_version: what the answer's status line said (an HTTP/1.0 server's answer is 1.0)
_VERSIONS = {version: {"http_version": b"HTTP/" + version.encode()} for version in ("1.1", "1.0")}


def _extensions(version: str) -> dict[str, bytes]:
    return _VERSIONS.get(version) or {"http_version": b"HTTP/" + version.encode("ascii")}


class ParsedHeaders(httpx.Headers):
    """An answer's headers as a parser read them, in the form ``httpx.Headers``
    keeps them: ``(name, lower-case name, value)`` byte triples.
    ``httpx.Headers(pairs)`` would check the type of and lower-case each name
    again (two Python calls per header: a fifth of the transport's own CPU on
    a CRM answer's fifteen-odd headers). Relies on httpx's (pinned) layout;
    tests/test_h1_transport.py checks these read as ``httpx.Headers(pairs)``."""

    def __init__(self, triples: list[tuple[bytes, bytes, bytes]]):
        self._list = triples
        self._encoding = None


class WholeResponse(httpx.Response):
    """An answer read whole that carries no content coding: its bytes are its
    content as they are (``httpx.Response(content=...)`` would copy them
    through its decoder and chunker chain, a third of a transport's CPU on a
    small answer)."""

    def __init__(self, status: int, headers, body: bytes, request: httpx.Request, version: str = "1.1"):
        super().__init__(status, headers=headers, stream=httpx.ByteStream(body), request=request,
                         extensions=_extensions(version))
        self.body = body

    @property
    def content(self) -> bytes:
        return self.body

    def read(self) -> bytes:
        return self.body

    async def aread(self) -> bytes:
        return self.body


def whole_response(status: int, headers, body: bytes, request: httpx.Request,
                   coding: str | bytes | None, version: str = "1.1") -> httpx.Response:
    """The ``httpx.Response`` for an answer read whole; ``coding``: its
    ``Content-Encoding``, which httpx decodes (we announce the ones it can);
    ``version``: the HTTP version of its status line (``"1.0"``, ``"1.1"``)."""
    if coding is None or coding.strip().lower() in ("identity", b"identity"):
        return WholeResponse(status, headers, body, request, version)
    return httpx.Response(status, headers=headers, content=body, request=request, extensions=_extensions(version))
