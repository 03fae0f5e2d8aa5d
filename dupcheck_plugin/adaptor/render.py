"""Compile an adaptor's request templates once; render them per lead (pure).

The request (URL, headers, query, body) is kept as data whose *string
leaves* are Jinja templates, rendered and then serialised: a lead value such
as ``Robert", "x": "y`` or ``{{ 7*7 }}`` is only ever a value, never template
source and never JSON syntax. Values stay strings (``"0042"`` stays
``"0042"``); non-string leaves (numbers, booleans) pass through untouched.

Speed: leaves that use no lead variable (an ``Authorization`` header made of
a secret) are rendered once, when the secrets are bound. The rest of the
request is compiled, at bind time, into one straight-line function per
request (:func:`_compile_plan`) that builds the real and the masked request
in one pass. A leaf whose output is plain (text, variables, secrets,
dupcheck's own filters) is a Python expression there, with exactly Jinja's
output; any other leaf is rendered by Jinja in the sandbox: all of them are
compiled into *one* template, one ``{% block %}`` per leaf, rendered with
one context per lead (a sandboxed ``Template.render`` costs ~20 us of set-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.defaults import DEFAULT_FILTERS, DEFAULT_TESTS
from jinja2.exceptions import SecurityError, UndefinedError

from ..config.suggest import did_you_mean
from ..errors import DupcheckError
from ..frozen import one_step_init
from . import sandbox as _sandbox
from .filters import PURE_FILTERS
from .sandbox import BudgetedEnvironment, TemplateCostError, bounded_join, budget_of, instrument
from .urlquote import quote_plus

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
    sample_rendered: bool = False  # proven by a check's plain render of the sample lead; Jinja compiles it at bind
    _combined: Any = None
    _block_names: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def compile(cls, env: BudgetedEnvironment, request: Mapping[str, Any], allowed_vars: set[str],
                sample: Mapping[str, Any] | None = None) -> tuple["RequestTemplate | None", list[TemplateProblem]]:
        """``sample``: a check's sample lead (its template variables); when every leaf renders
        it as plain Python (see :meth:`_plain_trial`), the Jinja compile waits for a bind."""
        spec = {
            "url": request.get("url", ""),
            "headers": dict(request.get("headers", {})),
            "query": dict(request.get("query", {})),
            "body": request.get("body"),
        }
        problems: list[TemplateProblem] = []
        leaves: dict[Path, Leaf] = {}
        asts: dict[Path, nodes.Template] = {}
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
            try:
                variables = meta.find_undeclared_variables(ast)  # Jinja's compiler, run for its symbols
            except TemplateError as exc:  # what it refuses ({% for loop in x %}): a problem, not a crash
                problems.append(TemplateProblem(("request",) + path, f"Jinja error: {exc}", "jinja_compile"))
                continue
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
            asts[path] = ast
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
        if sample is not None and tpl._plain_trial(asts, sample):
            tpl.sample_rendered = True
            return tpl, []
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

    # a leaf is plain Python only while its expressions nest less than this: Jinja's code nests
    # them deeper (a filter chain is calls in calls), and Python refuses ~200 nested parentheses
    _PLAIN_TRIAL_DEPTH = 32

    def _plain_trial(self, asts: Mapping[Path, nodes.Template], sample: Mapping[str, Any]) -> bool:
        """Whether ``check`` may leave out compiling the templates (Jinja's code generation
        and Python's compile: most of what a check spends on them). True when Jinja would
        compile the request and render ``sample`` with the secrets masked without an error,
        which is proven by rendering every leaf as :class:`_PlainLeaf` code (exactly Jinja's
        output; plain shapes compile whenever they parse). False for anything else: Jinja
        then compiles and renders it and says what is wrong, as without the trial."""
        if any(leaf.source.endswith("{") for leaf in self.leaves.values()):
            return False  # in the combined template a final "{" and "{% endblock %}" open a "{{"
        if any(_deeper_than(ast, self._PLAIN_TRIAL_DEPTH) for ast in asts.values()):
            return False
        out = _Source()
        texts = []
        try:
            for path, ast in asts.items():
                masked = {name: MASK for name in self.leaves[path].secrets}
                texts.append(_sized(_PlainLeaf(self.env, masked, out)._template(ast)[0]))
        except _NotPlain:
            return False
        leaves = _function(out, "(" + "".join(f"{text}, " for text in texts) + ")", "v", "<check>")
        if leaves is None:
            return False
        try:  # what the render after the leaves does: fill the request, keep it at its origin
            rendered = dict(zip(asts, leaves(sample)))
            spec = {name: _fill(self.spec[name], (name,), rendered) for name in SECTIONS}
            _headers(spec["headers"])
            _query(spec["query"], self.omit_empty_query)
            _form_body(spec["body"])
        except Exception:  # noqa: BLE001 - not proven: Jinja renders it and names the leaf
            return False
        return not self.origin or _same_origin(spec["url"], self.origin)

    @property
    def secret_names(self) -> set[str]:
        return {s for leaf in self.leaves.values() for s in leaf.secrets}

    def bind(self, secrets: Mapping[str, str], also: Sequence[str] = (), origin: str | None = None) -> "BoundRequest":
        """``also``: templates of the same environment a lead's render gives the texts of too
        (a batch's leaves: :meth:`BoundRequest.render_also`). ``origin``: the scheme://host:port
        the requests go to instead of the adaptor's (a connection's ``url``, ``--crm-url``)."""
        if self._combined is None:  # a checked request (sample_rendered) used after all
            self._compile_combined()
        return BoundRequest(self, dict(secrets), also, origin)


def _deeper_than(node: nodes.Node, limit: int) -> bool:
    if limit < 0:
        return True
    return any(_deeper_than(child, limit - 1) for child in node.iter_child_nodes())


class BoundRequest:
    """A request template with its secrets bound: render it per lead.

    ``render(vars)`` returns ``(real, masked)``: the request to send and the
    same request with every secret shown as ``****`` (for logs, previews and
    decision records). A leaf's context holds only the secrets that leaf
    names (``secrets.NAME``): no other leaf can read them.

    Per lead, one call of a plan compiled here (see :func:`_compile_plan`)
    builds both requests; :meth:`render_reference` is the plain walk it must
    equal, and what renders a lead the plan is not sure of (a missing
    variable, a value over the size limit, a leaf that fails: the walk names it).
    The same call gives the texts of the ``also`` templates (a batch's leaves):
    they read the same filtered values, computed once for both.
    """

    def __init__(self, template: RequestTemplate, secrets: dict[str, str], also: Sequence[str] = (),
                 origin: str | None = None):
        self.t = template
        self._also = tuple(also)
        # the URL as sent: the adaptor's own checked against its origin, then moved to this one
        # (an adaptor's URL is fixed: moved once, here, not per lead)
        self.origin = origin or None
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
        self._plan, self._jinja = _compile_plan(self)

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

    def _render_leaves(self, variables: Mapping[str, Any],
                       leaves: list[tuple[Path, Any, tuple[dict, dict] | None]]) -> list[str]:
        """These leaves by Jinja, in order: one text each, two (real, masked) for a leaf naming a secret."""
        out: list[str] = []
        shared = None  # one context (and one budget) for the leaves that use no secret
        for path, block, own_secrets in leaves:
            if own_secrets is None:
                if shared is None:
                    shared = self.t._combined.new_context(dict(variables))
                out.append(self._render_block(path, block, variables, shared))
            else:
                out.append(self._render_block(path, block, {**variables, "secrets": own_secrets[0]}))
                out.append(self._render_block(path, block, {**variables, "secrets": own_secrets[1]}))
        return out

    def render(self, variables: Mapping[str, Any]) -> tuple["Rendered", "Rendered"]:
        real, masked, _ = self.render_also(variables)
        return real, masked

    def render_also(self, variables: Mapping[str, Any]) -> tuple["Rendered", "Rendered", tuple[str, ...] | None]:
        """(real, masked, the texts of the ``also`` templates in their order); the texts are None
        when the plan did not render this lead (or has none): render them by their own means."""
        if self._plan is not None:
            try:
                return self._plan(variables, self._render_leaves(variables, self._jinja) if self._jinja else ())
            except Exception:  # noqa: BLE001 - not sure of this lead: the walk renders it, or says which leaf fails
                pass
        real, masked = self.render_reference(variables)
        return real, masked, None

    @property
    def compiled(self) -> bool:
        """Whether leads are rendered by a compiled plan (else by the walk)."""
        return self._plan is not None

    def render_compiled(self, variables: Mapping[str, Any]) -> tuple["Rendered", "Rendered"]:
        """The plan's rendering; raises for a lead it cannot vouch for (``render`` then walks)."""
        if self._plan is None:
            raise _Unsure("this request is rendered by the walk")
        real, masked, _ = self._plan(variables, self._render_leaves(variables, self._jinja) if self._jinja else ())
        return real, masked

    def render_reference(self, variables: Mapping[str, Any]) -> tuple["Rendered", "Rendered"]:
        """The reference rendering: every dynamic leaf by Jinja, then a walk over the request."""
        real = {path: r for path, (r, _) in self._static.items()}
        masked = {path: m for path, (_, m) in self._static.items()}
        texts = iter(self._render_leaves(variables, self._dynamic))
        for path, _, own_secrets in self._dynamic:
            real[path] = next(texts)
            masked[path] = next(texts) if own_secrets is not None else real[path]
        sections = {name: _fill(self.t.spec[name], (name,), real) for name in SECTIONS}
        real_req = self._assemble(sections)
        if not self._secret_sections:
            return real_req, real_req
        # only the sections that hold a secret are filled again, masked
        masked_sections = {name: (_fill(self.t.spec[name], (name,), masked) if name in self._secret_sections
                                  else sections[name]) for name in SECTIONS}
        return real_req, self._assemble(masked_sections)

    def _assemble(self, spec: Mapping[str, Any]) -> "Rendered":
        url = spec["url"]
        if self.t.origin and not _same_origin(url, self.t.origin):
            raise RenderError(f"rendered URL {cut(url, 120)!r} left its origin {self.t.origin}", ("url",))
        return Rendered(
            method=self.t.method,
            url=retarget(url, self.origin),
            headers=_headers(spec["headers"]),
            query=_query(spec["query"], self.t.omit_empty_query),
            body_format=self.t.body_format,
            body=_form_body(spec["body"]) if self.t.body_format == "form" else spec["body"],
        )


def _headers(section: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in section.items()}


def _query(section: Mapping[Any, Any], omit: frozenset[str]) -> dict[str, Any]:
    return {str(k): _form_value(v) for k, v in section.items() if not (k in omit and v == "")}


def _form_body(body: Any) -> Any:
    return {k: _form_value(v) for k, v in body.items()} if isinstance(body, dict) else body


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


# -- the compiled plan -----------------------------------------------------------------
#
# At bind time each request becomes one generated function ``plan(v, q)``: straight-line
# code that computes the dynamic leaves, builds every section and returns the real and
# the masked request. What holds no lead value is computed once and shared (read, never
# mutated). A leaf whose Jinja output can be told without Jinja (text, variables, secrets
# and dupcheck's own pure filters, see :class:`_PlainLeaf`) is Python code; any
# other leaf is rendered by Jinja within the sandbox's budget and arrives in ``q``.
# Every string a template or adaptor holds is a constant of the generated code's
# namespace, never part of its source.


class _Unsure(DupcheckError):
    """The plan cannot vouch for this lead (a value over the size limit): the walk renders it."""


def _unsure() -> str:
    raise _Unsure


def _sized(expression: str) -> str:
    """Generated code for ``expression``'s text, raising _Unsure when it is over the size limit.
    Inline rather than a helper's call: a lead's request runs it for every filter and ``~``
    (twenty times for a batched Salesforce lead), and a Python call costs more than the check."""
    return f"(_t if len(_t := {expression}) <= _sandbox.MAX_TEXT else _unsure())"


class _NotPlain(DupcheckError):
    """A leaf Jinja renders: its template uses more than the plain shapes."""


class _Source:
    """Generated code: its lines and the constants it names."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
        self.lines: list[str] = []
        self.depth = 0
        # the tests (locals) the code being written runs under, each true: a value computed
        # under them is reused wherever they all hold again (a later leaf's `if` on the same
        # test); None: a branch whose values are not kept (an elif's, nothing to name it by)
        self.guard: tuple[str, ...] | None = ()
        self._locals: dict[tuple[tuple[str, ...], str], str] = {}  # (guard, expression) -> its local
        self._local_names: set[str] = set()
        self._consts: dict[Any, str] = {}
        self._fresh = 0

    def const(self, value: Any) -> str:
        key = (type(value), value) if isinstance(value, str) else id(value)
        if key not in self._consts:
            self._consts[key] = f"c{len(self.names)}"
            self.names[self._consts[key]] = value
        return self._consts[key]

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def fresh(self, expression: str) -> str:
        """A new local variable holding ``expression``."""
        self._fresh += 1
        self.line(f"t{self._fresh} = {expression}")
        return f"t{self._fresh}"

    def local(self, expression: str) -> str:
        """A local variable holding ``expression``, computed once however often it is used
        where it ran: at the top, or under tests that all hold here too."""
        if expression in self.names or expression in self._local_names:
            return expression
        guard = self.guard
        if guard is None:
            return f"({expression})"
        for n in range(len(guard) + 1):
            name = self._locals.get((guard[:n], expression))
            if name is not None:
                return name
        name = f"x{len(self._local_names)}"
        self._locals[guard, expression] = name
        self._local_names.add(name)
        self.line(f"{name} = {expression}")
        return name

    def is_local(self, name: str) -> bool:
        return name in self._local_names

    def branch(self, guard: tuple[str, ...] | None) -> tuple[int, tuple[str, ...] | None]:
        """Write the lines that follow one level deeper, under ``guard``; returns what
        :meth:`leave` restores."""
        saved = self.depth, self.guard
        self.depth += 1
        self.guard = guard
        return saved

    def leave(self, saved: tuple[int, tuple[str, ...] | None]) -> None:
        self.depth, self.guard = saved

    def mark(self) -> tuple[int, dict, set[str]]:
        return len(self.lines), dict(self._locals), set(self._local_names)

    def rollback(self, mark: tuple[int, dict, set[str]]) -> None:
        del self.lines[mark[0]:]
        self._locals, self._local_names = mark[1], mark[2]
        self.depth, self.guard = 0, ()


_COMPARISONS = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in", "notin": "not in"}
_STR_METHODS = frozenset({"startswith", "endswith"})


class _PlainLeaf:
    """One leaf as Python with exactly Jinja's output, when its template holds only plain
    shapes: text, ``{{ expression }}``, ``{% set %}`` (at the top),
    ``{% if %}``; expressions of lead variables, ``secrets.NAME``, ``fields['name']``, string
    and integer constants, dupcheck's own pure filters and ``length``, ``~``, slices,
    comparisons, ``and``/``or``/``not`` and ``startswith``/``endswith`` on text. These run no
    loop and call no user code, so the render budget has nothing to bound but the size,
    checked after each filter and ``~`` as the sandbox checks it. Anything else: Jinja
    renders the leaf. A name the lead lacks raises KeyError at render time (the walk then
    renders the lead, StrictUndefined and all)."""

    def __init__(self, env: BudgetedEnvironment, secrets: Mapping[str, str], out: _Source):
        self.env, self.secrets, self.out = env, secrets, out
        self.scope: dict[str, str] = {}  # {% set %} names -> their Python locals
        self.assigned: set[str] = set()
        self.quoted = False  # also write the output as a URL query quotes it (compile_quoted)
        self.blocks: set[str] = set()  # the names {% set %}...{% endset %} sets (a text)

    def compile(self, source: str) -> str | None:
        """The expression holding the leaf's output, or None (nothing emitted)."""
        compiled = self._compile(source)
        return compiled[0] if compiled is not None else None

    def compile_quoted(self, source: str, quoted: bool = True) -> tuple[str, str] | None:
        """(the expression holding the leaf's output, the one holding it quoted as a URL's
        query value, ``quote_plus`` of it: "" unless ``quoted``), or None. The template's
        own text is quoted here, once; per lead only what the lead's values make of it is
        quoted (a SOQL query of 250 characters, some 50 of them the lead's)."""
        self.quoted = quoted
        return self._compile(source)

    def _compile(self, source: str) -> tuple[str, str] | None:
        mark = self.out.mark()
        try:
            return self._template(self.env.parse(source))
        except _NotPlain:
            self.out.rollback(mark)
            return None

    def _template(self, ast: nodes.Template) -> tuple[str, str]:
        """(the output's expression, its quoted twin's: "" unless ``self.quoted``)."""
        if all(isinstance(s, nodes.Output) for s in ast.body):
            pairs = [p for s in ast.body for p in self._output(s, self.quoted)]
            if not pairs:
                raise _NotPlain
            if len(pairs) == 1:
                return pairs[0]
            text, quoted = (f"''.join(({', '.join(side)},))" for side in zip(*pairs))
            return text, quoted if self.quoted else ""
        targets = [n.target for n in ast.find_all((nodes.Assign, nodes.AssignBlock))]
        if not all(isinstance(t, nodes.Name) for t in targets) or len({t.name for t in targets}) < len(targets):
            raise _NotPlain
        self.assigned = {t.name for t in targets}
        self.blocks = {n.target.name for n in ast.find_all(nodes.AssignBlock)}
        text, quoted = self.out.fresh("[]"), self.out.fresh("[]") if self.quoted else None  # the output's lists
        self._statements(ast.body, (text, quoted))
        return self.out.fresh(f"''.join({text})"), self.out.fresh(f"''.join({quoted})") if quoted else ""

    def _statements(self, body: list[nodes.Node], parts: tuple[str, str | None]) -> None:
        if not body:
            self.out.line("pass")
        text, quoted = parts
        for node in body:
            if isinstance(node, nodes.Output):
                for part, quoted_part in self._output(node, quoted is not None):
                    self.out.line(f"{text}.append({part})")
                    if quoted:
                        self.out.line(f"{quoted}.append({quoted_part})")
            elif isinstance(node, nodes.Assign) and not self.out.depth:
                # the value's own local: leaves computing the same of it (e | soql) share the result
                self.scope[node.target.name] = self.out.local(self._expression(node.node))
            elif isinstance(node, nodes.AssignBlock) and not self.out.depth and node.filter is None:
                # {% set name %}...{% endset %}: the text in between (quoted where it is written, in
                # one call: a call costs more than the characters of a block's few values)
                captured = self.out.fresh("[]")
                self._statements(node.body, (captured, None))
                self.scope[node.target.name] = self.out.fresh(f"''.join({captured})")
            elif isinstance(node, nodes.If):
                # the test's value is a local: another leaf testing the same computes it no more,
                # and what a branch computes is kept for a later branch under the same test
                out = self.out
                test = out.local(self._expression(node.test))
                under = out.guard + (test,) if out.guard is not None and out.is_local(test) else None
                out.line(f"if {test}:")
                self._branch(node.body, parts, under)
                for other in node.elif_:
                    saved = out.branch(None)  # an elif's test runs only when the ones before fail
                    test = self._expression(other.test)
                    out.leave(saved)
                    out.line(f"elif {test}:")
                    self._branch(other.body, parts, None)
                if node.else_:
                    out.line("else:")
                    otherwise = None if node.elif_ or under is None else out.guard + (f"not {under[-1]}",)
                    self._branch(node.else_, parts, otherwise)
            else:
                raise _NotPlain

    def _branch(self, body: list[nodes.Node], parts: tuple[str, str | None], guard: tuple[str, ...] | None) -> None:
        saved = self.out.branch(guard)
        self._statements(body, parts)
        self.out.leave(saved)

    def _output(self, node: nodes.Output, quoting: bool) -> list[tuple[str, str]]:
        """Each piece of the output: (its text, its text quoted: "" unless ``quoting``)."""
        parts = []
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                if child.data:
                    parts.append((self.out.const(child.data), self.out.const(quote_plus(child.data)) if quoting else ""))
            elif not quoting:
                parts.append((f"str({self._expression(child)})", ""))
            elif isinstance(child, nodes.Name) and child.name in self.blocks:
                text = self._expression(child)  # a {% set %} block's text: quoted once however often written
                parts.append((text, self.out.local(f"_quote({text})")))
            else:
                text = self.out.fresh(f"str({self._expression(child)})")  # computed once for both
                parts.append((text, f"_quote({text})"))
        return parts

    def _expression(self, node: nodes.Node) -> str:
        out = self.out
        if isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name in self.scope:
                return self.scope[node.name]
            if node.name in self.assigned or node.name in ("secrets", "fields"):
                raise _NotPlain  # read before its {% set %}: Jinja's scoping decides
            return out.local(f"v[{out.const(node.name)}]")
        if isinstance(node, nodes.Const) and type(node.value) in (str, int):
            return out.const(node.value)
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice):
            # Jinja slices with Python's own subscript, not the sandbox's getitem
            bounds = [self._expression(b) if b is not None else "" for b in (node.arg.start, node.arg.stop, node.arg.step)]
            return out.local(f"{self._expression(node.node)}[{':'.join(bounds)}]")
        if isinstance(node, (nodes.Getattr, nodes.Getitem)) and isinstance(node.node, nodes.Name) \
                and node.node.name in ("secrets", "fields"):
            if isinstance(node, nodes.Getattr):
                key = node.attr
                if hasattr(dict, key):  # Jinja's attribute first: secrets.items is the method
                    raise _NotPlain
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                key = node.arg.value
            else:
                raise _NotPlain
            if node.node.name == "secrets":
                if key not in self.secrets:
                    raise _NotPlain
                return out.const(self.secrets[key])
            return out.local(f"v[{out.const('fields')}][{out.const(key)}]")
        if isinstance(node, nodes.Filter) and node.node is not None and not node.kwargs \
                and node.dyn_args is None and node.dyn_kwargs is None:
            function = self.env.plain_filters.get(node.name)
            arguments = ", ".join(self._expression(a) for a in (node.node, *node.args))
            if function is len and not node.args:
                return out.local(f"len({arguments})")
            if function in PURE_FILTERS:
                return out.local(_sized(f"{out.const(function)}({arguments})"))
            raise _NotPlain
        if isinstance(node, nodes.Concat):  # Jinja's str_join; the sandbox bounds its size
            return out.local(_sized(f"''.join(({', '.join(f'str({self._expression(n)})' for n in node.nodes)},))"))
        if isinstance(node, nodes.Compare) and all(op.op in _COMPARISONS for op in node.ops):
            chain = " ".join(f"{_COMPARISONS[op.op]} {self._expression(op.expr)}" for op in node.ops)
            return f"({self._expression(node.expr)} {chain})"
        if isinstance(node, (nodes.And, nodes.Or)):
            return f"({self._expression(node.left)} {'and' if isinstance(node, nodes.And) else 'or'} {self._expression(node.right)})"
        if isinstance(node, nodes.Not):
            return f"(not {self._expression(node.node)})"
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.node.attr in _STR_METHODS \
                and not node.kwargs and node.dyn_args is None and node.dyn_kwargs is None:
            # text.startswith(...) as the sandbox calls it, for text only (else the walk renders
            # the lead); inline: a call of a helper cost more than the method
            text = self._expression(node.node.node)
            arguments = ", ".join(self._expression(a) for a in node.args)
            return f"(_s.{node.node.attr}({arguments}) if type(_s := {text}) is str else _unsure())"
        raise _NotPlain


def plain_function(env: BudgetedEnvironment, source: str) -> Callable[[Mapping[str, Any]], str] | None:
    """One template as a Python function of a lead's variables with exactly Jinja's output
    (the shapes of :class:`_PlainLeaf`, no secrets); None when Jinja must render it. The
    function raises for a lead it cannot vouch for (a missing variable, a value over the
    size limit, a filter refusing it): render that lead by Jinja, which says why."""
    out = _Source()
    expression = _PlainLeaf(env, {}, out).compile(source)
    if expression is None:
        return None
    return _function(out, _sized(expression), "v", "<template>")


def plain_texts(env: BudgetedEnvironment, sources: Sequence[str]) -> tuple[Callable[[Mapping[str, Any]], tuple] | None,
                                                                          tuple[int, ...]]:
    """(one function rendering every plain one of ``sources`` for a lead's variables, the
    positions of those sources): the function returns their texts in that order, each
    exactly :func:`plain_function`'s, computing once what several compute alike (a phone's
    E.164 read by five templates). It raises where any of them would (then render them one
    by one); (None, ()) when none is plain."""
    out = _Source()
    results, which = [], []
    for i, source in enumerate(sources):
        expression = _PlainLeaf(env, {}, out).compile(source)
        if expression is not None:
            results.append(_sized(expression))
            which.append(i)
    if not results:
        return None, ()
    function = _function(out, f"({', '.join(results)},)", "v", "<templates>")
    return (function, tuple(which)) if function is not None else (None, ())


def _function(out: _Source, result: str, parameters: str, name: str) -> Callable[..., Any] | None:
    """The generated function returning ``result``; None when Python's compiler refuses it (nesting)."""
    source = f"def generated({parameters}):\n" + "".join(f"    {line}\n" for line in out.lines)
    source += f"    return {result}\n"
    namespace = dict(out.names, R=Rendered, DROP=_DROP, _kept=_kept, _kept_items=_kept_items, _Unsure=_Unsure,
                     _unsure=_unsure, _sandbox=_sandbox, _same_origin=_same_origin,
                     _headers=_headers, _query=_query, _form_body=_form_body, _quote=quote_plus,
                     _retarget=retarget)
    try:
        code = compile(source, name, "exec")
    except (SyntaxError, RecursionError, MemoryError):
        return None
    exec(code, namespace)  # noqa: S102 - our own generated code: slots and constants, no template text
    return namespace["generated"]


def _compile_plan(bound: BoundRequest) -> tuple[Callable[..., tuple["Rendered", "Rendered"]] | None, list]:
    """(the plan, the leaves Jinja renders for it, in ``q``'s order); (None, []) when
    the request cannot be compiled (nested past what Python's compiler takes)."""
    t = bound.t
    out = _Source()
    real_slot: dict[Path, str] = {}
    masked_slot: dict[Path, str] = {}
    real_quoted: dict[Path, str] = {}  # a query leaf's text quoted as the URL writes it
    masked_quoted: dict[Path, str] = {}
    jinja: list[tuple[Path, Any, tuple[dict, dict] | None]] = []
    sized: list[str] = []
    writes_query = _writes_query(bound)
    for path, block, own_secrets in bound._dynamic:
        source = t.leaves[path].source
        quoted = writes_query and path[0] == "query"
        real = _PlainLeaf(t.env, own_secrets[0] if own_secrets else {}, out).compile_quoted(source, quoted)
        masked = _PlainLeaf(t.env, own_secrets[1], out).compile_quoted(source, quoted) if own_secrets and real else real
        if real is not None and masked is not None:
            real_slot[path] = out.local(real[0])
            masked_slot[path] = out.local(masked[0])
            if quoted:
                real_quoted[path] = out.local(real[1])
                masked_quoted[path] = out.local(masked[1])
            sized += [s for s in {real_slot[path]: 1, masked_slot[path]: 1} if s not in sized]
            continue
        real_slot[path] = out.local(f"q[{sum(2 if s else 1 for _, _, s in jinja)}]")
        masked_slot[path] = out.local(f"q[{sum(2 if s else 1 for _, _, s in jinja) + 1}]") if own_secrets else real_slot[path]
        jinja.append((path, block, own_secrets))
    if sized:  # each leaf within the output limit (the sum: the walk judges a lead over it)
        out.lines.append(f"if {' + '.join(f'len({s})' for s in sized)} > _sandbox.MAX_TEXT: raise _Unsure")
    dynamic = {path[:i] for path in real_slot for i in range(1, len(path) + 1)}
    real_static = {path: r for path, (r, _) in bound._static.items()}
    masked_static = {path: m for path, (_, m) in bound._static.items()}

    def section(name: str, masked: bool) -> str:
        """A local holding the section; a masked section without a secret is the real one."""
        slots, static = (masked_slot, masked_static) if masked else (real_slot, real_static)
        if (name, masked) not in sections:
            expression, _ = _section_expression(t.spec[name], (name,), slots, dynamic, static, out)
            sections[name, masked] = out.local(out.const(_DROP) if expression is None else expression)
        return sections[name, masked]

    sections: dict[tuple[str, bool], str] = {}

    requests = []
    for masked in (False, True):
        if masked and not bound._secret_sections:
            break
        own = (lambda name: masked and name in bound._secret_sections)
        url = section("url", own("url"))
        fixed_url = None if ("url",) in dynamic else _fill(t.spec["url"], ("url",),
                                                           masked_static if own("url") else real_static)
        if t.origin:
            if fixed_url is None:
                out.lines.append(f"if not _same_origin({url}, {out.const(t.origin)}): raise _Unsure")
            elif not _same_origin(fixed_url, t.origin):
                return None, []  # the walk says why, for every lead
        if bound.origin:  # moved to where the requests go: a fixed URL once, here
            url = (out.local(f"_retarget({url}, {out.const(bound.origin)})") if fixed_url is None
                   else out.const(retarget(fixed_url, bound.origin)))
        slots, static = (masked_slot, masked_static) if own("headers") else (real_slot, real_static)
        headers = _plain_table(_table_entries(t.spec["headers"], ("headers",), slots, static), out, str) \
            or f"_headers({section('headers', own('headers'))})"
        slots, static = (masked_slot, masked_static) if own("query") else (real_slot, real_static)
        entries = _table_entries(t.spec["query"], ("query",), slots, static, t.omit_empty_query)
        query = _plain_table(entries, out, _form_value)
        written = None
        if query is not None and writes_query:
            written = _written_query(entries, masked_quoted if own("query") else real_quoted, out)
        if query is None:
            query = f"_query({section('query', own('query'))}, {out.const(t.omit_empty_query)})"
        elif written is not None:  # the text goes with this very table (the wire checks it is the one sent)
            query = out.fresh(query)
            written = f"({query}, {written})"
        body = section("body", own("body"))
        if t.body_format == "form":
            body = f"_form_body({body})"
        requests.append(f"R({out.const(t.method)}, {url}, {headers}, {query}, {out.const(t.body_format)}, {body}"
                        f"{', ' + written if written else ''})")
    real_request = out.local(requests[0])
    masked_request = out.fresh(requests[1]) if len(requests) > 1 else real_request  # its own, as the walk's
    plan = _function(out, f"{real_request}, {masked_request}, {_also_texts(bound._also, t.env, out)}", "v, q",
                     f"<request plan {t.origin or ''}>")
    return (plan, jinja) if plan is not None else (None, [])


def _also_texts(sources: Sequence[str], env: BudgetedEnvironment, out: _Source) -> str:
    """The expression of the ``also`` templates' texts, each as :func:`plain_texts` gives it,
    computed in the plan with what the request computed alike; "None" (no texts: they are
    rendered by their own means) when there are none or one is not plain."""
    mark = out.mark()
    texts = [_PlainLeaf(env, {}, out).compile(source) for source in sources]
    if not texts or None in texts:
        out.rollback(mark)
        return "None"
    return f"({''.join(f'{_sized(text)}, ' for text in texts)})"


def _writes_query(bound: BoundRequest) -> bool:
    """Whether a plan may write the query as the URL holds it: the URL is the same for every
    lead and holds no query or fragment of its own (a query there the wire merges with the table)."""
    t = bound.t
    if any(path[0] == "url" for path, _, _ in bound._dynamic):
        return False
    urls = [_fill(t.spec["url"], ("url",), {path: texts[i] for path, texts in bound._static.items()}) for i in (0, 1)]
    return all(isinstance(url, str) and "?" not in url and "#" not in url for url in urls)  # real and masked


def _written_query(entries: list[_Entry], quoted: Mapping[Path, str], out: _Source) -> str | None:
    """The query table :func:`_plain_table` builds of ``entries``, as the wire writes it
    (``k=v&k=v``, each quoted as ``quote_plus`` quotes it), or None for an empty one. The
    table's own text is quoted here, once; a lead's values (``quoted``: the twins the plan
    wrote of its leaves) per lead."""
    pieces: list[tuple[str, str | None]] = []  # (an expression "k=v", the value it is left out for when empty)
    for key, at, slot, fixed, optional in entries:
        name = quote_plus(key) + "="
        if slot is None:
            pieces.append((out.const(name + quote_plus(_form_value(fixed))), None))
        else:
            pieces.append((f"{out.const(name)} + {quoted.get(at) or f'_quote({slot})'}", slot if optional else None))
    if not pieces:
        return None
    if all(optional is None for _, optional in pieces):
        return out.local(pieces[0][0] if len(pieces) == 1 else f"'&'.join(({', '.join(p for p, _ in pieces)},))")
    written = out.fresh("[]")
    for piece, optional in pieces:
        out.line(f"if {optional} != '': {written}.append({piece})" if optional else f"{written}.append({piece})")
    return out.fresh(f"'&'.join({written})")


# a plain table's entry: (key, its path, the local of its rendered leaf or None, else its fixed
# value, left out when empty)
_Entry = tuple[str, Path, "str | None", Any, bool]


def _table_entries(spec: Any, path: Path, slots: Mapping[Path, str], static: Mapping[Path, str],
                   omit: frozenset[str] = frozenset()) -> list[_Entry] | None:
    """A header or query table's entries when its values are all single values: a rendered
    leaf by its local, left out when empty if ``omit`` names it; a fixed value as it is (one
    ``omit`` leaves out when empty is not there). None for any other shape."""
    if not isinstance(spec, dict) or WHEN in spec or any(isinstance(v, (dict, list)) for v in spec.values()):
        return None
    entries: list[_Entry] = []
    for key, value in spec.items():
        at = path + (key,)
        if at in slots:
            entries.append((str(key), at, slots[at], None, key in omit))
            continue
        fixed = static[at] if isinstance(value, str) else value
        if not (key in omit and fixed == ""):
            entries.append((str(key), at, None, fixed, False))
    return entries


def _plain_table(entries: list[_Entry] | None, out: _Source, convert: Callable[[Any], Any]) -> str | None:
    """The table of :func:`_table_entries`, built as what _headers / _query make of it:
    fixed values converted once, a rendered leaf as it is (a string). None for no entries
    list (the table goes through _headers / _query per lead)."""
    if entries is None:
        return None
    pairs = [(out.const(key), slot if slot is not None else out.const(convert(fixed)), optional)
             for key, _, slot, fixed, optional in entries]
    first = next((i for i, (_, _, optional) in enumerate(pairs) if optional), len(pairs))
    table = "{" + ", ".join(f"{k}: {e}" for k, e, _ in pairs[:first]) + "}"
    if first == len(pairs):
        return table
    name = out.fresh(table)
    for key, value, optional in pairs[first:]:  # in order: the dict keeps the table's order
        out.lines.append(f"if {value} != '': {name}[{key}] = {value}" if optional else f"{name}[{key}] = {value}")
    return name


def _section_expression(spec: Any, at: Path, slots: Mapping[Path, str], dynamic: set[Path],
                        static: Mapping[Path, str], out: _Source) -> tuple[str | None, bool]:
    """(Python expression of one part of the request, whether it may be DROP); None: a
    ``$when`` object with no lead value that renders empty (never there). A dynamic leaf is
    its slot's expression; what holds no dynamic leaf is filled now and shared."""
    if isinstance(spec, str):
        return (slots[at], False) if at in slots else (out.const(static[at]), False)
    if not isinstance(spec, (dict, list)):
        return out.const(spec), False
    if at not in dynamic:
        filled = _fill(spec, at, static)
        return (None, True) if filled is _DROP else (out.const(filled), False)
    if isinstance(spec, dict):
        parts, may_drop = [], False
        for k, v in spec.items():
            if k == WHEN:
                continue
            e, drops = _section_expression(v, at + (k,), slots, dynamic, static, out)
            if e is None:
                continue
            parts.append(f"{out.const(k)}: {e}")
            may_drop = may_drop or drops
        made = "{" + ", ".join(parts) + "}"
        if may_drop:
            made = f"_kept_items({made})"
        if WHEN in spec:
            when, _ = _section_expression(spec[WHEN], at + (WHEN,), slots, dynamic, static, out)
            return f"(DROP if not {when}.strip() else {made})", True
        return made, False
    items = [_section_expression(v, at + (i,), slots, dynamic, static, out) for i, v in enumerate(spec)]
    made = "[" + ", ".join(e for e, _ in items if e is not None) + "]"
    if any(drops for e, drops in items if e is not None):
        made = f"_kept({made})"
    return made, False


def _kept(values: list[Any]) -> list[Any]:
    return [v for v in values if v is not _DROP]


def _kept_items(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not _DROP}


@one_step_init  # two to four are made per lead
@dataclass(frozen=True)
class Rendered:
    """One rendered request."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, Any]
    body_format: str
    body: Any
    # (the query table, that table as the URL writes it) when a compiled plan wrote it with the
    # table: the wire takes the text only for that very table (not a copy changed since)
    written: tuple[dict[str, Any], str] | None = field(default=None, compare=False, repr=False)

    def with_origin(self, new_origin: str | None) -> "Rendered":
        """The same request sent to another scheme://host:port (``--crm-url``)."""
        if not new_origin:
            return self
        return replace(self, url=retarget(self.url, new_origin))


def retarget(url: str, new_origin: str | None) -> str:
    """``url`` with its scheme://host:port replaced by ``new_origin``'s (none: as it is)."""
    if not new_origin:
        return url
    return _origin_of(new_origin) + url[len(_origin_of(url)):]


@lru_cache(maxsize=256)
def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

