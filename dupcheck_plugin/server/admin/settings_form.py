"""Global Settings as a form (pure): the workflow's check settings <-> form cells.

Every cell is text in the browser. Key, name and text cells stay text; a
Value or Status cell is read as a TOML literal when it is one (``0``,
``true``, ``"0"``, ``[1, 2]``) and as plain text otherwise, so the
type-aware match keeps working and a status typed as ``5`` is reported by
the checker instead of silently becoming text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import tomlkit

from ...config.problems import Problem
from ...host import OPERATORS, answer_key_warnings, rule_warnings

# every key a rules row may have (schemas/api_duplicate_check.schema.json; a test keeps them in step)
ROW_CELLS = ("name", "key", "match", "value", "http_status", "create_lead", "status", "add_to_dnc", "success",
              "code", "text")
BOOL_CELLS = ("create_lead", "add_to_dnc", "success")
LITERAL_CELLS = ("value", "status")
ON_ERROR_ACTIONS = ("create", "reject")


@dataclass
class Row:
    orig: int | None  # index of this row in the file when the page was drawn; None: added
    cells: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)  # cell -> message; "" for the whole row
    warnings: dict[str, str] = field(default_factory=dict)  # the same, for what `dupcheck check` warns about


@dataclass
class SettingsForm:
    enabled: bool
    connect: str
    default_status: str
    duplicate_code: str  # a failed row's answer when the row sets no code/text; blank: the default
    duplicate_text: str
    on_error: dict[str, str]
    rows: list[Row]
    node: str = ""  # the api_duplicate_check node's id
    version: str = ""  # that node as the page was drawn from it (workflow_file.node_version)
    errors: dict[str, str] = field(default_factory=dict)  # field -> message
    general: list[str] = field(default_factory=list)  # problems that name no cell


def literal_text(value: Any) -> str:
    """A cell's text for a value: plain strings as they are unless they would read back as another type."""
    if value is None:
        return ""
    if value == "":
        return '""'  # an explicit empty string, not a cell left blank
    if isinstance(value, str):
        return value if parse_literal(value) == value else json.dumps(value)
    return tomlkit.item(value).as_string()


def parse_literal(text: str) -> Any:
    text = text.strip()
    try:
        value = tomlkit.parse(f"v = {text}")["v"]
        return value.unwrap() if hasattr(value, "unwrap") else value
    except Exception:  # noqa: BLE001 - anything that is not a TOML literal is text
        return text


def from_config(cfg: Mapping[str, Any], node: str = "", version: str = "") -> SettingsForm:
    rows = []
    for i, rule in enumerate(cfg.get("rules", [])):
        cells = {}
        for name in ROW_CELLS:
            v = rule.get(name)
            if name in BOOL_CELLS:
                cells[name] = "yes" if v else "no"
            elif name in LITERAL_CELLS:
                cells[name] = literal_text(v)
            elif name == "http_status":
                cells[name] = ", ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v))
            elif name == "match":
                cells[name] = v or "equals"
            elif name == "code":
                cells[name] = "" if v is None else str(v)
            else:
                cells[name] = "" if v is None else str(v)
        rows.append(Row(i, cells))
    on_error = cfg.get("on_error", {})
    return SettingsForm(
        enabled=bool(cfg.get("enabled", True)),
        connect=str(cfg.get("connect", "")),
        default_status=str(cfg.get("default_status", "NEW")),
        duplicate_code="" if cfg.get("duplicate_code") is None else str(cfg["duplicate_code"]),
        duplicate_text="" if cfg.get("duplicate_text") is None else str(cfg["duplicate_text"]),
        node=node, version=version,
        on_error={"action": str(on_error.get("action", "create")), "status": str(on_error.get("status", "NOTCHECKED")),
                  "success": "yes" if on_error.get("success", True) else "no",
                  "code": str(on_error.get("code", 6503)),
                  "text": str(on_error.get("text", "Duplicate check unavailable, retry later"))},
        rows=rows)


def from_post(form: Mapping[str, Any], getlist) -> SettingsForm:
    """The form as posted. Row cells come as repeated fields ``row_<cell>`` in page order."""
    columns = {name: getlist(f"row_{name}") for name in ("orig", *ROW_CELLS)}
    count = len(columns["orig"])
    rows = []
    for i in range(count):
        orig = columns["orig"][i]
        cells = {name: (columns[name][i] if i < len(columns[name]) else "") for name in ROW_CELLS}
        rows.append(Row(int(orig) if orig.isdigit() else None, cells))
    return SettingsForm(
        enabled=form.get("enabled") == "on",
        connect=form.get("connect", ""),
        default_status=form.get("default_status", ""),
        duplicate_code=form.get("duplicate_code", ""),
        duplicate_text=form.get("duplicate_text", ""),
        node=form.get("node", ""), version=form.get("version", ""),
        on_error={k: form.get(f"on_error_{k}", "") for k in ("action", "status", "success", "code", "text")},
        rows=rows)


def _int_or_text(text: str) -> Any:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def row_values(row: Row) -> dict[str, Any]:
    """One row's settings; a blank cell is a key left out (the default applies)."""
    c = row.cells
    out: dict[str, Any] = {}
    if c.get("name", "").strip():
        out["name"] = c["name"].strip()
    if c.get("key", "").strip():
        out["key"] = c["key"].strip()
    if c.get("match", "equals") != "equals":
        out["match"] = c["match"]
    if c.get("value", "").strip() or c.get("match") not in ("exists", "missing"):
        if c.get("value", "").strip():
            out["value"] = parse_literal(c["value"])
    hs = [p.strip() for p in c.get("http_status", "").split(",") if p.strip()]
    if hs:
        codes = [_int_or_text(p) for p in hs]
        out["http_status"] = codes[0] if len(codes) == 1 else codes
    for name in BOOL_CELLS:
        out[name] = c.get(name) == "yes"
    if c.get("status", "").strip():
        out["status"] = parse_literal(c["status"])
    if c.get("code", "").strip():
        out["code"] = _int_or_text(c["code"])  # text is kept: the checker says it is not an integer
    if c.get("text", "").strip():
        out["text"] = c["text"].strip()
    return out


def settings_values(form: SettingsForm) -> dict[str, Any]:
    """The check node's settings the form sets (rules apart)."""
    on_error: dict[str, Any] = {"action": form.on_error.get("action", "create")}
    if form.on_error.get("status", "").strip():
        on_error["status"] = form.on_error["status"].strip()
    on_error["success"] = form.on_error.get("success") != "no"
    if form.on_error.get("code", "").strip():
        on_error["code"] = _int_or_text(form.on_error["code"])
    if form.on_error.get("text", "").strip():
        on_error["text"] = form.on_error["text"].strip()
    return {"enabled": form.enabled, "connect": form.connect.strip(),
            "default_status": form.default_status.strip(),
            "duplicate_code": _int_or_text(form.duplicate_code) if form.duplicate_code.strip() else None,
            "duplicate_text": form.duplicate_text.strip() or None, "on_error": on_error}


def place_problems(form: SettingsForm, problems: Sequence[Problem], node_index: int) -> None:
    """Put each problem next to its cell; those of other parts of the file go to ``general``."""
    prefix = ("nodes", node_index, "config")
    for p in problems:
        path = tuple(p.path)
        if path[:3] != prefix:
            form.general.append(str(p))
            continue
        rest = path[3:]
        if rest[:1] == ("rules",) and len(rest) >= 2 and isinstance(rest[1], int) and rest[1] < len(form.rows):
            row = form.rows[rest[1]]
            cell = rest[2] if len(rest) > 2 and rest[2] in ROW_CELLS else ""
            row.errors.setdefault(cell, p.message)
        elif rest[:1] == ("on_error",):
            form.errors.setdefault(f"on_error_{rest[1]}" if len(rest) > 1 else "on_error_action", p.message)
        elif rest:
            form.errors.setdefault(str(rest[0]), p.message)
        else:
            form.general.append(p.message)


def place_warnings(form: SettingsForm, config: Mapping[str, Any],
                   answer_keys: tuple[str, frozenset[str]] | None = None) -> None:
    """The table's warnings (``dupcheck check``'s: a row that can never decide, a setting
    no row reads, a key a typo away from one of ``answer_keys``: (adaptor name, the answer
    keys it names)) next to their cells, for the form drawn from ``config`` (the file's node,
    or the rows of a refused Apply as typed). A table the file holds but the schema refuses
    gets none: the engine decides with the last valid one, and Apply shows the file's problems."""
    try:
        found = rule_warnings(config)
        if answer_keys is not None:
            found += [(path, f"{message} (did you mean {meant!r}?)", code)
                      for path, message, code, meant in answer_key_warnings(config, answer_keys[1], answer_keys[0])]
    except (KeyError, TypeError, ValueError, AttributeError):  # not a valid table (edited by hand)
        return
    found.sort(key=lambda warning: warning[0][1])  # in table order
    for path, message, _code in found:
        index = path[1]
        if index < len(form.rows):
            form.rows[index].warnings.setdefault(path[2] if len(path) > 2 else "", message)


def operators() -> tuple[str, ...]:
    return tuple(OPERATORS)
