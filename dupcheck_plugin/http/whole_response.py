"""What both of our transports hand httpx back: an answer read whole.

Each transport maps its errors to httpx's, so the caller tells them apart as
it would with httpx's own transport: a refused or unresolvable host is
``httpx.ConnectError``, a connect timeout ``httpx.ConnectTimeout``, no answer
in time ``httpx.ReadTimeout``, a connection dropped mid-answer
``httpx.RemoteProtocolError`` or ``httpx.ReadError``, a malformed answer (a
body whose content coding does not decode too) ``httpx.RemoteProtocolError``,
a URL that is not http(s) ``httpx.UnsupportedProtocol``.

Each transport reads at most ``max_answer_bytes`` of an answer's body, as
sent (the connection's key of that name; :data:`MAX_ANSWER_BYTES` by
default; the head is not counted, and chunked framing is not), and a
gzip or deflate body is decoded to at most as many bytes: past that,
:func:`too_large`'s ``httpx.RemoteProtocolError`` (the lead's record says
``crm.error`` connection), never the process's memory (a gzip bomb of a few
kilobytes decodes to gigabytes).
"""

from __future__ import annotations

import zlib

import httpx

# the most of one answer read, and of its body decoded: a CRM's answer is kilobytes, a batch of 100
# records a megabyte or two; a URL that serves a file, or a runaway answer, stops here rather than
# taking the process's memory (x the leads in flight)
MAX_ANSWER_BYTES = 16 * 1024 * 1024


def too_large(limit: int, decoded: str | None = None) -> httpx.RemoteProtocolError:
    """The error of an answer past ``limit`` bytes as sent (``decoded``: its content coding, once decoded)."""
    size = (f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit // 1024} KiB" if limit % 1024 == 0
            else f"{limit} bytes")
    if decoded is None:
        return httpx.RemoteProtocolError(f"the answer is larger than {size}; not read further")
    return httpx.RemoteProtocolError(f"the answer is larger than {size} once decoded ({decoded}); "
                                     "not decoded further")


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
    """An answer read whole, its content coding (if any) undone: its bytes are its
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


def _inflate(data: bytes, wbits: int, limit: int, coding: str) -> bytes:
    """``data`` decompressed (zlib's ``wbits``), at most ``limit`` bytes of it made."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit + 1)  # stops once past the limit, whatever the ratio
    if len(out) <= limit:
        out += inflater.flush()
    if len(out) > limit:
        raise too_large(limit, coding)
    return out


def decoded(body: bytes, codings: list[str], limit: int) -> bytes:
    """``body`` with its ``Content-Encoding`` values (in the order applied) undone, as httpx's
    decoders do (gzip: the first member; deflate: zlib's format, or raw deflate; a coding httpx
    does not know is left as is), to at most ``limit`` bytes. A body that does not decode is a
    malformed answer."""
    for coding in reversed(codings):
        coding = coding.strip().lower()
        try:
            if coding == "gzip":
                body = _inflate(body, zlib.MAX_WBITS | 16, limit, coding)
            elif coding == "deflate":
                try:
                    body = _inflate(body, zlib.MAX_WBITS, limit, coding)
                except zlib.error:  # deflate without zlib's header and checksum (some servers send it so)
                    body = _inflate(body, -zlib.MAX_WBITS, limit, coding)
        except zlib.error as exc:  # a malformed answer (httpx.DecodingError, httpx's, reached no layer that reads it)
            raise httpx.RemoteProtocolError(f"the answer's {coding} body does not decode: {exc}") from None
    return body


def whole_response(status: int, headers, body: bytes, request: httpx.Request,
                   coding: str | bytes | None, version: str = "1.1",
                   max_answer_bytes: int = MAX_ANSWER_BYTES) -> httpx.Response:
    """The ``httpx.Response`` for an answer read whole; ``coding``: its
    ``Content-Encoding`` (we announce the ones :func:`decoded` undoes), its
    body decoded to at most ``max_answer_bytes``; ``version``: the HTTP
    version of its status line (``"1.0"``, ``"1.1"``)."""
    if coding is not None and coding.strip().lower() not in ("identity", b"identity"):
        headers = headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers)
        body = decoded(body, headers.get_list("content-encoding", split_commas=True), max_answer_bytes)
    return WholeResponse(status, headers, body, request, version)
