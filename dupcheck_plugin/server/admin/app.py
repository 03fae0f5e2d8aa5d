"""The settings console under ``/admin``: Global Settings, Test a lead,
Decisions, Connections, and ``POST /admin/api/reload``.

A Starlette app of its own, mounted by the lead API's app: its own session
middleware, security headers and error pages, so nothing here changes how
``/v1/...`` answers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import tomlkit
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ...host import DupcheckError, row_label
from ...phone import to_e164
from . import settings_form as sf
from .auth import AdminTokens, csrf_ok, csrf_token, current_admin, log_in
from .connections import connection_views
from .evidence import RowInForce, response_body, row_in_force
from .probe import LEAD_FIELDS, explain_pasted, probe_lead
from .throttle import LoginThrottle
from .workflow_file import CONNECT_NODE_TYPE, check_node_ids, check_node_index, edit_check_settings, node_version

HERE = Path(__file__).parent
PAGE_SIZE = 50
CSV_COLUMNS = ("id", "decided_at", "phone_e164", "action", "rules_row", "rules_row_name", "decided_by", "status",
               "code", "text", "detail", "success", "dnc_added", "lead_id", "list_id", "crm_status", "crm_error", "crm_latency_ms")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"cache-control", b"no-store")]


class SecurityHeaders:
    """Every console answer: a Content-Security-Policy (no inline script), no framing, no caching."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [h for h in message["headers"] if h[0] != b"cache-control"] + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Console:
    def __init__(self, api, tokens: AdminTokens, throttle: LoginThrottle):
        self.api = api
        self.tokens = tokens
        self.throttle = throttle
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["tojson"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
        self.templates.env.globals["row_label"] = row_label  # "row 2 (customer)", as everywhere

    @property
    def host(self):
        return self.api.host

    # -- plumbing -------------------------------------------------------------

    def page(self, request: Request, name: str, status: int = 200, **context) -> Response:
        context.update(request=request, csrf=csrf_token(request), who=request.session.get("who"),
                       workflow=self.host.spec.name, nav=name.split(".")[0])
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    async def guard(self, request: Request, api: bool = False) -> tuple[str | None, Response | None]:
        """(who, None) when allowed, else (None, the answer: 401 / redirect / 403)."""
        admin, by_cookie = current_admin(request, self.tokens)
        if not by_cookie:  # a bearer token: a login like the form's, counted the same way
            refused = self._throttled(request, admin is not None, api=True)
            if refused:
                return None, refused
        if admin is None:
            if api or not by_cookie:
                return None, JSONResponse({"ok": False, "error": "admin login required"}, 401,
                                          {"www-authenticate": 'Bearer realm="dupcheck admin"'})
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return None, RedirectResponse(f"/admin/login?next={quote(target)}", 303)
        if request.method not in ("GET", "HEAD") and by_cookie and not await csrf_ok(request):
            return None, Response("CSRF token missing or wrong: reload the page and try again", 403,
                                  media_type="text/plain")
        return admin.name, None

    # -- login ------------------------------------------------------------------

    def _throttled(self, request: Request, good: bool, api: bool = False,
                   target: str = "/admin/settings") -> Response | None:
        """Count one login attempt of the client; the answer when it must wait (429), else None."""
        client = client_address(request)
        wait = self.throttle.retry_after(client)
        if wait is not None:
            message = f"too many failed admin logins from {client}: try again in {wait} s"
            if api:
                return JSONResponse({"ok": False, "error": message}, 429, {"retry-after": str(wait)})
            response = self.page(request, "login.html", 429, next=target, error=message[0].upper() + message[1:])
            response.headers["retry-after"] = str(wait)
            return response
        if good:
            self.throttle.succeeded(client)
        else:
            self.throttle.failed(client)
        return None

    async def login_form(self, request: Request) -> Response:
        return self.page(request, "login.html", next=request.query_params.get("next", "/admin/settings"))

    async def login(self, request: Request) -> Response:
        if not await csrf_ok(request):
            return Response("CSRF token missing or wrong: reload the page and try again", 403, media_type="text/plain")
        form = await request.form()
        admin = self.tokens.find(str(form.get("token", "")))
        target = str(form.get("next") or "/admin/settings")
        if not target.startswith("/admin/") or target.startswith("//"):
            target = "/admin/settings"
        refused = self._throttled(request, admin is not None, target=target)
        if refused:
            return refused
        if admin is None:
            return self.page(request, "login.html", 401, next=target, error="That is not an admin token.")
        log_in(request, admin)
        return RedirectResponse(target, 303)

    async def logout(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        request.session.clear()
        return RedirectResponse("/admin/login", 303)

    async def index(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        return denied or RedirectResponse("/admin/settings", 303)

    # -- Global Settings ----------------------------------------------------------

    def _form(self, doc, node_id: str | None) -> sf.SettingsForm | None:
        """The form of check node ``node_id`` (None: the first), or None when there is no such node."""
        index = check_node_index(doc, node_id)
        if index is None:
            return None
        node = doc["nodes"][index]
        form = sf.from_config(node.get("config", {}), node=str(node.get("id", "")), version=node_version(doc, index))
        sf.place_warnings(form, node.get("config", {}), self._answer_keys(doc, node.get("config", {})))
        return form

    def _answer_keys(self, doc, config) -> tuple[str, frozenset[str]] | None:
        """(adaptor name, the answer keys it names) of the running connection a check node
        reads, for its rules keys' warnings as ``check`` gives them; None without one."""
        connect = config.get("connect")
        conn = next((n for n in doc.get("nodes", []) if n.get("id") == connect), None)
        live = self.host.nodes.get(connect) if isinstance(connect, str) else None
        if conn is None or (conn.get("config") or {}).get("response_key") or not hasattr(live, "adaptor"):
            return None  # the rules read a part of the answer the adaptor does not describe
        return live.adaptor.name, live.adaptor.answer_keys

    def _connections(self, doc) -> list[dict[str, str]]:
        out = []
        for node in doc.get("nodes", []):
            if node.get("type") == CONNECT_NODE_TYPE:
                cfg = node.get("config", {})
                adaptor_name = str(cfg.get("adaptor", ""))
                crm = ""
                nodes = self.host.nodes
                if node.get("id") in nodes and hasattr(nodes[node["id"]], "adaptor"):
                    adaptor = nodes[node["id"]].adaptor
                    crm = adaptor.description or adaptor.name
                out.append({"id": node.get("id", ""), "adaptor": adaptor_name, "crm": crm})
        return out

    @staticmethod
    def _checks(doc) -> list[dict[str, Any]]:
        """The check nodes for the node selector: id, its connection, on/off, rows."""
        out = []
        for node_id in check_node_ids(doc):
            cfg = doc["nodes"][check_node_index(doc, node_id)].get("config", {})
            out.append({"id": node_id, "connect": str(cfg.get("connect", "")), "enabled": cfg.get("enabled", True),
                        "rows": len(cfg.get("rules", []))})
        return out

    async def settings_page(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        text = await asyncio.to_thread(self.api.reloader.read)
        try:
            doc = tomlkit.parse(text).unwrap()
        except Exception as exc:  # noqa: BLE001 - a file broken by hand: say so, the engine runs on
            return self.page(request, "settings.html", 409, form=None, broken=f"{type(exc).__name__}: {exc}",
                             path=str(self.api.reloader.path))
        asked = request.query_params.get("node") or None
        form = self._form(doc, asked) or self._form(doc, None)
        if form is None:
            return self.page(request, "settings.html", form=None, connections=[], changes=[], operators=())
        if asked and form.node != asked:
            message = f"The workflow has no api_duplicate_check node {asked!r}; this is node {form.node!r}."
        elif request.query_params.get("applied"):
            message = f"Changes applied to node {form.node}: new leads are decided by the new table."
        else:
            message = None
        return await self._settings(request, form, doc, message=message)

    async def _settings(self, request: Request, form, doc, status: int = 200, message: str | None = None):
        changes = await asyncio.to_thread(self.host.store.config_changes, self.host.spec.name, 20)
        return self.page(request, "settings.html", status, form=form, checks=self._checks(doc),
                         connections=self._connections(doc), changes=changes, operators=sf.operators(),
                         actions=sf.ON_ERROR_ACTIONS, cells=sf.ROW_CELLS, message=message,
                         path=str(self.api.reloader.path))

    async def apply(self, request: Request) -> Response:
        """Write the posted node's settings and rules, and only those, into the file as it is now."""
        who, denied = await self.guard(request)
        if denied:
            return denied
        posted = await request.form()
        form = sf.from_post(posted, lambda k: [str(v) for v in posted.getlist(k)])
        rows = [(row.orig, sf.row_values(row)) for row in form.rows]
        values = sf.settings_values(form)
        node_id = form.node or None  # a form without one (a script): the first check node

        def edit(old: str) -> tuple[str, str]:
            new = edit_check_settings(old, values, rows, sf.ROW_CELLS, node_id, form.version or None)
            doc = tomlkit.parse(old).unwrap()
            return new, summary(doc, check_node_index(doc, node_id), form)

        outcome = await self.api.reloader.apply_edit(edit, who)
        if outcome.ok:
            return RedirectResponse(f"/admin/settings?applied=1&node={quote(form.node)}", 303)
        text = await asyncio.to_thread(self.api.reloader.read)
        try:
            doc = tomlkit.parse(text).unwrap()
        except Exception:  # noqa: BLE001 - the settings page explains it
            return RedirectResponse("/admin/settings", 303)
        index = check_node_index(doc, node_id)
        if index is None or any(p.code == "conflict" for p in outcome.problems):
            # drawn from another version of the node: show it as it is now; nothing was written
            fresh = self._form(doc, node_id) or self._form(doc, None)
            if fresh is None:
                return Response("the workflow has no api_duplicate_check node", 409, media_type="text/plain")
            fresh.general += [p.message for p in outcome.problems] + ["Nothing was written: here is the node as "
                                                                      "it is now; make your change again."]
            return await self._settings(request, fresh, doc, 409)
        sf.place_problems(form, outcome.problems, index)
        sf.place_warnings(form, {"rules": [values for _, values in rows]},  # of the table as typed, as after Apply
                          self._answer_keys(doc, doc["nodes"][index].get("config", {})))
        return await self._settings(request, form, doc, 422)

    async def revert(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        change = await asyncio.to_thread(self.host.store.config_change, int(request.path_params["change_id"]))
        if change is None:
            return Response("no such change", 404, media_type="text/plain")
        outcome = await self.api.reloader.apply_text(change["text"], who, f"revert to version #{change['id']}")
        if not outcome.ok:
            text = await asyncio.to_thread(self.api.reloader.read)
            doc = tomlkit.parse(text).unwrap()
            form = self._form(doc, None)
            form.general += [str(p) for p in outcome.problems]
            return await self._settings(request, form, doc, 422)
        return RedirectResponse("/admin/settings?applied=1", 303)

    async def api_reload(self, request: Request) -> Response:
        who, denied = await self.guard(request, api=True)
        if denied:
            return denied
        outcome = await self.api.reloader.reload(f"{who} (POST /admin/api/reload)")
        if not outcome.ok:
            return JSONResponse({"ok": False, "problems": [p.as_json() for p in outcome.problems]}, 422)
        return JSONResponse({"ok": True, "workflow": self.host.spec.name, "change_id": outcome.change_id})

    # -- Test a lead ----------------------------------------------------------------

    async def test_page(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        return self.page(request, "test.html", fields=LEAD_FIELDS, lead={}, result=None, mode="lead")

    async def test_run(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        form = await request.form()
        lead = {k: str(form.get(k, "")).strip() for k in LEAD_FIELDS if str(form.get(k, "")).strip()}
        mode = "paste" if form.get("mode") == "paste" else "lead"
        error, result = None, None
        try:
            if mode == "paste":
                status = str(form.get("status", "")).strip()
                result = explain_pasted(self.host, str(form.get("answer", "")).encode(),
                                        int(status) if status.isdigit() else None, lead or None)
            else:
                result = await probe_lead(self.host, lead)
        except (ValueError, DupcheckError) as exc:
            error = str(exc)
        name = "test_result.html" if request.headers.get("hx-request") else "test.html"
        return self.page(request, name, fields=LEAD_FIELDS, lead=lead, result=result, error=error, mode=mode,
                         answer=str(form.get("answer", "")), answer_status=str(form.get("status", "")))

    # -- Decisions ----------------------------------------------------------------------

    def _filters(self, request: Request) -> tuple[dict[str, Any], dict[str, str], str | None]:
        q = request.query_params
        raw = {k: q.get(k, "").strip() for k in ("since", "until", "action", "row", "phone", "list_id")}
        filters: dict[str, Any] = {k: (v or None) for k, v in raw.items() if k not in ("phone", "row")}
        filters["rules_row"] = raw["row"] or None
        error = None
        if filters["until"]:
            filters["until"] = inclusive_until(filters["until"])
        filters["phone_e164"] = None
        if raw["phone"]:
            try:
                filters["phone_e164"] = to_e164(raw["phone"], "1")
            except Exception:  # noqa: BLE001 - any unparsable phone is the user's typo
                error = f"{raw['phone']!r} is not a phone number"
        return filters, raw, error

    async def decisions(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        filters, raw, error = self._filters(request)
        raw_page = request.query_params.get("page", "1")
        page = max(1, int(raw_page)) if raw_page.isdigit() else 1
        total, records = (0, []) if error else await asyncio.to_thread(
            self.host.store.search_decisions, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, **filters)
        query = urlencode({k: v for k, v in raw.items() if v})
        return self.page(request, "decisions.html", records=records, total=total, page=page, size=PAGE_SIZE,
                         filters=raw, error=error, query=query,
                         pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE))

    async def decisions_csv(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        filters, _, error = self._filters(request)
        if error:
            return Response(error, 400, media_type="text/plain")

        def rows() -> str:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            offset = 0
            while True:
                _, page = self.host.store.search_decisions(offset=offset, limit=1000, **filters)
                for r in page:
                    writer.writerow(csv_row(r))
                if len(page) < 1000:
                    return out.getvalue()
                offset += 1000

        body = await asyncio.to_thread(rows)
        return Response(body, media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="decisions.csv"'})

    async def decision(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        record = await asyncio.to_thread(self.host.store.decision_by_id, int(request.path_params["decision_id"]))
        if record is None:
            return Response("no such decision", 404, media_type="text/plain")
        from ..convoso import insert_answer

        def row() -> RowInForce | None:
            changes = self.host.store.config_changes(record.get("workflow") or self.host.spec.name, 1000)
            try:
                current = self.api.reloader.read()
            except OSError:  # the file went away: the change log may still know the row
                current = ""
            return row_in_force(record, changes, current, self.host.workflow.check_id)

        return self.page(request, "decision.html", record=record, caller_answer=insert_answer(record),
                         row=await asyncio.to_thread(row), crm_body=response_body(record.get("response")))

    # -- Connections -------------------------------------------------------------------

    async def connections(self, request: Request) -> Response:
        who, denied = await self.guard(request)
        if denied:
            return denied
        return self.page(request, "connections.html", connections=connection_views(self.host, self.api.metrics))


def inclusive_until(until: str) -> str:
    """"until 10:00" (a datetime-local value) or "until 2026-11-27" includes that whole minute or day:
    padded to the stored ``decided_at`` form, which compares as text."""
    if len(until) == 10:
        return until + "T23:59:59.999+99:99"
    if len(until) == 16:
        return until + ":59.999+99:99"
    return until


def csv_row(r: dict[str, Any]) -> list[Any]:
    crm = r.get("crm") or {}
    lead = r.get("lead") or {}
    return [r.get("id"), r.get("decided_at"), r.get("phone_e164"), r.get("action"), r.get("rules_row"),
            r.get("rules_row_name"), r.get("decided_by"), r.get("status"), r.get("code"), r.get("text"), r.get("detail"),
            r.get("success"), r.get("dnc_added"),
            r.get("lead_id"), lead.get("list_id"), crm.get("status_code"), crm.get("error"), crm.get("latency_ms")]


def summary(doc: dict[str, Any], index: int | None, form) -> str:
    """A one-line account of what an Apply changes to node ``index`` of ``doc``, for the change log."""
    before = doc["nodes"][index].get("config", {}) if index is not None else {}
    after = sf.settings_values(form)
    parts = []
    if bool(before.get("enabled", True)) != after["enabled"]:
        parts.append("duplicate check " + ("on" if after["enabled"] else "off"))
    if before.get("connect") != after["connect"]:
        parts.append(f"connection {after['connect']}")
    if before.get("default_status", "NEW") != after["default_status"]:
        parts.append(f"default status {after['default_status']}")
    old_rows, new_rows = len(before.get("rules", [])), len(form.rows)
    if old_rows != new_rows:
        parts.append(f"rules {old_rows} -> {new_rows} rows")
    what = "; ".join(parts) or "rules or on_error edited"
    return f"{form.node}: {what}" if form.node and len(check_node_ids(doc)) > 1 else what


def create_console(api, tokens: AdminTokens, secret: str, throttle: LoginThrottle | None = None) -> Starlette:
    console = Console(api, tokens, throttle or LoginThrottle())
    routes = [
        Route("/", console.index),
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/settings", console.settings_page, methods=["GET"]),
        Route("/settings", console.apply, methods=["POST"]),
        Route("/settings/revert/{change_id:int}", console.revert, methods=["POST"]),
        Route("/test", console.test_page, methods=["GET"]),
        Route("/test", console.test_run, methods=["POST"]),
        Route("/decisions", console.decisions, methods=["GET"]),
        Route("/decisions.csv", console.decisions_csv, methods=["GET"]),
        Route("/decisions/{decision_id:int}", console.decision, methods=["GET"]),
        Route("/connections", console.connections, methods=["GET"]),
        Route("/api/reload", console.api_reload, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders),
                  Middleware(SessionMiddleware, secret_key=secret, session_cookie="dupcheck_admin",
                             max_age=8 * 3600, path="/admin", same_site="strict", https_only=False)]
    return Starlette(routes=routes, middleware=middleware)
