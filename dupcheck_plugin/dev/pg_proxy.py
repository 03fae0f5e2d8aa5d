"""A loopback TCP proxy in front of a PostgreSQL server that counts the
client's round trips and can add network latency: how the tests and
``benchmarks/bench_pg_store.py`` see what a store costs one network hop away.

A round trip is a piece of the client's stream holding a message after which
the client waits for the server's answer: Sync (the end of an extended-protocol
exchange or of a pipeline), Query (a simple-protocol statement) or Flush (a
pipeline asking for the results so far). A pipeline's "Sync, Flush" sent
together is one wait, so pieces are counted, not messages: the bytes the proxy
reads at once, which hold what the client sent since it last waited (or less,
never more). The proxy splits the client's stream of the PostgreSQL wire
protocol into messages (no TLS: connect with ``sslmode=disable``).

    with PgProxy("127.0.0.1", 5432, delay_s=0.001) as proxy:
        url = f"postgresql://user@127.0.0.1:{proxy.port}/db?sslmode=disable"
        before = proxy.round_trips
        ...  # talk to the database through url
        print(proxy.round_trips - before)

It can also lose a connection at a COMMIT (:meth:`PgProxy.cut_at_commit`): how the
tests see what a store does when it cannot know whether its transaction committed.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time

_NEGOTIATIONS = {80877103, 80877104}  # SSLRequest, GSSENCRequest: answered by one byte, then the startup
_WAITS = frozenset(b"SQH")  # Sync, Query, Flush
CUT_ANSWER_AFTER_S = 0.3  # cut_at_commit("after"): the server's time to commit before the line goes


class _ClientStream:
    """Splits the client's bytes into messages and counts the waiting ones."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.started = False  # past the untyped startup message

    def feed(self, data: bytes) -> int:
        self.buffer += data
        waits = 0
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return waits
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return waits
                del self.buffer[:length]
                self.started = code not in _NEGOTIATIONS
                continue
            if len(self.buffer) < 5:
                return waits
            kind = self.buffer[0]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return waits
            del self.buffer[:1 + length]
            waits += kind in _WAITS


class PgProxy:
    """Forwards 127.0.0.1:``port`` to ``host``:``upstream_port``, each direction
    ``delay_s`` late; ``round_trips`` and ``client_writes`` count since start."""

    def __init__(self, host: str, upstream_port: int, *, delay_s: float = 0.0) -> None:
        self.host, self.upstream_port, self.delay_s = host, upstream_port, delay_s
        self.port = 0
        self.round_trips = 0
        self.client_writes = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut: str | None = None  # see cut_at_commit
        self._refuse_after_cut = False
        self._cut_once_sent = b""
        self.cuts = 0

    def cut_at_commit(self, when: str, *, then_refuse: bool = False, once_sent: bytes = b"") -> None:
        """Once: the next piece of a client's stream holding a ``COMMIT`` ends its connection.
        ``"before"``: the piece is not passed on (the server never sees the COMMIT and rolls
        back); ``"after"``: it is, the server commits, and its answer never reaches the client.
        Either way the client finds its connection closed; ``cuts`` counts the cuts made.
        ``then_refuse``: from the cut on, new connections are refused (the server is out of
        reach); those already open go on. ``once_sent``: only a connection that has sent
        these bytes (since it opened) is cut: ``b"INSERT INTO decisions"`` cuts a batch's
        COMMIT, not a migration's. (psycopg prepares a statement run five times on a
        connection: a ``COMMIT`` prepared is no longer in the stream as text.)"""
        if when not in ("before", "after"):
            raise ValueError(f"cut_at_commit: 'before' or 'after', not {when!r}")
        with self._lock:
            self._cut, self._refuse_after_cut, self._cut_once_sent = when, then_refuse, once_sent

    def _cut_now(self, data: bytes, sent: bytes) -> str | None:
        """Whether to cut at ``data``, a piece of a connection that has sent ``sent`` so far."""
        with self._lock:
            when = self._cut
            if when is None or b"COMMIT" not in data or self._cut_once_sent not in sent:
                return None
            self._cut = None
            self.cuts += 1
            refuse = self._refuse_after_cut
        if refuse and self._server is not None:  # in the proxy's loop: stop listening
            self._server.close()
        return when

    def start(self) -> "PgProxy":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in self._writers:  # the pumps see their sockets end and finish
                writer.close()
            if self._connections:
                await asyncio.wait(self._connections, timeout=5)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "PgProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        stream = _ClientStream()
        muted = False  # the server's answers go no further (cut "after" a COMMIT)
        sent = bytearray()  # what the client sent, while a cut waits for some of it (once_sent)

        def hang_up() -> None:
            client_w.close()
            server_w.close()

        def from_client(data: bytes) -> bool:
            """Counts a piece of the client's stream; False: drop it (the connection is cut)."""
            nonlocal muted
            waits = stream.feed(data)
            with self._lock:
                self.client_writes += 1
                self.round_trips += waits > 0
            if self._cut_once_sent and self._cut_once_sent not in sent:
                sent.extend(data)
            cut = self._cut_now(data, sent)
            if cut == "before":
                hang_up()
                return False
            if cut == "after":
                muted = True
                asyncio.get_running_loop().call_later(CUT_ANSWER_AFTER_S, hang_up)
            return True

        await asyncio.gather(self._pump(client_r, server_w, from_client),
                             self._pump(server_r, client_w, lambda data: not muted),
                             return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, passes) -> None:
        """Copies one direction (each piece that ``passes`` it); with a delay, each chunk leaves
        ``delay_s`` after it came (latency, not a bandwidth cap: chunks in flight overlap)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                pause = due - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while data := await reader.read(1 << 16):
                if passes(data):
                    queue.put_nowait((time.monotonic() + self.delay_s, data))
        except (OSError, RuntimeError):  # a connection reset, or a transport closed by stop()
            pass
        finally:
            queue.put_nowait((0.0, b""))
            try:
                await sender
            except OSError:
                pass
            writer.close()
