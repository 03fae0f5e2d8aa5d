"""A programmable CRM on a loopback port, for testing an adaptor or plugin
against a CRM that dupcheck does not ship a simulator for.

Program it per phone: ``stub.answer("+15551230001", body={...}, status=200,
delay_s=0.1)``; a request is matched to a phone when a number written in its
URL or body (``+15551230001``, ``5551230001``, ``555.123.0001``,
``(555) 123-0001``: however the adaptor spells it) has that phone's digits. Unmatched requests get ``stub.default``. An
answer may also wait on a ``threading.Event`` (``gate``) so a test can hold
a call in flight and release it when it chooses, with no timing window.
Every request is recorded in ``stub.requests``. It answers one lead per
request: give a batching adaptor's connection ``batch = false``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping
from urllib.parse import unquote_plus

from ..phone import national_digits, to_e164


@dataclass(frozen=True)
class CannedAnswer:
    """One answer: ``body`` is sent as JSON unless it is ``str``/``bytes``."""

    body: Any = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    gate: threading.Event | None = None  # answer only once this is set

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


@dataclass(frozen=True)
class StubRequest:
    method: str
    path: str  # with the query string
    headers: Mapping[str, str]
    body: bytes
    phone: str | None  # the programmed phone it matched, if any

    def json(self) -> Any:
        return json.loads(self.body)


_NUMBER = re.compile(r"\+?\(?\d[\d .()\-]{5,}\d")  # a phone number however it is written

NO_MATCH = CannedAnswer({"total": 0, "results": []})


class CrmStub:
    """``with CrmStub() as stub: ... stub.url ...``; ``stub.answer(phone, ...)`` any time."""

    def __init__(self, default: CannedAnswer = NO_MATCH, host: str = "127.0.0.1") -> None:
        self.default = default
        self.requests: list[StubRequest] = []
        self._answers: dict[str, tuple[tuple[str, ...], CannedAnswer]] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                phone, answer = stub._match(self.path, body)
                with stub._arrived:
                    stub.requests.append(StubRequest(self.command, self.path, dict(self.headers), body, phone))
                    stub._arrived.notify_all()
                if answer.gate is not None:
                    answer.gate.wait()
                if answer.delay_s:
                    threading.Event().wait(answer.delay_s)  # a delay the test asked for, not a sync point
                payload, ctype = answer.encoded()
                self.send_response(answer.status)
                headers = {"Content-Type": ctype, **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # quiet: the test reads stub.requests
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="crm-stub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, phone: str, body: Any = None, *, status: int = 200, headers: Mapping[str, str] | None = None,
               delay_s: float = 0.0, gate: threading.Event | None = None, phone_code: str = "1") -> None:
        """Answer requests that carry this phone (any spelling dupcheck accepts)."""
        e164 = to_e164(phone, phone_code)
        national = national_digits(phone, phone_code)
        canned = CannedAnswer(body, status, dict(headers or {}), delay_s, gate)
        with self._lock:
            self._answers[e164] = ((e164, e164.lstrip("+"), national), canned)

    def wait_for_requests(self, count: int, timeout: float = 60.0) -> bool:
        """Block until ``count`` requests arrived (a sync point for tests); False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def reset(self) -> None:
        with self._lock:
            self._answers.clear()
            self.requests.clear()

    def _match(self, path: str, body: bytes) -> tuple[str | None, CannedAnswer]:
        text = unquote_plus(path) + "\n" + body.decode("utf-8", "replace")
        numbers = {re.sub(r"\D", "", run) for run in _NUMBER.findall(text)}
        with self._lock:
            answers = list(self._answers.items())
        for phone, (spellings, canned) in answers:
            if numbers & {s.lstrip("+") for s in spellings}:
                return phone, canned
        return None, self.default

    def start(self) -> "CrmStub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> "CrmStub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
