"""Compile an adaptor's request templates once; render them per lead (pure).

The request (URL, headers, query, body) is kept as data whose *string
leaves* are Jinja templates, rendered and then serialised: a lead value such
as ``Robert", "x": "y`` or ``{{ 7*7 }}`` is only ever a value, never template
source and never JSON syntax. Values stay strings (``"0042"`` stays
``"0042"``); non-string leaves (numbers, booleans) pass through untouched.

Speed: a sandboxed ``Template.render`` costs ~20 us of set-up per call, so
all of an adaptor's dynamic leaves are compiled into *one* template, one
``{% block %}`` per leaf, and rendered with one context per lead. Leaves that
use no lead variable (an ``Authorization`` header made of a secret) are
rendered once, when the secrets are bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.defaults import DEFAULT_FILTERS, DEFAULT_TESTS
from jinja2.exceptions import SecurityError, UndefinedError

from ..config.suggest import did_you_mean
from ..errors import DupcheckError
from .sandbox import BudgetedEnvironment, TemplateCostError, bounded_join, budget_of, instrument

MASK = "****"
SECTIONS = ("url", "headers", "query", "body")
WHEN = "$when"  # a body object with this key is dropped when it renders empty

Path = tuple[str | int, ...]


MAX_LEAVES = 2000  # string leaves in one request: real ones have tens
MAX_ERROR_CHARS = 300  # a render error quotes the offending value: a 1 MB value must not reach stderr whole


class RenderError(DupcheckError, ValueError):
    """A lead could not be rendered into a request (bad value, missing variable,
    over the render budget). ``path`` is the leaf's path in the request."""

    def __init__(self, reason: str, path: "Path | None" = None):
        self.reason = cut(reason)
        self.path = path
        super().__init__(f"{_dotted(path)}: {self.reason}" if path is not None else self.reason)


def cut(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` shortened to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


@dataclass(frozen=True)
class TemplateProblem:
    path: Path
    message: str
    code: str
    line: int | None = None
    token: str | None = None  # the offending name, to point at inside the template
    suggestion: str | None = None


def make_environment(filters: Mapping[str, Callable[..., Any]]) -> BudgetedEnvironment:
    env = BudgetedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.add_filters(filters)
    return env


# A leaf is rendered on its own: nothing in it may reach another leaf (``self.leaf1()`` would
# render the Authorization header into a body field) or recurse (macros, recursive loops).
_FORBIDDEN_TAGS = (nodes.Block, nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport,
                   nodes.Macro, nodes.CallBlock)
_FORBIDDEN_NAMES = frozenset({"self", "super", "caller", "varargs", "kwargs"})


def _sandbox_problem(ast: nodes.Template) -> str | None:
    if any(True for _ in ast.find_all(_FORBIDDEN_TAGS)):
        return "block, extends, include, import, macro and call tags are not allowed in request templates"
    if any(loop.recursive for loop in ast.find_all(nodes.For)):
        return "recursive loops are not allowed in request templates"
    names = sorted({n.name for n in ast.find_all(nodes.Name) if n.name in _FORBIDDEN_NAMES})
    if names:
        return f"{', '.join(names)} cannot be used in a request template: a leaf sees only the lead and its own secrets"
    return None


@dataclass(frozen=True)
class Leaf:
    path: Path
    source: str
    variables: frozenset[str]
    secrets: frozenset[str]


def _secret_refs(ast: nodes.Template) -> tuple[set[str], bool]:
    """Names used as ``secrets.NAME`` / ``secrets['NAME']``; and whether
    ``secrets`` is used any other way (which we refuse: it would expose all)."""
    names: set[str] = set()
    direct = 0
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "secrets":
            names.add(node.attr)
            direct += 1
    for node in ast.find_all(nodes.Getitem):
        if isinstance(node.node, nodes.Name) and node.node.name == "secrets" and isinstance(node.arg, nodes.Const):
            names.add(str(node.arg.value))
            direct += 1
    total = sum(1 for n in ast.find_all(nodes.Name) if n.name == "secrets")
    return names, total > direct


def _field_refs(ast: nodes.Template) -> set[str]:
    """Constant names read through the ``fields`` namespace."""
    names = set()
    for node in ast.find_all(nodes.Getitem):
        if isinstance(node.node, nodes.Name) and node.node.name == "fields" and isinstance(node.arg, nodes.Const):
            names.add(str(node.arg.value))
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "fields":
            names.add(node.attr)
    return names


def _unsupported(env: BudgetedEnvironment, ast: nodes.Template, source: str, path: Path) -> list[TemplateProblem]:
    """What would fail when the template is compiled or rendered, found before:
    filters and tests that do not exist (Jinja checks their names only when
    compiling, with an error that names no leaf) and attributes the sandbox refuses."""
    out = []
    for node in ast.find_all(nodes.Filter):
        if node.name not in env.filters:
            public = [f for f in env.filters if not f.startswith("_")]
            out.append(TemplateProblem(path, f"unknown filter {node.name!r} ({_known(env.filters, DEFAULT_FILTERS)})",
                                       "unknown_filter", token=node.name, suggestion=did_you_mean(node.name, public)))
    for node in ast.find_all(nodes.Test):
        if node.name not in env.tests:
            out.append(TemplateProblem(path, f"unknown test {node.name!r} ({_known(env.tests, DEFAULT_TESTS)})",
                                       "unknown_test", token=node.name, suggestion=did_you_mean(node.name, env.tests)))
    private = [n.attr for n in ast.find_all(nodes.Getattr) if n.attr.startswith("_")]
    private += [str(n.arg.value) for n in ast.find_all(nodes.Getitem)
                if isinstance(n.arg, nodes.Const) and str(n.arg.value).startswith("_")]
    if private:  # one construct often names several: report the first
        private.sort(key=source.find)
        out.append(TemplateProblem(path, f"attribute {private[0]!r} is not allowed in the template sandbox",
                                   "sandbox", token=private[0]))
    return out


def _compile_problem(env: BudgetedEnvironment, leaves: Mapping[Path, "Leaf"], exc: TemplateError) -> TemplateProblem:
    """The leaf whose compilation fails (each is compiled alone only when the whole fails)."""
    for path, leaf in leaves.items():
        try:
            env.compile(env.parse(leaf.source))
        except TemplateError as leaf_exc:
            return TemplateProblem(("request",) + path, f"Jinja error: {leaf_exc}", "jinja_compile")
    return TemplateProblem(("request",), f"Jinja error: {exc}", "jinja_compile")


def _known(names, builtin) -> str:
    ours = sorted(n for n in set(names) - set(builtin) if not n.startswith("_"))  # "_...": the sandbox's own
    return f"dupcheck's: {', '.join(ours)}; and Jinja's built-in ones" if ours else "only Jinja's built-in ones"


def _bad_whens(value: Any, path: Path) -> Iterator[Path]:
    """Paths of ``$when`` keys whose value is not a string."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == WHEN and not isinstance(v, str):
                yield path + (k,)
            else:
                yield from _bad_whens(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _bad_whens(v, path + (i,))


def _walk(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, path + (i,))


@dataclass
class RequestTemplate:
    """The compiled request of one adaptor."""

    method: str
    spec: dict[str, Any]  # {"url": str, "headers": {...}, "query": {...}, "body": ...}
    body_format: str  # json | form | none
    leaves: dict[Path, Leaf]
    env: BudgetedEnvironment
    origin: str | None  # scheme://host[:port] when the URL's origin is static
    omit_empty_query: frozenset[str] = frozenset()
    _combined: Any = None
    _block_names: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def compile(cls, env: BudgetedEnvironment, request: Mapping[str, Any],
                allowed_vars: set[str]) -> tuple["RequestTemplate | None", list[TemplateProblem]]:
        spec = {
            "url": request.get("url", ""),
            "headers": dict(request.get("headers", {})),
            "query": dict(request.get("query", {})),
            "body": request.get("body"),
        }
        problems: list[TemplateProblem] = []
        leaves: dict[Path, Leaf] = {}
        count = sum(1 for _ in _walk(spec, ()))
        if count > MAX_LEAVES:
            return None, [TemplateProblem(("request",), f"{count} template leaves; a request may have at most "
                                                        f"{MAX_LEAVES}", "too_many_leaves")]
        for path, source in _walk(spec, ()):
            try:
                ast = env.parse(source)
            except TemplateSyntaxError as exc:
                # in a multi-line template, the offending line's text lets the checker point at its line in the file
                lines = source.split("\n")
                token = lines[exc.lineno - 1].strip() or None if 1 < (exc.lineno or 0) <= len(lines) else None
                problems.append(TemplateProblem(("request",) + path, f"Jinja syntax error at line {exc.lineno}: {exc.message}",
                                                "jinja_syntax", exc.lineno, token=token))
                continue
            refused = _sandbox_problem(ast)
            if refused:
                problems.append(TemplateProblem(("request",) + path, refused, "jinja_tag"))
                continue
            unsupported = _unsupported(env, ast, source, ("request",) + path)
            if unsupported:
                problems += unsupported
                continue
            variables = meta.find_undeclared_variables(ast)
            secrets, whole = _secret_refs(ast)
            for name in sorted(_field_refs(ast) - allowed_vars):
                suggestion = did_you_mean(name, allowed_vars)
                problems.append(TemplateProblem(
                    ("request",) + path, f"fields[{name!r}] is not mapped" + (
                        "" if suggestion else f": add mapped_to = \"{name}\" in [fields]"),
                    "undeclared_variable", token=name, suggestion=suggestion))
            if whole:
                problems.append(TemplateProblem(("request",) + path, "use secrets.NAME for one secret; the secrets namespace itself cannot be rendered", "secrets_namespace", token="secrets"))
            for var in sorted(variables - allowed_vars - {"secrets", "fields"}):
                suggestion = did_you_mean(var, allowed_vars | {"secrets", "fields"})
                # a likely typo gets the name it was meant to be, not advice to map a field to the typo
                advice = "" if suggestion else (
                    f": map a lead field to it in [fields] (mapped_to = \"{var}\") or use secrets.NAME")
                problems.append(TemplateProblem(
                    ("request",) + path, f"template variable {var!r} is not provided{advice}",
                    "undeclared_variable", token=var, suggestion=suggestion))
            leaves[path] = Leaf(path, source, frozenset(variables - {"secrets"}), frozenset(secrets))
        problems += [TemplateProblem(("request",) + path, f"{WHEN!r} must be a template string (the object is "
                                     "dropped when it renders empty)", "when_not_text")
                     for path in _bad_whens(spec, ())]
        omit = request.get("omit_empty_query", False)
        omit = set(spec["query"]) if omit is True else set(omit or ())
        for name in sorted(omit - set(spec["query"])):
            problems.append(TemplateProblem(("request", "omit_empty_query"), f"{name!r} is not a query parameter of this request", "unknown_query"))
        if problems:
            return None, problems
        url = spec["url"]
        origin = None
        parts = urlsplit(url)
        if parts.scheme and parts.netloc and "{" not in parts.scheme + parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
        tpl = cls(method=str(request.get("method", "GET")).upper(), spec=spec,
                  body_format=request.get("body_format", "json" if spec["body"] is not None else "none"),
                  leaves=leaves, env=env, origin=origin, omit_empty_query=frozenset(omit))
        try:
            tpl._compile_combined()
        except TemplateError as exc:
            return None, [_compile_problem(env, leaves, exc)]
        return tpl, []

    def _compile_combined(self) -> None:
        parts = []
        for i, (path, leaf) in enumerate(self.leaves.items()):
            name = f"leaf{i}"
            self._block_names[path] = name
            parts.append(f"{{% block {name} %}}{leaf.source}{{% endblock %}}")
        # every loop and ``~`` goes through the render budget (see sandbox.py)
        self._combined = self.env.from_string(instrument(self.env.parse("".join(parts))))

    @property
    def secret_names(self) -> set[str]:
        return {s for leaf in self.leaves.values() for s in leaf.secrets}

    def bind(self, secrets: Mapping[str, str]) -> "BoundRequest":
        return BoundRequest(self, dict(secrets))


class BoundRequest:
    """A request template with its secrets bound: render it per lead.

    ``render(vars)`` returns ``(real, masked)``: the request to send and the
    same request with every secret shown as ``****`` (for logs, previews and
    decision records). A leaf's context holds only the secrets that leaf
    names (``secrets.NAME``): no other leaf can read them.
    """

    def __init__(self, template: RequestTemplate, secrets: dict[str, str]):
        self.t = template
        self._secret_sections = {path[0] for path, leaf in template.leaves.items() if leaf.secrets}
        # static leaves: no lead variable -> render once now, real and masked
        self._static: dict[Path, tuple[str, str]] = {}
        # (path, block, None) or (path, block, (its real secrets, its masked secrets))
        self._dynamic: list[tuple[Path, Any, tuple[dict, dict] | None]] = []
        for path, leaf in template.leaves.items():
            block = template._combined.blocks[template._block_names[path]]
            real_secrets = {name: secrets.get(name, MASK) for name in leaf.secrets}
            masked_secrets = {name: MASK for name in leaf.secrets}
            if not leaf.variables:
                real = self._render_block(path, block, {"secrets": real_secrets})
                masked = self._render_block(path, block, {"secrets": masked_secrets}) if leaf.secrets else real
                self._static[path] = (real, masked)
            else:
                self._dynamic.append((path, block, (real_secrets, masked_secrets) if leaf.secrets else None))
        # each section compiled once into straight-line code (see _compile_section): per lead
        # it only slots the dynamic leaves' renderings in; the masked builders differ only
        # where a secret is
        slots = {path: i for i, (path, _, _) in enumerate(self._dynamic)}
        dynamic_paths = {path[:i] for path in slots for i in range(1, len(path) + 1)}
        real_static = {path: r for path, (r, _) in self._static.items()}
        masked_static = {path: m for path, (_, m) in self._static.items()}
        self._build_real = {name: _compile_section(template.spec[name], (name,), slots, dynamic_paths, real_static)
                            for name in SECTIONS}
        self._build_masked = {name: (_compile_section(template.spec[name], (name,), slots, dynamic_paths, masked_static)
                                     if name in self._secret_sections else None) for name in SECTIONS}

    def _render_block(self, path: Path, block, variables: Mapping[str, Any], ctx=None) -> str:
        """One leaf, within the render budget; any failure is a RenderError naming the leaf."""
        try:
            if ctx is None:
                ctx = self.t._combined.new_context(variables)
            return bounded_join(block(ctx), budget_of(ctx))
        except UndefinedError as exc:
            raise RenderError(str(exc.message), path) from None
        except SecurityError as exc:
            raise RenderError(f"not allowed in the sandbox: {exc}", path) from None
        except TemplateCostError as exc:
            raise RenderError(f"over the render budget: {exc}", path) from None
        except RecursionError:
            raise RenderError("the template recurses too deeply", path) from None
        except (ValueError, TypeError) as exc:  # a filter refusing a value ('12' is not a phone)
            raise RenderError(str(exc), path) from None
        except Exception as exc:  # noqa: BLE001 - 1//0, a filter's ValueError...: this lead's error, not a crash
            raise RenderError(f"{type(exc).__name__}: {exc}", path) from None

    def render(self, variables: Mapping[str, Any]) -> tuple["Rendered", "Rendered"]:
        real: list[str] = []
        masked: list[str] = real  # a list of its own only when a dynamic leaf names a secret
        shared = None  # one context (and one budget) for the leaves that use no secret
        for path, block, own_secrets in self._dynamic:
            if own_secrets is None:
                if shared is None:
                    shared = self.t._combined.new_context(dict(variables))
                text = self._render_block(path, block, variables, shared)
                real.append(text)
                if masked is not real:
                    masked.append(text)
            else:
                if masked is real:
                    masked = list(real)
                real.append(self._render_block(path, block, {**variables, "secrets": own_secrets[0]}))
                masked.append(self._render_block(path, block, {**variables, "secrets": own_secrets[1]}))
        sections = {name: build(real) for name, build in self._build_real.items()}
        real_req = self._assemble(sections)
        if not self._secret_sections:
            return real_req, real_req
        # only the sections that hold a secret are built again, masked
        masked_sections = {name: (self._build_masked[name](masked) if name in self._secret_sections
                                  else sections[name]) for name in SECTIONS}
        return real_req, self._assemble(masked_sections)

    def _assemble(self, spec: Mapping[str, Any]) -> "Rendered":
        url = spec["url"]
        if self.t.origin and not _same_origin(url, self.t.origin):
            raise RenderError(f"rendered URL {cut(url, 120)!r} left its origin {self.t.origin}", ("url",))
        body = spec["body"]
        if self.t.body_format == "form" and isinstance(body, dict):
            body = {k: _form_value(v) for k, v in body.items()}
        return Rendered(
            method=self.t.method,
            url=url,
            headers={str(k): str(v) for k, v in spec["headers"].items()},
            query={str(k): _form_value(v) for k, v in spec["query"].items()
                   if not (k in self.t.omit_empty_query and v == "")},
            body_format=self.t.body_format,
            body=body,
        )


def _same_origin(url: str, origin: str) -> bool:
    return url == origin or (url.startswith(origin) and url[len(origin)] in "/?#")


def _form_value(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return [_form_value(x) for x in v]
    return str(v)


def _dotted(path: Path) -> str:
    from ..config.problems import format_path

    return format_path(("request",) + tuple(path))


_DROP = object()


def _fill(value: Any, path: Path, rendered: Mapping[Path, str]) -> Any:
    """``value`` with every string leaf replaced by its rendering (``rendered``
    by path); a ``$when`` object that renders empty is ``_DROP``."""
    if isinstance(value, str):
        return rendered[path]
    if isinstance(value, dict):
        if WHEN in value and not rendered[path + (WHEN,)].strip():
            return _DROP
        out = {}
        for k, v in value.items():  # loops, not comprehensions: one frame per level of nesting
            if k != WHEN:
                filled = _fill(v, path + (k,), rendered)
                if filled is not _DROP:
                    out[k] = filled
        return out
    if isinstance(value, list):
        out_list = []
        for i, v in enumerate(value):
            filled = _fill(v, path + (i,), rendered)
            if filled is not _DROP:
                out_list.append(filled)
        return out_list
    return value


def _compile_section(spec: Any, path: Path, slots: Mapping[Path, int], dynamic: set[Path],
                     static: Mapping[Path, str]) -> Callable[[list[str]], Any]:
    """One section of the request as straight-line code: ``build(r)`` returns the
    section with the dynamic leaf at slot ``i`` taken from ``r[i]``. What holds no
    dynamic leaf is filled now and shared (read, never mutated), so per lead no
    walk over the request is left: no recursion, no per-leaf path look-ups."""
    consts: list[Any] = []

    def const(value: Any) -> str:
        consts.append(value)
        return f"c{len(consts) - 1}"

    def expr(value: Any, at: Path) -> tuple[str, bool]:
        """(Python expression, whether it may evaluate to _DROP)."""
        if isinstance(value, str):
            return (f"r[{slots[at]}]", False) if at in slots else (const(static[at]), False)
        if not isinstance(value, (dict, list)):
            return const(value), False
        if at not in dynamic:
            filled = _fill(value, at, static)
            return (None, True) if filled is _DROP else (const(filled), False)
        if isinstance(value, dict):
            parts, may_drop = [], False
            for k, v in value.items():
                if k == WHEN:
                    continue
                e, drops = expr(v, at + (k,))
                if e is None:
                    continue  # a static $when object that renders empty: never there
                parts.append(f"{const(k)}: {e}")
                may_drop = may_drop or drops
            out = "{" + ", ".join(parts) + "}"
            if may_drop:
                out = f"_kept_items({out})"
            if WHEN in value:
                when, _ = expr(value[WHEN], at + (WHEN,))
                return f"(DROP if not {when}.strip() else {out})", True
            return out, False
        items = [expr(v, at + (i,)) for i, v in enumerate(value)]
        out = "[" + ", ".join(e for e, _ in items if e is not None) + "]"
        if any(drops for e, drops in items if e is not None):
            out = f"_kept({out})"
        return out, False

    body, _ = expr(spec, path)
    if body is None:  # a whole section that is a $when object rendering empty
        body = const(_DROP)
    namespace: dict[str, Any] = {f"c{i}": v for i, v in enumerate(consts)}
    namespace.update(DROP=_DROP, _kept=_kept, _kept_items=_kept_items)
    try:
        code = compile(f"def build(r):\n    return {body}\n", f"<request {_dotted(path)}>", "exec")
    except (SyntaxError, RecursionError, MemoryError):  # nested past what the compiler takes: walk it per lead
        return lambda r: _fill(spec, path, {**static, **{p: r[i] for p, i in slots.items()}})
    exec(code, namespace)  # noqa: S102 - our own generated code: slots and constants, no template text
    return namespace["build"]


def _kept(values: list[Any]) -> list[Any]:
    return [v for v in values if v is not _DROP]


def _kept_items(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not _DROP}


@dataclass(frozen=True)
class Rendered:
    """One rendered request."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, Any]
    body_format: str
    body: Any

    def with_origin(self, new_origin: str | None) -> "Rendered":
        """The same request sent to another scheme://host:port (``--crm-url``)."""
        if not new_origin:
            return self
        new = urlsplit(new_origin)
        old = urlsplit(self.url)
        tail = self.url[len(f"{old.scheme}://{old.netloc}"):]
        return replace(self, url=f"{new.scheme}://{new.netloc}{tail}")

