"""A loopback HTTP server for the transport tests: each connection talks as a
test's script says (well, badly, late, or not at all); it counts connections
and keeps the requests it read."""

from __future__ import annotations

import asyncio
import ssl


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes] | None:
    """(request line, headers with lower-case names, body); None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *lines = head[:-4].split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(b":", 1) for h in lines)}
    body = await reader.readexactly(int(headers.get(b"content-length", 0)))
    return line, headers, body


def answer(body: bytes = b'{"ok": true}', status: str = "200 OK", *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Server:
    """A loopback server: ``script(reader, writer, server)`` talks to each
    connection; it counts connections (accepted, open now, most open at once)
    and the requests it read (``read``, through ``server.request``)."""

    def __init__(self, script, tls: ssl.SSLContext | None = None):
        self.script, self.tls = script, tls
        self.accepted = self.open_now = self.most_open = 0
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.requested = asyncio.Event()  # a first request was read
        self.closed_by_client = asyncio.Event()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.script(reader, writer, self)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            self.open_now -= 1
            writer.close()

    async def request(self, reader: asyncio.StreamReader):
        got = await read_request(reader)
        if got is not None:
            self.requests.append(got)
            self.requested.set()
        else:
            self.closed_by_client.set()
        return got
