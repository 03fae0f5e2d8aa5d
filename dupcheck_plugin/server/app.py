"""The Starlette app: Convoso-compatible lead insert API in front of the host.

I/O lives here; parameter parsing and answer shapes are in :mod:`.convoso`.
One lead: read parameters -> token -> (Idempotency-Key lock) -> Convoso's
parameter checks -> ``host.decide`` (the same path as ``run``: intake, the
phone's lock, local DNC / duplicate checks, the CRM and the rules, the
store) -> the answer, built from the stored record.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from .. import codes
from ..host import (CancelledAfterCommit, Decision, DncEntry, Host, KeyedLocks, StoreError, StoreOutcomeUnknown,
                    Workflow)
from ..phone import country_code, split_e164, to_e164
from . import convoso as cv
from .admin.auth import Admin, AdminTokens, session_secret
from .auth import Tokens, token_scope
from .http import (BODY_TIMEOUT_S, Guard, api_error_handler, http_error_handler, json_response, log_fields,
                   refusal_handler)
from .logs import access_logged, masked_phone
from .metrics import Metrics
from .openapi import openapi_spec
from .reload import Reloader

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 255
BOTH = ["GET", "POST"]  # Convoso clients use either (walmat/convoso-sdk GETs, convoso-js and go-convoso POST)


@dataclass(frozen=True)
class ServeSettings:
    workflow: str
    tokens: Sequence[str]
    db: str = "dupcheck.db"
    crm_url: str | None = None
    check_dup_default: int = 1
    max_body_bytes: int = cv.MAX_BODY_BYTES
    environ: Mapping[str, str] | None = None  # for the workflow's secrets; None: os.environ
    body_timeout_s: float = BODY_TIMEOUT_S
    admin_tokens: Sequence[Admin] = ()  # none: the settings console is off
    admin_secret: str | None = None  # signs console sessions; None: a new one per start
    admin_clock: Callable[[], float] = time.monotonic  # times failed admin logins (a test passes its own)
    reload_on_sighup: bool = False  # `dupcheck serve` (the main thread) reloads the workflow on SIGHUP


def _e164_or_none(phone: str, phone_code: str) -> str | None:
    try:
        return to_e164(phone, phone_code or "1")
    except Exception:  # noqa: BLE001 - any unparsable phone is "no phone" here
        return None


class Api:
    """The state of one app: host, tokens, locks, metrics; the endpoints."""

    def __init__(self, settings: ServeSettings, host: Host | None):
        self.settings = settings
        self.host = host
        self.tokens = Tokens(settings.tokens)
        self.metrics = Metrics(health=lambda: self.host.health() if self.host is not None else {},
                               alarm=lambda: (self.host.workflow.name, self.host.alarm.status()) if self.host else None)
        self.key_locks = KeyedLocks()
        self.closed = False
        self.in_flight = 0
        self.reloader = Reloader(lambda: self.host, self._load)

    # -- lifecycle --------------------------------------------------------

    def open(self) -> None:
        if self.host is None:
            s = self.settings
            self.host = Host.open(s.workflow, db=s.db, crm_url=s.crm_url, environ=s.environ, interactive=True)
        self.reloader.loaded()

    def _load(self, path: str) -> Workflow:
        """A workflow file loaded as this server loads its own (for a reload); raises ConfigError."""
        s = self.settings
        return Workflow.load(path, registry=self.host.registry, crm_url=s.crm_url, environ=s.environ,
                             interactive=True)  # as Host.open in serve: a lead waits at most max_wait

    async def close(self) -> None:
        """Joins the store writer: every queued decision lands before this returns."""
        if self.host is not None and not self.closed:
            self.closed = True
            await self.host.aclose()

    @property
    def store(self):
        return self.host.store

    # -- parameters and auth ----------------------------------------------

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise cv.ApiError(413, f"Request body larger than {limit} bytes")
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise cv.ApiError(413, f"Request body larger than {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise cv.ApiError(408, f"Request body not received within {self.settings.body_timeout_s:g} s") from None
        return b"".join(chunks)

    async def _body_params(self, request: Request, body: bytes) -> list[tuple[str, str]]:
        if not body.strip():
            return []  # walmat/convoso-sdk sends Content-Type: application/json on bodiless GETs
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json" or ctype.endswith("+json") or (not ctype and body.lstrip()[:1] == b"{"):
            return cv.json_params(body)
        if ctype in ("application/x-www-form-urlencoded", ""):
            return cv.form_params(body)
        if ctype == "multipart/form-data":
            return await self._multipart(request, body)
        raise cv.ApiError(415, "Unsupported Content-Type: send form fields, a flat JSON object or a query string")

    @staticmethod
    async def _multipart(request: Request, body: bytes) -> list[tuple[str, str]]:
        async def replay() -> dict[str, Any]:  # the body was already read (and size-checked)
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            async with Request(request.scope, replay).form(max_files=0, max_fields=1000) as form:
                items = list(form.multi_items())
        except Exception:  # noqa: BLE001 - any broken multipart body is the caller's error
            raise cv.ApiError(400, "the multipart body could not be read (files are not accepted)") from None
        return [(k, v) for k, v in items if isinstance(v, str)]

    async def params(self, request: Request) -> dict[str, str]:
        """Query string + body, merged, then the token checked."""
        if len(request.scope.get("query_string", b"")) > self.settings.max_body_bytes:
            raise cv.ApiError(414, f"Query string longer than {self.settings.max_body_bytes} bytes")
        body = await self._body(request)
        query = request.query_params.multi_items() if request.scope.get("query_string") else ()  # POSTs have none
        params = cv.merge(query, await self._body_params(request, body))
        token = params.get("auth_token")
        if token is None:
            header = request.headers.get("authorization", "")
            if header[:7].lower() == "bearer ":
                token = header[7:].strip()
        if not token:
            raise cv.ApiError(401, "Missing auth_token", code=401)
        if not self.tokens.valid(token):
            raise cv.ApiError(403, "Invalid auth_token", code=403)
        request.state.token_scope = token_scope(token)
        return params

    # -- leads/insert -------------------------------------------------------

    async def leads_insert(self, request: Request) -> Response:
        started = time.perf_counter()
        params = await self.params(request)
        key = request.headers.get("idempotency-key")
        if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable() and key.isascii()):
            raise cv.ApiError(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters")
        fields = log_fields(request)
        self.metrics.in_flight.inc()
        self.in_flight += 1
        record: dict[str, Any] = {}
        try:
            if key is None:
                record = await self._decide(params, None, None)
            else:
                key = f"{request.state.token_scope}:{key}"  # scoped per token: no replaying another client's key
                async with self.key_locks.hold(key):  # a concurrent retry waits for the first answer
                    record = await self._decide_once(params, key, fields)
        except asyncio.CancelledError as exc:  # a shutdown past its grace: answered in JSON all the same
            record = self._cancelled(exc)
        finally:
            self.metrics.in_flight.dec()
            self.in_flight -= 1
            if access_logged():  # the lead's E.164 once decided, else the phone as sent
                fields["phone"] = masked_phone(record.get("phone_e164") or params.get("phone_number"))
        if access_logged():
            fields.update(action=record.get("action"), code=record.get("code"), lead_id=record.get("lead_id"))
        self.metrics.insert_own.observe(self._own_time(started, record, replayed="replayed" in fields))
        return json_response(200, cv.insert_answer(record))

    @staticmethod
    def _cancelled(exc: asyncio.CancelledError) -> dict[str, Any]:
        """The answer of an insert cancelled by a shutdown past ``--graceful-timeout``
        (uvicorn's text 500 otherwise, even for a lead it had stored): the stored record when
        the write landed, else a JSON 503 that says the outcome is not known."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # answered here: the cancellation ends with this handler
        if isinstance(exc, CancelledAfterCommit):
            return exc.record
        raise cv.ApiError(503, "Internal error: the server stopped before this insert was answered; it may or may "
                          "not have been decided: retry with the same Idempotency-Key, or look the lead up before "
                          "retrying without one", code=codes.INTERNAL.code) from None

    @staticmethod
    def _own_time(started: float, record: Mapping[str, Any], replayed: bool) -> float:
        """Seconds since ``started`` less the CRM's round trip (all its attempts, and any wait
        for the CRM's quota): what dupcheck itself added. A replay made no call of its own."""
        own = time.perf_counter() - started
        crm = record.get("crm") or {}
        if not replayed and crm.get("called") and crm.get("latency_ms") is not None:
            own -= crm["latency_ms"] / 1000
        return max(own, 0.0)

    async def _decide_once(self, params: dict[str, str], key: str, fields: dict[str, Any]) -> dict[str, Any]:
        fingerprint = cv.params_hash(params)
        prior = self.store.decision_by_idempotency_key(key)
        if prior is None:
            try:
                return await self._decide(params, key, fingerprint)
            except cv.ApiError as exc:  # the store refused it: maybe another process stored this key first
                prior = self.store.decision_by_idempotency_key(key) if exc.status == 503 else None
                if prior is None:
                    raise
        if (prior.get("api") or {}).get("request_hash") != fingerprint:
            raise cv.ApiError(422, "Idempotency-Key already used with different parameters")
        fields["replayed"] = True
        return prior

    async def _decide(self, params: dict[str, str], key: str | None, fingerprint: str | None) -> dict[str, Any]:
        """Decide one lead on the host's one path; returns the stored record."""
        api: dict[str, Any] = {"check_dup": None, "check_dnc": None, "request_hash": fingerprint}
        try:
            req = cv.parse_insert(params, self.settings.check_dup_default)
        except cv.Refusal as r:  # Convoso refuses it before looking at the lead: recorded all the same
            intake = self.host.workflow.admit(cv.lead_fields(params))
            lead: Any = replace(intake, refused=Decision.refused(r.code_info, r.detail, by="intake"))
            check_dup, check_dnc = 0, False
        else:
            lead, check_dup, check_dnc = req.lead, req.check_dup, req.check_dnc
            api.update(check_dup=check_dup, check_dnc=check_dnc)
        try:
            stored = await self.host.decide(lead, check_dup=check_dup, check_dnc=check_dnc, api=api,
                                            idempotency_key=key)
        except StoreOutcomeUnknown as exc:  # the database went at COMMIT: the lead may be stored
            log.error("deciding a lead: %s", exc)
            raise cv.ApiError(503, "Internal error: the decision may or may not have been stored; retry with the "
                              "same Idempotency-Key, or look the lead up before retrying without one",
                              code=codes.INTERNAL.code) from None
        except StoreError as exc:  # the store refused the write: nothing was created
            log.error("deciding a lead failed: %s", exc)
            raise cv.ApiError(503, "Internal error: the decision could not be stored, retry later",
                              code=codes.INTERNAL.code) from None
        self.metrics.decision(stored, connection=self._connection())
        return stored

    def _connection(self) -> str | None:
        """The Convoso Connect node the current table asks (for the console's Connections page)."""
        check = self.host.workflow.check
        return check.settings.connect if check is not None else None

    async def reload_on_signal(self) -> None:
        outcome = await self.reloader.reload("SIGHUP")
        if outcome.ok:
            log.info("SIGHUP: workflow reloaded")
        else:
            log.error("SIGHUP: workflow not reloaded, the running table stays: %s",
                      "; ".join(str(p) for p in outcome.problems))

    # -- leads/search, dnc, decisions ---------------------------------------

    def _phone(self, params: Mapping[str, str], key: str = "phone_number") -> str | None:
        raw = (params.get(key) or "").strip()
        if not raw:
            return None
        phone = _e164_or_none(raw, (params.get("phone_code") or "").strip().lstrip("+") or "1")
        if phone is None:
            raise cv.Refusal(codes.BAD_PHONE)
        return phone

    async def leads_search(self, request: Request) -> Response:
        params = await self.params(request)
        offset, limit = cv.page(params, default_limit=10, max_limit=2000)
        phone = self._phone(params)
        log_fields(request)["phone"] = masked_phone(phone)
        lead_id = (params.get("lead_id") or "").strip() or None
        list_id = (params.get("list_id") or "").strip() or None
        email = (params.get("email") or "").strip() or None
        total, leads = await asyncio.to_thread(self.store.search_leads, lead_id=lead_id, phone_e164=phone,
                                               list_id=list_id, email=email, offset=offset, limit=limit)
        # total is a string: Convoso sends it so, and go-convoso decodes it into a Go string
        return json_response(200, cv.search_answer(offset, limit, str(total), [cv.lead_entry(x) for x in leads]))

    @staticmethod
    def _country_code(params: Mapping[str, str], required: bool) -> str:
        text = (params.get("phone_code") or "").strip()
        if not text and not required:
            return "1"
        code = country_code(text)
        if code is None:
            raise cv.Refusal(codes.BAD_COUNTRY_CODE)
        return code

    @staticmethod
    def _campaign(params: Mapping[str, str], default: str | None) -> str | None:
        raw = (params.get("campaign_id") or "").strip()
        if not raw:
            return default
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise cv.Refusal(codes.INVALID_CAMPAIGN)
        return str(int(raw))

    async def dnc_insert(self, request: Request) -> Response:
        params = await self.params(request)
        raw = (params.get("phone_number") or "").strip()
        if not raw:
            raise cv.Refusal(codes.DNC_BAD_PHONE)
        code = self._country_code(params, required=True)
        campaign = self._campaign(params, "0")
        phone = _e164_or_none(raw, code)
        if phone is None:
            raise cv.Refusal(codes.DNC_BAD_PHONE)
        log_fields(request)["phone"] = masked_phone(phone)
        reason = params.get("reason") or ""
        async with self.host.phone_locks.hold(phone):  # ordered with inserts of this phone
            # a write: it may wait for the writer thread's transaction, so not on the event loop
            entry_id, added = await asyncio.to_thread(self.store.dnc_add,
                                                      DncEntry(phone, *split_e164(phone), campaign, reason))
        if not added:
            raise cv.Refusal(codes.DNC_PHONE_EXISTS)
        return json_response(200, {"success": True, "id": entry_id})

    async def dnc_search(self, request: Request) -> Response:
        params = await self.params(request)
        offset, limit = cv.page(params, default_limit=100, max_limit=1000)
        phone = None
        if (params.get("phone_number") or "").strip():
            code = self._country_code(params, required=False)
            phone = _e164_or_none(params["phone_number"].strip(), code)
            if phone is None:
                raise cv.Refusal(codes.DNC_BAD_PHONE)
        log_fields(request)["phone"] = masked_phone(phone)
        campaign = self._campaign(params, None)
        total, rows = await asyncio.to_thread(self.store.dnc_search, phone, campaign, offset, limit)
        return json_response(200, cv.search_answer(offset, limit, total, [cv.dnc_entry(r) for r in rows]))

    async def decisions(self, request: Request) -> Response:
        params = await self.params(request)
        phone = self._phone(params, "phone") or self._phone(params, "phone_number")
        if phone is None:
            raise cv.Refusal(codes.DNC_BAD_PHONE, "phone is required")
        log_fields(request)["phone"] = masked_phone(phone)
        records = await asyncio.to_thread(self.store.decisions, phone)
        return json_response(200, {"success": True, "data": {"phone_e164": phone, "total": len(records),
                                                             "entries": records}})

    # -- operations -----------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        try:
            self.store.find_leads("+0")  # an index probe: proves the store answers, costs microseconds
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return json_response(503, {"success": False, "ok": False, "code": codes.INTERNAL.code,
                                       "text": f"store unavailable: {type(exc).__name__}"})
        # an open breaker is reported, not a failed probe: the API still answers (on_error decides)
        return json_response(200, {"success": True, "ok": True, "workflow": self.host.workflow.name,
                                   "inserts_in_flight": self.in_flight,
                                   "phone_locks": len(self.host.phone_locks),
                                   "connections": self.host.health(),
                                   "alarm": self.host.alarm.status()})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def openapi(self, request: Request) -> Response:
        return json_response(200, openapi_spec())


def create_app(settings: ServeSettings, host: Host | None = None) -> Starlette:
    """The app. The host is opened at startup (unless given) and closed at
    shutdown, which waits for every queued store write."""
    api = Api(settings, host)

    @asynccontextmanager
    async def lifespan(app):
        api.open()
        if settings.reload_on_sighup:
            loop = asyncio.get_running_loop()
            reloads: set[asyncio.Task] = set()  # held until done: the loop keeps only weak references

            def on_sighup() -> None:
                task = asyncio.ensure_future(api.reload_on_signal())
                reloads.add(task)
                task.add_done_callback(reloads.discard)

            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        try:
            yield
        finally:
            if settings.reload_on_sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await api.close()

    routes = [
        Route("/v1/leads/insert", api.leads_insert, methods=BOTH),
        Route("/v1/leads/search", api.leads_search, methods=BOTH),
        Route("/v1/dnc/insert", api.dnc_insert, methods=BOTH),
        Route("/v1/dnc/search", api.dnc_search, methods=BOTH),
        Route("/v1/decisions", api.decisions, methods=BOTH),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
    ]
    for route in routes[:5]:
        route.methods.discard("HEAD")  # Starlette adds HEAD to GET routes; a HEAD must not insert a lead
    if settings.admin_tokens:
        from .admin.app import create_console

        admin = AdminTokens(list(settings.admin_tokens), list(settings.tokens))
        secret = settings.admin_secret or session_secret(settings.environ)
        from .admin.throttle import LoginThrottle

        throttle = LoginThrottle(clock=settings.admin_clock)
        routes.append(Mount("/admin", app=create_console(api, admin, secret, throttle)))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        cv.Refusal: refusal_handler, cv.ApiError: api_error_handler, HTTPException: http_error_handler})
    app.router.redirect_slashes = False  # a 307 to the other spelling is not an answer a lead vendor reads
    app.state.api = api
    app.add_middleware(Guard, metrics=api.metrics, routes=frozenset(r.path for r in routes))
    return app
