"""``dupcheck check``'s logic: tell each TOML file's kind, run every check on it.

Reads the files it is given and returns one :class:`FileResult` per file;
printing is :mod:`.report`'s job. A problem makes a file invalid; a warning
(a missing ``#:schema`` line, say) is advice and never changes the outcome.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import urlsplit

from ..adaptor.targets import local_target, origin_problem
from ..convoso_fields import LEAD_FIELDS
from ..errors import DupcheckError
from ..plugins import Registry
from ..resources import shipped_dir
from ..rules.paths import odd_segment
from .adaptors import compile_adaptor
from .kinds import KIND_BY_FOLDER, SCHEMA_BY_KIND, basename, kind_of, schema_target
from .problems import ConfigError, Problem
from .suggest import did_you_mean
from .toml import MAX_CONFIG_BYTES, parse_toml, read_config_text, too_large

if TYPE_CHECKING:
    from ..engine.workflow import AdaptorResolver


class PathError(DupcheckError, ValueError):
    """A path to check does not exist or holds nothing to check (a usage error)."""


@dataclass
class FileResult:
    file: str
    kind: str | None  # adaptor | workflow | None when it cannot be told
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    text: str = field(default="", repr=False)  # what was checked, for excerpts

    def excerpt(self, problem: Problem) -> list[str]:
        """The problem's line with a caret under the offending key or value, as compilers show it."""
        lines = self.text.split("\n")
        if problem.line is None or not 0 < problem.line <= len(lines):
            return []
        number = str(problem.line)
        source = lines[problem.line - 1].rstrip("\r")
        if problem.secret:
            source = _masked(source, problem.column - 1)
        return [f"  {number} | {source}",
                f"  {' ' * len(number)} | {' ' * (problem.column - 1)}{'^' * max(problem.width, 1)}"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "kind": self.kind, "ok": self.ok,
                "problems": [p.as_json() for p in self.problems],
                "warnings": [w.as_json() for w in self.warnings]}


def _masked(line: str, at: int) -> str:
    """``line`` with the quoted string that starts at ``at`` starred out (quotes kept)."""
    quote = line[at:at + 1]
    if quote not in ("'", '"'):
        return line
    end = line.find(quote, at + 1)
    end = len(line) if end < 0 else end
    return line[:at + 1] + "*" * (end - at - 1) + line[end:]


def default_paths() -> list[Path]:
    return [shipped_dir("adaptors"), shipped_dir("workflows")]


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders as every ``*.toml`` below them, sorted. Raises PathError."""
    out: dict[Path, Path] = {}  # resolved -> as given: a file named twice is checked once
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.toml") if q.is_file() and not _hidden(q.relative_to(p)))
            if not found:
                raise PathError(f"{p}: no *.toml files in this folder")
        elif p.is_file():
            found = [p]
        else:
            raise PathError(f"{p}: no such file or folder")
        for q in found:
            out.setdefault(q.resolve(), q)
    return list(out.values())


def _hidden(rel: Path) -> bool:
    # `dupcheck check .` must not wander into .venv or .git
    return any(part.startswith(".") for part in rel.parts[:-1])


def check_paths(paths: Iterable[str | os.PathLike], registry: Registry) -> list[FileResult]:
    """Check every file named or found below ``paths``; raises PathError first, before any check."""
    files = expand_paths(paths)
    resolvers: dict[Path, AdaptorResolver] = {}  # one per folder: an adaptor is compiled once
    return [check_file(f, registry, resolvers) for f in files]


def check_file(path: Path, registry: Registry, resolvers: dict[Path, AdaptorResolver] | None = None) -> FileResult:
    name = display_name(path)
    try:
        text = read_config_text(path, name)
    except ConfigError as exc:
        return FileResult(name, KIND_BY_FOLDER.get(path.resolve().parent.name), exc.problems)
    return check_source(text, path, registry, resolvers, name)


def check_source(text: str, path: Path, registry: Registry, resolvers: dict[Path, AdaptorResolver] | None = None,
                 name: str | None = None) -> FileResult:
    """Check ``text`` as the content of the file at ``path`` (which need not
    exist: its folder is where a workflow's adaptors are looked for). Every
    problem is placed at its line and column. Never raises."""
    result = FileResult(name or display_name(path), None, text=text)
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_CONFIG_BYTES:  # as read_config_text refuses a file
        result.kind = KIND_BY_FOLDER.get(path.resolve().parent.name)
        result.problems.append(too_large(result.file, size))
        return result
    try:
        _check(text, path, registry, {} if resolvers is None else resolvers, result)
    except Exception as exc:  # a checker bug on one file must not hide the other files' results
        result.problems.append(Problem(result.file, (), f"internal error while checking this file: {type(exc).__name__}: {exc}", "internal_error"))
    result.problems = place(result.problems, result.file, text)
    result.warnings = place(result.warnings, result.file, text)
    return result


def place(problems: list[Problem], file: str, text: str) -> list[Problem]:
    """Each problem of ``file`` with the line and column of its key or value."""
    if all(p.line is not None or p.file != file for p in problems):
        return problems
    from .positions import Positions  # tree-sitter: loaded only when there is a problem to place

    positions = Positions(text)
    out = []
    for p in problems:
        span = positions.locate(p.path, key=p.at_key, needle=p.token) if p.line is None and p.file == file else None
        if span is not None:
            width = len(span.text.split("\n", 1)[0].rstrip())
            p = replace(p, line=span.line, column=span.column, width=max(1, min(width, 60)))
        out.append(p)
    return out


def display_name(path: Path) -> str:
    """Relative to the working directory when below it (abspath: a symlink keeps its own name)."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _check(text: str, path: Path, registry: Registry, resolvers: dict[Path, AdaptorResolver], result: FileResult) -> None:
    name = result.file
    try:
        doc = parse_toml(text, name)
    except ConfigError as exc:
        doc = None
        result.problems += exc.problems
    target = schema_target(text)
    result.kind = kind_of(path, text, doc)
    result.warnings += _directive_warnings(path, name, result.kind, target)
    if doc is None:
        return
    if result.kind is None:
        result.problems.append(Problem(name, (), (
            "not recognisably an adaptor or a workflow (no '#:schema' line, no [request] table, "
            "no [[nodes]], not in an adaptors/ or workflows/ folder): if it is one, make its first line "
            f"'#:schema {schema_ref(path, 'adaptor')}' or the same with workflow.schema.json"), "unknown_kind"))
    elif result.kind == "adaptor":
        _check_adaptor(doc, registry, result)
    else:
        # loaded for a workflow only: checking an adaptor is a cold start too
        from ..engine.workflow import AdaptorResolver, check_workflow

        base = path.resolve().parent
        resolver = resolvers.setdefault(base, AdaptorResolver(base, registry.filters))
        problems = check_workflow(doc, name, base, registry, resolver)[1]
        result.problems += problems
        if not problems:  # auth and rows are read only from a valid workflow: one mistake, one problem
            _auth_findings(doc, result)
            _rule_warnings(doc, result)
            _rule_key_warnings(doc, result, resolver)
            _connection_warnings(doc, result, resolver)


def _auth_findings(doc: Mapping[str, Any], result: FileResult) -> None:
    """A connection's auth secret as this environment has it (a bare key for Basic
    auth would be a 401 at the CRM; a missing one fails run and serve)."""
    from ..nodes.connect_check import auth_findings

    nodes = doc.get("nodes") if isinstance(doc.get("nodes"), list) else []
    for i, node in enumerate(nodes):
        if not isinstance(node, Mapping) or node.get("type") != "convoso_connect" \
                or not isinstance(node.get("config"), Mapping):
            continue
        for path, message, code, is_problem in auth_findings(node["config"], os.environ):
            found = Problem(result.file, ("nodes", i, "config") + path, message, code,
                            secret=code == "secret_not_a_name")
            (result.problems if is_problem else result.warnings).append(found)


def _rule_warnings(doc: Mapping[str, Any], result: FileResult) -> None:
    """A rules row that can never decide, a setting a row never reads: warnings at their place."""
    from ..rules.advice import on_error_warnings, rule_warnings

    for i, node in enumerate(doc.get("nodes") or []):
        if isinstance(node, Mapping) and node.get("type") == "api_duplicate_check":
            config = node.get("config") or {}
            for path, message, code in rule_warnings(config) + on_error_warnings(config):
                result.warnings.append(Problem(result.file, ("nodes", i, "config") + path, message, code))


def _rule_key_warnings(doc: Mapping[str, Any], result: FileResult, resolver: AdaptorResolver) -> None:
    """A rules key a typo away from an answer key the connection's adaptor names
    (rules/advice.py's answer_key_warnings)."""
    from ..rules.advice import answer_key_warnings

    nodes = {n.get("id"): n for n in doc.get("nodes") or [] if isinstance(n, Mapping)}
    for i, node in enumerate(doc.get("nodes") or []):
        if not isinstance(node, Mapping) or node.get("type") != "api_duplicate_check":
            continue
        config = node.get("config") or {}
        connection = (nodes.get(config.get("connect")) or {}).get("config") or {}
        if connection.get("response_key") or not isinstance(connection.get("adaptor"), str):
            continue  # the rules read a part of the answer the adaptor does not describe
        adaptor = resolver.resolve(connection["adaptor"])[0]
        if adaptor is None:
            continue
        for path, message, code, meant in answer_key_warnings(config, adaptor.answer_keys, adaptor.name):
            result.warnings.append(Problem(result.file, ("nodes", i, "config") + path, message, code, suggestion=meant))


# a timeout longer than this is most likely milliseconds written where seconds are read
_LONGEST_TIMEOUT_S = 120


def _connection_warnings(doc: Mapping[str, Any], result: FileResult, resolver: AdaptorResolver) -> None:
    """Connection settings the run would not follow as they read: a timeout in
    milliseconds (``timeout = 10000``: read as seconds); ``batch = { max_leads = N }``
    when the adaptor has no ``[batch]``, or N is over the adaptor's cap (the CRM's own limit)."""
    for i, node in enumerate(doc.get("nodes") or []):
        if not isinstance(node, Mapping) or node.get("type") != "convoso_connect":
            continue
        config = node.get("config") or {}
        headers = config.get("headers")
        for name, value in (headers.items() if isinstance(headers, Mapping) else ()):
            where = ("nodes", i, "config", "headers", name)
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                result.warnings.append(Problem(result.file, where, (
                    "a connection's headers are sent as written, not rendered: this one goes out with its braces "
                    "(a secret: the connection's auth table, auth = { type = \"header\", name = ..., secret = "
                    "\"ENV_NAME\" })"), "header_not_rendered"))
            elif _looks_like_inline_secret(name, value):
                result.warnings.append(Problem(result.file, where, (
                    f"{name} is written out in the file: a credential here is sent as written and shown unmasked by "
                    "render and the decision records; give the connection an auth table instead (auth = { type = "
                    "\"header\", name = ..., secret = \"ENV_NAME\" }, the value in that environment variable)"),
                    "inline_secret"))
        url = config.get("url")
        if isinstance(url, str):
            bad_origin = origin_problem(url)
            if bad_origin:
                result.problems.append(Problem(result.file, ("nodes", i, "config", "url"), bad_origin, "bad_url"))
            elif (parts := urlsplit(url)).path.strip("/") or parts.query or parts.fragment:
                result.warnings.append(Problem(result.file, ("nodes", i, "config", "url"), (
                    "only the scheme, host and port of this url are used: its path and query are not sent "
                    "(the adaptor's request.url says the path)"), "url_path_ignored"))
        for key in ("timeout", "connect_timeout"):
            seconds = config.get(key)
            if isinstance(seconds, (int, float)) and seconds > _LONGEST_TIMEOUT_S:
                result.warnings.append(Problem(result.file, ("nodes", i, "config", key), (
                    f"{key} is in seconds: {seconds:g} s is {seconds / 60:.0f} minutes a CRM call may hang (and a "
                    f"lead with it); a CRM answers within seconds ({seconds:g} ms would be {key} = "
                    f"{seconds / 1000:g})"), "long_timeout"))
        batch = config.get("batch")
        if not isinstance(batch, Mapping) or not isinstance(config.get("adaptor"), str):
            continue
        adaptor = resolver.resolve(config["adaptor"])[0]
        if adaptor is None:
            continue
        at = ("nodes", i, "config", "batch")
        if adaptor.batch is None:
            result.warnings.append(Problem(result.file, at, (
                f"adaptor {config['adaptor']} has no [batch] request: each lead is asked alone and this "
                "setting is not used"), "batch_unused"))
        elif batch.get("max_leads", 0) > adaptor.batch.max_leads:
            result.warnings.append(Problem(result.file, at + ("max_leads",), (
                f"adaptor {config['adaptor']} sends at most {adaptor.batch.max_leads} leads a request "
                f"(its [batch] max_leads, the CRM's limit): a batch holds {adaptor.batch.max_leads}, "
                f"not {batch['max_leads']}"), "batch_capped"))


def _check_adaptor(doc: Mapping[str, Any], registry: Registry, result: FileResult) -> None:
    adaptor, problems = compile_adaptor(doc, result.file, registry.filters, check=True)
    result.problems += problems
    if adaptor is not None and adaptor.batch is not None:
        for path, variables in adaptor.batch.from_first_lead(adaptor.request.leaves):
            part = {"url": "URL", "headers": "headers", "query": "query", "body": "body"}[path[0]]
            result.warnings.append(Problem(result.file, ("request",) + path, (
                f"this reads the lead ({', '.join(sorted(variables))}), but a batch is sent with its first "
                f"lead's {part}: the other leads' values are not sent. Read lead values in [batch] "
                "(its query or body), or set batch = false on the connection"), "batch_first_lead"))
    for lead_field in doc.get("fields") or {}:
        meant = None if lead_field in LEAD_FIELDS else did_you_mean(lead_field, LEAD_FIELDS)
        if meant is not None:  # a custom field of the account's layout may have any other name
            result.warnings.append(Problem(result.file, ("fields", lead_field), (
                f"{lead_field!r} is not one of Convoso's lead fields: unless the account's layout has a custom "
                "field of that name, it is empty for every lead"), "unknown_lead_field",
                suggestion=meant, at_key=True))
    for name in sorted(adaptor.secret_names if adaptor is not None else ()):
        meant = None if os.environ.get(name) or os.environ.get(f"{name}_FILE") else did_you_mean(name, os.environ)
        if meant is not None:  # unset is normal where check runs (CI); a near miss that is set is a typo
            result.warnings.append(Problem(result.file, ("request",), (
                f"secrets.{name} is not set in this environment, {meant} is: every run would stop for the missing "
                f"secret"), "unknown_secret", suggestion=meant))
    if adaptor is not None:
        result.warnings += _request_warnings(adaptor, result.file)
    # only of an adaptor that compiled: a URL the schema refuses (or none) is reported once, there
    bad_origin = origin_problem(str(doc["request"]["url"])) if adaptor is not None else None
    if bad_origin:
        result.problems.append(Problem(result.file, ("request", "url"), bad_origin, "bad_url"))
    local = local_target(str((doc.get("request") or {}).get("url", "")))
    if local and not doc.get("allow_local_network"):
        result.warnings.append(Problem(result.file, ("request", "url"), (
            f"the URL's host is a {local} address: a CRM is never there, a cloud metadata service or this "
            "machine is; set allow_local_network = true if that is really meant"), "local_target"))
    if adaptor is not None and adaptor.request.origin is None:
        # the render-time origin guard only works for a literal scheme://host
        result.warnings.append(Problem(result.file, ("request", "url"), (
            "the URL's scheme or host is a template, so dupcheck cannot stop a lead value from "
            "sending the request (and its secrets) to another host: write the host literally"), "dynamic_origin"))


# what a body_format sends: a fixed Content-Type header (the adaptor's wins) should say as much
_BODY_TYPES = {"json": ("json", "application/json"),
               "form": ("x-www-form-urlencoded", "application/x-www-form-urlencoded")}


# header and query names that carry a credential (compared lower-case, without - and _)
_CREDENTIAL_NAMES = frozenset({"authorization", "proxyauthorization", "xapikey", "apikey", "xapitoken", "apitoken",
                               "xauthtoken", "authtoken", "token", "accesstoken", "xaccesstoken", "key", "secret",
                               "clientsecret", "password", "xapisecret", "apisecret"})


def _looks_like_inline_secret(name: str, value: Any) -> bool:
    """A credential header or query parameter given a literal value (no template)."""
    if not isinstance(value, str) or "{{" in value or "{%" in value:
        return False
    if name.replace("-", "").replace("_", "").lower() not in _CREDENTIAL_NAMES:
        return False
    credential = value.split()[-1] if value.split() else ""
    return len(credential) >= 8  # a scheme word alone, or a short placeholder, is no secret


def _request_warnings(adaptor: Any, file: str) -> list[Problem]:
    """What a compiled adaptor sends that the CRM will not read as meant: a ``record_id``
    path no answer has, a GET or DELETE with a body, a Content-Type the body is not."""
    out = []
    ids = adaptor.record_id
    for j, path in enumerate(ids if isinstance(ids, list) else [ids]):
        odd = odd_segment(path)
        if odd is not None:
            out.append(Problem(file, ("record_id",) + ((j,) if isinstance(ids, list) else ()), (
                f"{odd} in this path: a CRM's answer hardly has such a key, so no record id is found "
                "(write the answer's keys as they are, dot-separated)"), "odd_record_id"))
    request = adaptor.request
    if request.body_format in _BODY_TYPES:
        word, full = _BODY_TYPES[request.body_format]
        for name, value in (request.spec.get("headers") or {}).items():
            if name.lower() == "content-type" and isinstance(value, str) and "{" not in value \
                    and word not in value.lower():
                out.append(Problem(file, ("request", "headers", name), (
                    f"Content-Type {value!r}, but the body is sent as {request.body_format} ({full}): the CRM "
                    f"reads the body by this header and may refuse it or read it wrong (leave the header out: "
                    f"dupcheck sends {full})"), "content_type_mismatch"))
    for part in ("headers", "query"):
        for name, value in (request.spec.get(part) or {}).items():
            if _looks_like_inline_secret(name, value):
                out.append(Problem(file, ("request", part, name), (
                    f"{name} is written out in the file: a credential here is sent as written and shown "
                    "unmasked by render, decision records and logs; put it in an environment variable and "
                    "write '{{ secrets.NAME }}' (or give the connection an auth table)"), "inline_secret"))
    if request.method in ("GET", "DELETE") and request.spec.get("body") is not None:
        out.append(Problem(file, ("request", "body"), (
            f"a {request.method} request with a body: many servers and proxies ignore such a body or "
            "refuse the request, so the CRM may not search on these values (put them in [request.query], "
            "or use the CRM's POST search)"), "body_ignored"))
    return out


def schema_ref(path: Path, kind: str) -> str:
    """The shipped schema's path relative to ``path``'s folder, as a ``#:schema`` line wants it."""
    schema = shipped_dir("schemas") / SCHEMA_BY_KIND[kind]
    try:
        return Path(os.path.relpath(schema, path.resolve().parent)).as_posix()
    except ValueError:  # another drive (Windows)
        return schema.as_posix()


def _directive_warnings(path: Path, name: str, kind: str | None, target: str | None) -> list[Problem]:
    """Editors (taplo, Even Better TOML) complete and check a file by its ``#:schema`` line."""
    if kind is None:
        return []
    expected = SCHEMA_BY_KIND[kind]
    fix = f"'#:schema {schema_ref(path, kind)}'"
    if target is None:
        message = f"first line should be {fix} so that editors complete and check this {kind}"
    elif basename(target) != expected:
        message = f"'#:schema {target}' does not name {expected}: make the first line {fix}"
    elif "://" not in target and not (path.resolve().parent / target).is_file():
        message = f"'#:schema {target}' does not lead to a file from this folder: make the first line {fix}"
    else:
        return []
    if shipped_dir("schemas").parent.name == "_shipped":  # a pip install: that path moves with every environment
        message += (f", or run `dupcheck schemas export DIR` once and make it '#:schema DIR/{expected}' "
                    "(a path that stays)")
    return [Problem(name, (), message, "schema_directive", line=1, column=1)]
