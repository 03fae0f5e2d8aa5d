"""Where the shipped configs are, for a source checkout and an installed wheel alike."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .errors import DupcheckError

_PKG = Path(__file__).resolve().parent
_SINGULAR = {"adaptors": "adaptor", "workflows": "workflow"}


class AmbiguousName(DupcheckError, ValueError):
    """A name matches several files of its kind, or a file of the other kind."""


def shipped_dir(kind: str) -> Path:
    """``kind`` is one of schemas, adaptors, workflows, examples."""
    installed = _PKG / "_shipped" / kind
    if installed.is_dir():
        return installed
    return _PKG.parent / kind


def shipped_names(kind: str) -> list[str]:
    """Names of the shipped adaptors or workflows."""
    return sorted(p.stem for p in shipped_dir(kind).glob("*.toml"))


def find_named(kind: str, name_or_path: str, folders: Iterable[Path] = (Path("."),),
               suffix: str = ".toml") -> Path | None:
    """The ``kind`` (adaptors, workflows) file ``name_or_path`` names: a path
    as given (relative to the first of ``folders``), a file by name in one of
    ``folders``, else a shipped one. Only files of that kind count: an adaptor
    name never finds a workflow. Raises AmbiguousName when the name matches
    several files at the same level (the shipped ones come last) or a path
    names a file of the other kind."""
    from .config.kinds import file_kind  # config imports this module

    wanted = _SINGULAR.get(kind)
    folders = list(folders)
    levels = [folders, [shipped_dir(kind)]]
    other = []
    for level in levels:
        found: dict[Path, Path] = {}
        for folder in level:
            for candidate in (folder / name_or_path, folder / f"{name_or_path}{suffix}"):
                if not candidate.is_file() or candidate.resolve() in found:
                    continue
                actual = file_kind(candidate) if wanted else None
                if wanted and actual != wanted:
                    other.append((candidate, actual))
                    continue
                found[candidate.resolve()] = candidate
        if len(found) > 1:
            listed = ", ".join(str(p) for p in found.values())
            raise AmbiguousName(f"{name_or_path!r} names several {kind}: {listed}; name one by its path")
        if found:
            return next(iter(found.values()))
    if other and Path(name_or_path).suffix == suffix:  # a path, not a name: say what it is instead
        path, actual = other[0]
        what = f"a {actual}" if actual else f"neither an adaptor nor a workflow{_why_no_kind(path)}"
        raise AmbiguousName(f"{path} is {what}, not {'an' if wanted == 'adaptor' else 'a'} {wanted}")
    return None


def _why_no_kind(path: Path) -> str:
    """Why a file tells no kind, for its message: the syntax error that hid its
    ``[[nodes]]`` or ``[request]`` (a ``[[nodes]`` typo), or the tables it lacks."""
    from .config.problems import ConfigError
    from .config.toml import load_toml

    try:
        load_toml(path)
    except ConfigError as exc:
        return f" ({exc.problems[0].message})"
    return (" (no [[nodes]] as a workflow has, no [request] as an adaptor has, and no first line "
            "#:schema naming either schema)")
