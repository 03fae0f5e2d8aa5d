"""The CRM simulator: a real HTTP server answering like CRMs' search APIs, with fault knobs.

It uses aiohttp's low-level ``web.Server`` (no router, no middlewares: our
own route table is a handful of regexes), which keeps it in the thousands of
requests per second. aiohttp sets TCP_NODELAY on every accepted socket;
without it delayed ACKs cap a keep-alive client near 20 requests/s.
``GET /_sim/stats`` reports it as seen on the caller's own socket.

Each vendor's real limits (``limits.py``, ``Limits``) are enforced by its
``Quota`` before anything else; an admitted request then gets the fault
knobs' latency, hold, auth and injected faults, then the vendor's answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import socket
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import parse_qsl

from aiohttp import web

from .contacts import ContactBook
from .limits import Clock, Limits, Quota
from .oauth import TokenDesk, form
from .vendors import Route, SimRequest, SimResponse, Vendor, all_vendors

SERVER_ERRORS = (500, 502, 503)
_RATES = ("error_rate", "rate_limit_rate", "timeout_rate")
_DELAYS = ("latency_ms", "jitter_ms", "hang_ms")


@dataclass(frozen=True)
class Knobs:
    """Faults to inject. Each request draws its own random numbers, so a seed
    reproduces the same faults for the same order of requests."""

    latency_ms: float = 0.0  # added to every answer
    jitter_ms: float = 0.0  # plus uniform 0..jitter_ms
    error_rate: float = 0.0  # share answered 500/502/503
    rate_limit_rate: float = 0.0  # share answered with the vendor's over-limit form
    retry_after: str = "1"  # Retry-After on over-limit answers (seconds, may be fractional)
    timeout_rate: float = 0.0  # share that sleep hang_ms before answering
    hang_ms: float = 30_000.0
    seed: int | None = None
    auth: str | None = None  # the token callers must send; None: no auth (never shown in the stats)
    hold: bool = False  # admitted requests wait (in flight) until hold is set back to false

    def __post_init__(self) -> None:
        for name in _RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in _DELAYS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        try:
            if float(self.retry_after) < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"retry_after must be a number of seconds, got {self.retry_after!r}") from None

    def replace(self, **changes: Any) -> "Knobs":
        """A copy with ``changes`` (JSON-ish values are coerced: "0.5" -> 0.5)."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - fields
        if unknown:
            raise ValueError(f"unknown knob(s) {sorted(unknown)}; known: {sorted(fields)}")
        coerced = {}
        for name, value in changes.items():
            try:
                if name in _RATES or name in _DELAYS:
                    if isinstance(value, bool):
                        raise TypeError
                    value = float(value)
                elif name == "seed":
                    value = None if value is None else int(value)
                elif name == "retry_after":
                    value = str(value)
                elif name == "auth":
                    value = None if value in (None, "") else str(value)
                elif name == "hold":
                    if not isinstance(value, bool):
                        raise TypeError
            except (TypeError, ValueError):
                raise ValueError(f"bad value for {name}: {value!r}") from None
            coerced[name] = value
        return dataclasses.replace(self, **coerced)

    def as_dict(self) -> dict[str, Any]:
        """The knobs, the auth token masked: stats and logs must never show it."""
        return {**dataclasses.asdict(self), "auth": None if self.auth is None else "***"}


def _as_book(book_or_path: ContactBook | str | Path) -> ContactBook:
    return book_or_path if isinstance(book_or_path, ContactBook) else ContactBook.load(book_or_path)


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=json.dumps(body, separators=(",", ":")).encode(),
                        content_type="application/json")


def _to_web(resp: SimResponse) -> web.Response:
    body, ctype = resp.body, resp.content_type
    if isinstance(body, (dict, list)):
        data = json.dumps(body, separators=(",", ":")).encode()
        return web.Response(status=resp.status, body=data, headers=resp.headers, content_type=ctype or "application/json")
    if isinstance(body, str):
        return web.Response(status=resp.status, text=body, headers=resp.headers, content_type=ctype or "text/plain")
    return web.Response(status=resp.status, body=body or b"", headers=resp.headers,
                        content_type=ctype or "application/octet-stream")


def _parse_body(ctype: str, raw: bytes) -> Any:
    """JSON or form dict when it parses; otherwise the raw text (handlers answer 400)."""
    text = raw.decode("utf-8", "replace")
    if "json" in ctype or (not ctype and text.lstrip()[:1] in ("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if ctype == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


def _merge_headers(resp: SimResponse, headers: dict[str, str]) -> None:
    """Quota headers replace a vendor's fixed ones, whatever their spelling."""
    names = {name.lower() for name in headers}
    for name in [n for n in resp.headers if n.lower() in names]:
        del resp.headers[name]
    resp.headers.update(headers)


def _nodelay(request: web.BaseRequest) -> bool | None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None:
        return None
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


_VENDOR_COUNTERS = ("requests", "over_limit", "expired_token", "unauthorized", "token_requests", "token_grants",
                    "token_refused", "in_flight")
ARRIVALS_KEPT = 100_000  # for busiest_second: a rate limit is judged on the latest requests


def busiest_second(arrivals: "deque[float] | list[float]") -> int:
    """The most requests that arrived within any one second of wall time (a
    sliding window, not calendar seconds): what a per-second limit counts."""
    most, start = 0, 0
    times = list(arrivals)
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


class Simulator:
    """The request handler and its state: the contact book, knobs, limits, tokens, counters."""

    def __init__(self, book: ContactBook, knobs: Knobs | None = None, vendors: list[Vendor] | None = None,
                 limits: Limits | None = None):
        self.book = book
        self.knobs = knobs or Knobs()
        self.limits = limits or Limits.off()  # the Python API's default; `crm-sim` enforces real limits
        self.clock = Clock(self.limits.time_scale)
        self.vendors = vendors if vendors is not None else all_vendors()
        self._routes = [(r.method.upper(), r.compiled(), r, v, False) for v in self.vendors for r in v.routes]
        self._routes += [(r.method.upper(), r.compiled(), r, v, True) for v in self.vendors for r in v.token_routes]
        self._rng = random.Random(self.knobs.seed)
        self._released = asyncio.Event()  # cleared while the hold knob is on
        if not self.knobs.hold:
            self._released.set()
        self.url: str | None = None  # set once bound
        self.reset()

    # -- control --------------------------------------------------------------
    def reset(self) -> None:
        """Zero the counters, empty every quota window, forget issued tokens."""
        self._requests = 0
        self._arrivals: deque[float] = deque(maxlen=ARRIVALS_KEPT)
        self._by_route: dict[str, int] = {}
        self._by_status: dict[str, int] = {}
        self._faults = {"latency": 0, "hang": 0, "unauthorized": 0, "rate_limited": 0, "server_error": 0}
        # a request in flight across a reset counts down in the table it counted up in
        self._vendor: dict[str, dict[str, Any]] = {
            v.name: {**dict.fromkeys(_VENDOR_COUNTERS, 0), "over_limit_by_policy": {}, "token_grants_by_type": {}}
            for v in self.vendors}
        self._quotas: dict[str, Quota] = {v.name: v.quota(self.limits, self.clock) for v in self.vendors if v.quota}
        self.tokens = TokenDesk(self.clock, self.limits)

    def set_knobs(self, knobs: Knobs | None = None, **changes: Any) -> Knobs:
        new = (knobs or self.knobs).replace(**changes)
        if new.seed != self.knobs.seed or "seed" in changes:
            self._rng = random.Random(new.seed)
        self.knobs = new
        if new.hold:
            self._released.clear()
        else:
            self._released.set()
        return new

    def set_limits(self, limits: Limits | None = None, **changes: Any) -> Limits:
        """New limits; quota windows start empty again (counters and tokens are kept)."""
        new = (limits or self.limits).replace(**changes)
        self.limits = new
        self.clock.set_scale(new.time_scale)
        self._quotas = {v.name: v.quota(new, self.clock) for v in self.vendors if v.quota}
        self.tokens.limits = new
        return new

    def advance(self, seconds: float) -> float:
        """Move the simulated clock ``seconds`` forward; returns its new reading."""
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError(f"advance must be a number of seconds >= 0, got {seconds!r}")
        return self.clock.advance(float(seconds))

    def stats(self) -> dict[str, Any]:
        now = self.clock.now()
        vendors = {}
        for v in self.vendors:
            counts = self._vendor[v.name]
            quota = self._quotas.get(v.name)
            vendors[v.name] = {**counts, "over_limit_by_policy": dict(counts["over_limit_by_policy"]),
                               "token_grants_by_type": dict(counts["token_grants_by_type"]),
                               "quota": quota.snapshot(now) if quota else {}}
        return {"requests": self._requests, "busiest_second": busiest_second(self._arrivals),
                "by_route": dict(self._by_route), "by_status": dict(self._by_status),
                "faults": dict(self._faults), "contacts": len(self.book), "knobs": self.knobs.as_dict(),
                "vendors": vendors, "limits": self.limits.as_dict(), "tokens": self.tokens.snapshot(),
                "clock": {"now": now, "time_scale": self.clock.time_scale}}

    def routes(self) -> list[str]:
        return [f"{v.name}: {r.method.upper()} {r.path_regex}" for _, _, r, v, _ in self._routes]

    # -- serving --------------------------------------------------------------
    def _count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def _match(self, method: str, path: str) -> tuple[Route, Vendor, Any, bool] | int:
        status = 404
        for m, rx, route, vendor, is_token in self._routes:
            found = rx.fullmatch(path)
            if found:
                if m == method:
                    return route, vendor, found, is_token
                status = 405
        return status

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            return await self._control(request, path)
        self._requests += 1
        self._arrivals.append(time.monotonic())
        matched = self._match(request.method, path)
        if isinstance(matched, int):
            self._count(self._by_route, "unmatched")
            self._count(self._by_status, str(matched))
            return _json(matched, {"error": "not_found" if matched == 404 else "method_not_allowed",
                                   "message": f"no simulated CRM route for {request.method} {path}",
                                   "routes": self.routes()})
        route, vendor, found, is_token = matched
        self._count(self._by_route, route.label)
        req = await self._request(request, found)
        if is_token:
            resp = await self._token(req, route, vendor)
        else:
            resp = await self._answer(req, route, vendor)
        self._count(self._by_status, str(resp.status))
        return _to_web(resp)

    async def _request(self, request: web.BaseRequest, found: Any) -> SimRequest:
        raw = await request.read()
        ctype = request.content_type if raw and "Content-Type" in request.headers else ""
        return SimRequest(request.method, request.path, found.groupdict(), found.groups(), dict(request.query),
                          request.headers, _parse_body(ctype, raw) if raw else "", ctype, raw, request.raw_path)

    def _draws(self) -> tuple[float, ...]:
        # always five draws per request: the fault sequence depends on the seed only
        return tuple(self._rng.random() for _ in range(5))

    async def _delay(self, r_hang: float, r_jitter: float) -> None:
        k = self.knobs
        delay = k.latency_ms + k.jitter_ms * r_jitter
        if r_hang < k.timeout_rate:
            self._faults["hang"] += 1
            delay += k.hang_ms
        elif delay:
            self._faults["latency"] += 1
        if delay:
            await asyncio.sleep(delay / 1000)

    async def _token(self, req: SimRequest, route: Route, vendor: Vendor) -> SimResponse:
        """A token endpoint: latency, timeouts and server errors apply; auth and quotas do not."""
        counts = self._vendor[vendor.name]
        counts["token_requests"] += 1
        r_hang, _, r_error, r_jitter, r_status = self._draws()
        await self._delay(r_hang, r_jitter)
        if r_error < self.knobs.error_rate:
            self._faults["server_error"] += 1
            return vendor.server_error(SERVER_ERRORS[int(r_status * len(SERVER_ERRORS))])
        resp = self._call(route, req, self.tokens)
        if resp.status == 200 and isinstance(resp.body, dict) and "access_token" in resp.body:
            counts["token_grants"] += 1
            self._count(counts["token_grants_by_type"], str(form(req.body, req.query).get("grant_type")))
        else:
            counts["token_refused"] += 1
        return resp

    async def _answer(self, req: SimRequest, route: Route, vendor: Vendor) -> SimResponse:
        counts = self._vendor[vendor.name]
        counts["requests"] += 1
        quota = self._quotas.get(vendor.name)
        if quota is not None:
            refusal = quota.admit(req, self.clock.now())
            if refusal is not None:
                counts["over_limit"] += 1
                self._count(counts["over_limit_by_policy"], refusal.policy)
                _merge_headers(refusal.response, quota.headers(req, self.clock.now()))
                return refusal.response
        counts["in_flight"] += 1
        try:
            resp = await self._admitted(req, route, vendor)
        finally:
            counts["in_flight"] -= 1
            if quota is not None:
                quota.finish(req)
        if quota is not None:
            _merge_headers(resp, quota.headers(req, self.clock.now()))
        return resp

    async def _admitted(self, req: SimRequest, route: Route, vendor: Vendor) -> SimResponse:
        r_hang, r_limit, r_error, r_jitter, r_status = self._draws()
        await self._delay(r_hang, r_jitter)
        await self._released.wait()
        k = self.knobs  # the knobs may have changed while the request waited
        counts = self._vendor[vendor.name]
        credential = vendor.credentials(req)
        state = self.tokens.state(credential)
        if state == "expired":
            counts["expired_token"] += 1
            self._faults["unauthorized"] += 1
            return (vendor.expired or vendor.unauthorized)()
        if k.auth is not None and state != "valid" and credential != k.auth:
            counts["unauthorized"] += 1
            self._faults["unauthorized"] += 1
            return vendor.unauthorized()
        if r_limit < k.rate_limit_rate:
            self._faults["rate_limited"] += 1
            counts["over_limit"] += 1
            self._count(counts["over_limit_by_policy"], "injected")
            resp = vendor.over_limit()
            resp.headers.setdefault("Retry-After", k.retry_after)
            return resp
        if r_error < k.error_rate:
            self._faults["server_error"] += 1
            return vendor.server_error(SERVER_ERRORS[int(r_status * len(SERVER_ERRORS))])
        return self._call(route, req, self.book)

    @staticmethod
    def _call(route: Route, req: SimRequest, context: Any) -> SimResponse:
        try:
            return route.handler(req, context)
        except Exception as exc:  # a simulator bug: say so loudly, answer like a broken server
            traceback.print_exc(file=sys.stderr)
            return SimResponse(500, {"error": "simulator_bug", "message": repr(exc)})

    async def _control(self, request: web.BaseRequest, path: str) -> web.Response:
        if path == "/_sim/stats" and request.method == "GET":
            return _json(200, {**self.stats(), "tcp_nodelay": _nodelay(request)})
        if path == "/_sim/reset" and request.method == "POST":
            self.reset()
            return _json(200, self.stats())
        if path in ("/_sim/knobs", "/_sim/limits", "/_sim/clock", "/_sim/oauth/revoke"):
            changes: Any = {}
            if request.method == "POST":
                try:
                    changes = json.loads(await request.read() or b"{}")
                    if not isinstance(changes, dict):
                        raise ValueError("expected a JSON object")
                except ValueError as exc:
                    return _json(400, {"error": "bad_request", "message": str(exc)})
            try:
                return _json(200, self._set(path, changes))
            except ValueError as exc:
                return _json(400, {"error": f"bad_{path.rsplit('/', 1)[-1]}", "message": str(exc)})
        if path == "/_sim/health":
            return _json(200, {"ok": True, "contacts": len(self.book), "routes": self.routes()})
        return _json(404, {"error": "not_found", "message": "control endpoints: GET /_sim/stats, POST /_sim/reset, "
                                                            "GET|POST /_sim/knobs, GET|POST /_sim/limits, "
                                                            "GET|POST /_sim/clock, POST /_sim/oauth/revoke, "
                                                            "GET /_sim/health"})

    def _set(self, path: str, changes: dict[str, Any]) -> dict[str, Any]:
        if path == "/_sim/knobs":
            return (self.set_knobs(**changes) if changes else self.knobs).as_dict()
        if path == "/_sim/limits":
            return (self.set_limits(**changes) if changes else self.limits).as_dict()
        if path == "/_sim/clock":
            unknown = set(changes) - {"advance", "time_scale"}
            if unknown:
                raise ValueError(f"unknown clock field(s) {sorted(unknown)}; known: advance, time_scale")
            if "time_scale" in changes:  # unlike /_sim/limits, the windows keep what they hold
                self.limits = self.tokens.limits = self.limits.replace(time_scale=changes["time_scale"])
                self.clock.set_scale(self.limits.time_scale)
            if "advance" in changes:
                self.advance(changes["advance"])
            return {"now": self.clock.now(), "time_scale": self.clock.time_scale}
        token = changes.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise ValueError('expected {"refresh_token": "..."}')
        self.tokens.revoke(token)
        return {"revoked": True}


@asynccontextmanager
async def run_simulator(book_or_path: ContactBook | str | Path, host: str = "127.0.0.1", port: int = 0,
                        knobs: Knobs | None = None, limits: Limits | None = None) -> AsyncIterator[Simulator]:
    """Serve on ``host:port`` (0: a free port) until the block exits; yields the Simulator (``.url`` set).
    ``limits`` None: no limits (``Limits.off()``)."""
    sim = Simulator(_as_book(book_or_path), knobs, limits=limits)
    # handler_cancellation: a hung answer stops when its client gives up
    # long GET query strings (a 5,000-character hostile value, URL-encoded) must reach the handler
    # a SOQL URL past Salesforce's 16,384 bytes must reach the handler to get Salesforce's 414
    server = web.Server(sim.handle, handler_cancellation=True, access_log=None,
                        max_line_size=1 << 20, max_field_size=65536)
    runner = web.ServerRunner(server, shutdown_timeout=0.25)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        shown = f"[{host}]" if ":" in host else host
        sim.url = f"http://{shown}:{site.port}"
        yield sim
    finally:
        await runner.cleanup()


class SimulatorThread:
    """The simulator in its own thread and event loop, for synchronous callers.

    ``with SimulatorThread("contacts.csv", limits=Limits.real(time_scale=0)) as sim: httpx.get(sim.url + ...)``
    """

    def __init__(self, book_or_path: ContactBook | str | Path, host: str = "127.0.0.1", port: int = 0,
                 knobs: Knobs | None = None, limits: Limits | None = None):
        self.book = _as_book(book_or_path)  # a bad file fails here, in the caller's thread
        self.host, self.port, self.knobs, self.limits = host, port, knobs, limits
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._sim: Simulator | None = None
        self._error: BaseException | None = None

    def start(self) -> "SimulatorThread":
        """Returns once the port is bound (raises what binding raised)."""
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="crm-sim", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    async def _main(self) -> None:
        try:
            async with run_simulator(self.book, self.host, self.port, self.knobs, self.limits) as sim:
                self._loop, self._stop_event, self._sim = asyncio.get_running_loop(), asyncio.Event(), sim
                self._ready.set()
                await self._stop_event.wait()
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    @property
    def url(self) -> str:
        if self._sim is None or self._sim.url is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return self._sim.url

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the server's loop: its state is not shared between threads."""
        if self._loop is None or self._sim is None:
            raise RuntimeError("the simulator is not running: call start() first")

        async def call() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    def stats(self) -> dict[str, Any]:
        return self._call(lambda: self._sim.stats())

    def reset(self) -> None:
        self._call(lambda: self._sim.reset())

    def set_knobs(self, knobs: Knobs | None = None, **changes: Any) -> Knobs:
        return self._call(lambda: self._sim.set_knobs(knobs, **changes))

    def set_limits(self, limits: Limits | None = None, **changes: Any) -> Limits:
        return self._call(lambda: self._sim.set_limits(limits, **changes))

    def advance(self, seconds: float) -> float:
        """Move the simulated clock forward (with ``time_scale=0`` nothing else moves it)."""
        return self._call(lambda: self._sim.advance(seconds))

    def revoke(self, refresh_token: str) -> None:
        self._call(lambda: self._sim.tokens.revoke(refresh_token))

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None and self._thread is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:
                pass  # the loop already ended
            self._thread.join(timeout=10)
        self._loop = self._stop_event = self._sim = None

    def __enter__(self) -> "SimulatorThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
