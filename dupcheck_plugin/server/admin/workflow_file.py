"""The workflow file as the console edits it: round-trip TOML, atomic writes, diffs.

tomlkit keeps what a person wrote: comments, key order, inline tables.
Only the keys the form changed are touched; a rules row keeps the comment
lines above it when rows move or go.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import fields
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import tomlkit
from tomlkit.items import Array, Comment, InlineTable, Table

from ...host import DupcheckError, OnError, codes

CHECK_NODE_TYPE = "api_duplicate_check"
SETTING_DEFAULTS = {"enabled": True, "default_status": "NEW", "duplicate_code": codes.DUPLICATE.code,
                    "duplicate_text": codes.DUPLICATE.text}
ON_ERROR_DEFAULTS = {f.name: f.default for f in fields(OnError)}
CONNECT_NODE_TYPE = "convoso_connect"


class NodeChanged(DupcheckError, ValueError):
    """The node an edit was drawn from is no longer as it was (another Apply, a hand edit)."""


def check_node_ids(doc: Mapping[str, Any]) -> list[str]:
    """The ids of the api_duplicate_check nodes, in file order (the console edits any of them)."""
    return [str(node.get("id", "")) for node in doc.get("nodes", [])
            if isinstance(node, Mapping) and node.get("type") == CHECK_NODE_TYPE]


def check_node_index(doc: Mapping[str, Any], node_id: str | None = None) -> int | None:
    """Index in ``nodes`` of the api_duplicate_check node ``node_id`` (None: the first one)."""
    for i, node in enumerate(doc.get("nodes", [])):
        if isinstance(node, Mapping) and node.get("type") == CHECK_NODE_TYPE and \
                (node_id is None or str(node.get("id", "")) == node_id):
            return i
    return None


def node_version(doc: Mapping[str, Any], index: int) -> str:
    """A digest of one node as the file holds it: an Apply drawn from another version is refused."""
    node = _plain(doc["nodes"][index])
    return hashlib.sha256(json.dumps(node, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _set(table: Table | InlineTable, key: str, value: Any, defaults: Mapping[str, Any] = {}) -> None:
    """Set ``key`` only when its value changes, so an unchanged line keeps its spelling;
    a key the file leaves out stays out while the value is its default."""
    if key in table and _plain(table[key]) == value:
        return
    if key not in table and key in defaults and defaults[key] == value:
        return
    table[key] = value


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _update_table(table: Table | InlineTable, values: Mapping[str, Any], owned: Sequence[str],
                  defaults: Mapping[str, Any] = {}) -> None:
    """Keys in ``owned`` are the form's: set from ``values`` or removed when absent."""
    for key in owned:
        if key in values:
            _set(table, key, values[key], defaults)
        elif key in table:
            del table[key]


def _leading_comments(array: Array) -> list[list[str]]:
    """For each value of a multi-line array, the comment lines just above it.
    Reads tomlkit's item groups (pinned version); an unexpected shape gives no comments."""
    out: list[list[str]] = []
    pending: list[str] = []
    for group in getattr(array, "_value", []):
        parts = list(group) if isinstance(group, tuple) or hasattr(group, "__iter__") else []
        value = next((p for p in parts if not isinstance(p, (Comment,)) and type(p).__name__ not in
                      ("Whitespace", "Null")), None)
        comment = next((p for p in parts if isinstance(p, Comment)), None)
        if value is None:
            if comment is not None:
                pending.append(comment.as_string().strip())
            continue
        out.append(pending)
        pending = []
    return out if len(out) == len(array) else [[] for _ in array]


def _rebuild_rules(old: Array | None, rows: Sequence[tuple[int | None, Mapping[str, Any]]],
                   owned: Sequence[str]) -> Array:
    comments = _leading_comments(old) if old is not None else []
    new = tomlkit.array()
    for orig, values in rows:
        if old is not None and orig is not None and 0 <= orig < len(old) and isinstance(old[orig], InlineTable):
            table = old[orig]
            _update_table(table, values, owned)
            for line in comments[orig]:
                new.add_line(comment=line.lstrip("#").strip(), indent="  ")
        else:
            table = tomlkit.inline_table()
            table.update(values)
        new.add_line(table, indent="  ")
    new.add_line(indent="")
    return new


def edit_check_settings(text: str, settings: Mapping[str, Any],
                        rows: Sequence[tuple[int | None, Mapping[str, Any]]], owned_cells: Sequence[str],
                        node_id: str | None = None, version: str | None = None) -> str:
    """The file's text with one check node's settings and rules replaced, and
    nothing else. ``rows`` are ``(index in the file or None for a new row,
    values)`` in their new order; ``version`` (:func:`node_version`) is the
    node the form was drawn from: raises NodeChanged when it is not the node
    now in the file, since ``rows``' indexes would point at other rows."""
    doc = tomlkit.parse(text)
    index = check_node_index(doc, node_id)
    if index is None:
        raise NodeChanged(f"the workflow has no {CHECK_NODE_TYPE} node" + (f" {node_id!r}" if node_id else ""))
    if version is not None and node_version(doc, index) != version:
        raise NodeChanged(f"node {node_id or doc['nodes'][index].get('id')!r} was changed since this page was "
                          "drawn (another Apply or an edit of the file)")
    node = doc["nodes"][index]
    if "config" not in node:
        node["config"] = tomlkit.table()
    cfg = node["config"]
    for key in ("enabled", "connect", "default_status", "duplicate_code", "duplicate_text"):
        if key not in settings:
            continue
        if settings[key] is None:  # a cell left blank: the default applies
            if key in cfg:
                del cfg[key]
        else:
            _set(cfg, key, settings[key], SETTING_DEFAULTS)
    on_error = settings["on_error"]
    if isinstance(cfg.get("on_error"), (Table, InlineTable)):
        _update_table(cfg["on_error"], on_error, tuple(ON_ERROR_DEFAULTS), ON_ERROR_DEFAULTS)
    elif any(ON_ERROR_DEFAULTS[k] != v for k, v in on_error.items()):
        table = tomlkit.inline_table()
        table.update({k: v for k, v in on_error.items() if ON_ERROR_DEFAULTS[k] != v or k == "action"})
        cfg["on_error"] = table
    old = cfg.get("rules")
    old_plain = _plain(old) if old is not None else []
    new_plain = [dict(v) for _, v in rows]
    unchanged = [o for o, _ in rows] == list(range(len(old_plain))) and all(
        {**{k: x for k, x in o.items() if k not in owned_cells}, **n} == o for o, n in zip(old_plain, new_plain))
    if not unchanged:
        cfg["rules"] = _rebuild_rules(old if isinstance(old, Array) else None, rows, owned_cells)
    return tomlkit.dumps(doc)


def unified_diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{name}", tofile=f"b/{name}"))


@contextmanager
def staged(path: Path, text: str) -> Iterator[Path]:
    """A file next to ``path`` holding ``text``: check it, then :func:`commit` it.
    Next to the workflow so that adaptors resolve as they will for the real file;
    removed unless committed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".toml.staged", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        yield tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)


def commit(staged_path: Path, path: Path) -> None:
    """Atomically put the staged file in place (a reader sees the old or the new file, never half)."""
    try:
        os.chmod(staged_path, os.stat(path).st_mode & 0o7777)
    except OSError:
        pass  # keep mkstemp's 0600 rather than fail
    os.replace(staged_path, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
