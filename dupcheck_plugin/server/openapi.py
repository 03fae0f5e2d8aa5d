"""The OpenAPI 3.1 description of ``dupcheck serve``, served at ``/openapi.json``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .. import __version__
from ..convoso_fields import OPTIONAL

_STR = {"type": "string"}
_INT = {"type": "integer"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, description: str, schema: dict | None = None, required: bool = False,
           where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema or _STR}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required,
              "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}
    return {"required": False, "description": "Parameters may also come as a query string; the body wins. "
                                             "No nested values. At most 1 MiB.",
            "content": {"application/x-www-form-urlencoded": {"schema": schema},
                        "multipart/form-data": {"schema": schema},
                        "application/json": {"schema": schema}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedType"},
}

_TOKEN = _param("auth_token", "API token (or `Authorization: Bearer <token>`)")
_PHONE = _param("phone_number", "Phone number, national digits or +E.164")
_CODE = _param("phone_code", "Country calling code (default 1)")
_PAGE = [_param("offset", "Rows to skip", _INT), _param("limit", "Rows to return", _INT)]


def _op(summary: str, description: str, params: list, body: dict | None, ok: dict, extra: dict | None = None,
        op_id: str = "") -> dict[str, Any]:
    op = {"summary": summary, "description": description, "operationId": op_id, "parameters": params,
          "responses": {"200": ok, **_ERRORS, **(extra or {})}}
    if body is not None:
        op["requestBody"] = body
    return op


def _both(op: dict[str, Any]) -> dict[str, Any]:
    get = {k: v for k, v in op.items() if k != "requestBody"}
    return {"get": {**get, "operationId": op["operationId"] + "Get"}, "post": op}


def _insert() -> dict[str, Any]:
    props = {"auth_token": _STR, "list_id": {"type": ["integer", "string"]}, "phone_number": _STR,
             "check_dup": {"type": ["integer", "string"], "description": "0 none, 1 account (default: "
                           "--check-dup-default), 2 same list, 3 same campaign (= same list)"},
             "check_dnc": {"type": ["boolean", "integer", "string"]},
             "check_dup_archive": {"type": ["boolean", "integer", "string"], "description": "accepted, ignored"},
             **{f: _STR for f in OPTIONAL}}
    params = [_TOKEN, _param("list_id", "List id (integer)"), _PHONE, _CODE,
              _param("check_dup", "0-3"), _param("check_dnc", "1/true: refuse numbers on the DNC list (6024)"),
              _param("Idempotency-Key", "A retry with the same key gets the first answer", where="header")]
    return _both(_op(
        "Insert a lead (Convoso leads/insert)",
        "Local DNC and duplicate checks, then the workflow's API Duplicate Check against the CRM, then the "
        "rules table decides. A row's failure answer is HTTP 200 with success false.",
        params, _body(props, []), _json(_ref("InsertAnswer"), "Success or a row's failure answer"),
        {"422": {"$ref": "#/components/responses/Unprocessable"}, "503": {"$ref": "#/components/responses/Unavailable"}},
        "leadsInsert"))


def _search(kind: str) -> dict[str, Any]:
    if kind == "leads":
        params = [_TOKEN, _param("lead_id", "Lead id"), _PHONE, _CODE, _param("list_id", "List id"),
                  _param("email", "Email (case-insensitive)"), *_PAGE]
        return _both(_op("Search leads (Convoso leads/search)", "limit default 10, max 2000; total is a string "
                         "as Convoso sends it.", params, _body({}, []),
                         _json(_ref("LeadSearchAnswer"), "Leads, newest first"), op_id="leadsSearch"))
    params = [_TOKEN, _PHONE, _CODE, _param("campaign_id", "0 = account-wide", _INT), *_PAGE]
    return _both(_op("Search the DNC list (Convoso dnc/search)", "limit default 100, max 1000.", params,
                     _body({}, []), _json(_ref("DncSearchAnswer"), "DNC entries, newest first"),
                     op_id="dncSearch"))


def _dnc_insert() -> dict[str, Any]:
    params = [_TOKEN, _PHONE, _param("phone_code", "Country calling code (required: 6026)"),
              _param("campaign_id", "0 (default) = account-wide", _INT), _param("reason", "Why")]
    ok = _json({"oneOf": [{"type": "object", "required": ["success", "id"],
                           "properties": {"success": {"const": True}, "id": _INT}}, _ref("Failure")]},
               "Added, or 6007 / 6008 (already there) / 6026 / 6006")
    return _both(_op("Add a phone to the DNC list (Convoso dnc/insert)", "", params, _body({}, []), ok,
                     op_id="dncInsert"))


def _decisions() -> dict[str, Any]:
    params = [_TOKEN, _param("phone", "Phone number", required=True), _CODE]
    ok = _json({"type": "object", "properties": {"success": {"const": True}, "data": {
        "type": "object", "properties": {"phone_e164": _STR, "total": _INT,
                                         "entries": {"type": "array", "items": {"type": "object"}}}}}},
               "Decision records for the phone, oldest first (secrets masked)")
    return _both(_op("Decision records of a phone (evidence)", "What was asked, what the CRM said, which row "
                     "(or check) decided, what was answered.", params, None, ok, op_id="decisions"))


def _plain(summary: str, ctype: str, op_id: str) -> dict[str, Any]:
    schema = {"type": "object"} if ctype == "application/json" else _STR
    return {"get": {"summary": summary, "operationId": op_id,
                    "responses": {"200": {"description": "OK", "content": {ctype: {"schema": schema}}},
                                  "503": {"$ref": "#/components/responses/Unavailable"}}}}


_DETAIL = {"type": "string", "description": "dupcheck's reason beside Convoso's text (not sent by Convoso)"}


def _components() -> dict[str, Any]:
    failure = {"type": "object", "required": ["success", "code", "text"], "properties": {
        "success": {"const": False}, "code": _INT, "text": _STR, "detail": _DETAIL}}
    insert = {"type": "object", "required": ["success"], "properties": {
        "success": {"type": "boolean"}, "code": _INT, "text": _STR, "detail": _DETAIL,
        "data": {"type": "object", "properties": {"lead_id": {"type": ["string", "null"]}}},
        "row": {"type": ["string", "null"], "description": "the rules-table row that decided (`row N (name)`), "
                                                           "or `check_dup` / `check_dnc`"},
        "crm_record_id": {"type": ["string", "null"]}, "existing_lead_id": _STR, "retryable": {"type": "boolean"}}}

    def page(entry: dict[str, Any], total: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": {"success": {"const": True}, "data": {
            "type": "object", "properties": {"offset": _INT, "limit": _INT, "total": total,
                                             "entries": {"type": "array", "items": entry}}}}}

    lead = {"type": "object", "additionalProperties": _STR, "properties": {
        k: _STR for k in ("id", "lead_id", "list_id", "status", "phone_code", "phone_number", "first_name",
                          "last_name", "email", "created_at", "modified_at")}}
    dnc = {"type": "object", "properties": {k: _STR for k in ("id", "phone_number", "phone_code", "campaign_id",
                                                             "campaign_name", "reason", "purpose", "insert_date")}}

    def resp(description: str) -> dict[str, Any]:
        return _json(_ref("Failure"), description)

    return {
        "schemas": {"Failure": failure, "InsertAnswer": insert, "Lead": lead, "DncEntry": dnc,
                    "LeadSearchAnswer": {"oneOf": [page(_ref("Lead"), _STR), _ref("Failure")]},
                    "DncSearchAnswer": {"oneOf": [page(_ref("DncEntry"), _INT), _ref("Failure")]}},
        "responses": {"BadRequest": resp("Unreadable body: bad JSON or UTF-8, nested values, bad header"),
                      "Unauthorized": resp("No auth_token"), "Forbidden": resp("auth_token not valid"),
                      "TooLarge": resp("Body over 1 MiB"), "UnsupportedType": resp("Unsupported Content-Type"),
                      "Unprocessable": resp("Idempotency-Key reused with other parameters"),
                      "Unavailable": resp("Store unavailable: retry")},
    }


@lru_cache(maxsize=1)
def openapi_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "dupcheck serve", "version": __version__,
                 "description": "Lead insert API compatible with Convoso's public API, with API Duplicate "
                                "Lead Check against the client's CRM."},
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/leads/insert": _insert(),
            "/v1/leads/search": _search("leads"),
            "/v1/dnc/insert": _dnc_insert(),
            "/v1/dnc/search": _search("dnc"),
            "/v1/decisions": _decisions(),
            "/healthz": _plain("Liveness: the store answers", "application/json", "healthz"),
            "/metrics": _plain("Prometheus metrics", "text/plain", "metrics"),
            "/openapi.json": _plain("This document", "application/json", "openapi"),
        },
        "components": _components(),
    }
