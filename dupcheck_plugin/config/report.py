"""How ``dupcheck check`` shows its results: text for people, JSON for machines."""

from __future__ import annotations

import json
from typing import Sequence

from .checker import FileResult


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def text_report(results: Sequence[FileResult], verbose: bool = False) -> tuple[str, str]:
    """(stdout, stderr). Every problem as ``file:line:column::path: message``
    (best match first per file) over its line with a caret under the mistake,
    then the warnings, then the summary."""
    out: list[str] = [line for r in results for p in r.problems for line in [str(p), *r.excerpt(p)]]
    warnings = [w for r in results for w in r.warnings]
    out += [f"warning: {w}" for w in warnings]
    if verbose:
        out += [f"ok: {r.file} ({r.kind})" for r in results if r.ok]
    invalid = [r for r in results if not r.ok]
    tail = f", {_plural(len(warnings), 'warning')}" if warnings else ""
    err: list[str] = []
    if invalid:
        n_problems = sum(len(r.problems) for r in invalid)
        err.append(f"{_plural(len(results), 'file')} checked, {len(invalid)} invalid "
                   f"({_plural(n_problems, 'problem')}){tail}")
    else:
        out.append(f"ok: {_plural(len(results), 'file')} checked{tail}")
    return _lines(out), _lines(err)


def json_report(results: Sequence[FileResult]) -> str:
    doc = {"ok": all(r.ok for r in results), "files": [r.as_json() for r in results]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)
