"""Where each key and value of a TOML file is: line and column by config path.

tomli gives the data but forgets where it came from; tree-sitter's TOML
grammar gives a concrete syntax tree with the position of every key and
value, even in a file with a syntax error. This module walks that tree once
and maps every path (``("nodes", 1, "config", "rules", 0, "match")``) to the
position of its key and of its value, with TOML's table semantics
(``[[nodes]]`` counts, ``[nodes.config]`` belongs to the last ``[[nodes]]``,
dotted keys nest).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import tomli
import tree_sitter
import tree_sitter_toml

Path = tuple[str | int, ...]

_SCALARS = {"string", "integer", "float", "boolean", "offset_date_time", "local_date_time",
            "local_date", "local_time"}


@dataclass(frozen=True)
class Span:
    """1-based line and column (in characters) of the start of a key or value, and its source text."""

    line: int
    column: int
    text: str

    def find(self, needle: str) -> "Span":
        """The span of ``needle``'s first occurrence inside this span's text (itself when absent)."""
        at = self.text.find(needle)
        if at < 0:
            return self
        before = self.text[:at]
        newlines = before.count("\n")
        column = at - before.rfind("\n") if newlines else self.column + at
        return Span(self.line + newlines, column, needle)


@lru_cache(maxsize=1)
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_toml.language()))


class Positions:
    """Positions of the keys and values of one TOML text."""

    def __init__(self, text: str):
        self.lines = text.split("\n")
        self._data = text.encode("utf-8")
        self.keys: dict[Path, Span] = {}
        self.values: dict[Path, Span] = {}
        self._aot: dict[Path, int] = {}  # array-of-tables path -> elements so far
        try:
            tree = _parser().parse(self._data)
        except Exception:  # a position is a nicety: never let it stop a check
            return
        self._document(tree.root_node)

    # --- lookup ---------------------------------------------------------------

    def locate(self, path: Path, *, key: bool = False, needle: str | None = None) -> Span:
        """The span of ``path``'s value (its key with ``key=True``), narrowed to
        ``needle`` when given; for a path that is not in the file, the nearest
        enclosing key or value that is; the file's start for the file as a whole."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            exact = n == len(path)
            first, second = (self.keys, self.values) if (key and exact) or not exact else (self.values, self.keys)
            span = first.get(prefix) or second.get(prefix)
            if span is not None:
                return span.find(needle) if needle and exact else span
        return Span(1, 1, self.line_text(1)[:1])  # the file as a whole

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""

    # --- the walk -------------------------------------------------------------

    def _span(self, node: tree_sitter.Node) -> Span:
        row, col = node.start_point
        line_start = self._data.rfind(b"\n", 0, node.start_byte) + 1
        column = len(self._data[line_start:line_start + col].decode("utf-8", "replace")) + 1
        return Span(row + 1, column, self._data[node.start_byte:node.end_byte].decode("utf-8", "replace"))

    def _document(self, root: tree_sitter.Node) -> None:
        table: Path = ()
        for child in root.named_children:
            if child.type == "pair":
                self._pair(child, table)
            elif child.type in ("table", "table_array_element"):
                table = self._table(child)
                for sub in child.named_children:
                    if sub.type == "pair":
                        self._pair(sub, table)

    def _table(self, node: tree_sitter.Node) -> Path:
        key_node = next((c for c in node.named_children if c.type.endswith("_key")), None)
        if key_node is None:
            return ()
        names = _key_names(key_node)
        path = self._resolve(names[:-1]) + (names[-1],)
        if node.type == "table_array_element":
            index = self._aot.get(path, 0)
            self._aot[path] = index + 1
            self.keys.setdefault(path, self._span(key_node))
            path = path + (index,)
        span = self._span(node)  # the whole [header] line
        header = Span(span.line, span.column, span.text.split("\n", 1)[0])
        self.keys.setdefault(path, header)
        self.values.setdefault(path, header)
        return path

    def _resolve(self, names: list[str]) -> Path:
        """``[a.b]`` where ``a`` is an array of tables means its last element."""
        path: Path = ()
        for name in names:
            path = path + (name,)
            if path in self._aot:
                path = path + (self._aot[path] - 1,)
        return path

    def _pair(self, node: tree_sitter.Node, table: Path) -> None:
        children = node.named_children
        if len(children) < 2:
            return
        key_node, value = children[0], children[-1]
        names = _key_names(key_node)
        path = table + tuple(names)
        key_span = self._span(key_node)
        for n in range(len(table) + 1, len(path) + 1):  # dotted keys: each level starts here
            self.keys.setdefault(path[:n], key_span)
        self._value(value, path)

    def _value(self, node: tree_sitter.Node, path: Path) -> None:
        self.values.setdefault(path, self._span(node))
        if node.type == "inline_table":
            for pair in node.named_children:
                if pair.type == "pair":
                    self._pair(pair, path)
        elif node.type == "array":
            items = [c for c in node.named_children if c.type != "comment"]
            for i, item in enumerate(items):
                self.keys.setdefault(path + (i,), self._span(item))
                self._value(item, path + (i,))


def _key_names(node: tree_sitter.Node) -> list[str]:
    if node.type == "dotted_key":
        return [name for c in node.named_children for name in _key_names(c)]
    text = node.text.decode("utf-8", "replace")
    if node.type == "quoted_key":
        try:  # TOML's own unescaping, by the parser that reads the data
            return list(tomli.loads(f"{text} = 0"))
        except tomli.TOMLDecodeError:
            return [text.strip("\"'")]
    return [text]
