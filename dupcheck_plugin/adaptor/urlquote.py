"""Query text as httpx writes it into a URL (``urllib.parse.quote_plus``'s rules).

Pure: the wire (:mod:`dupcheck_plugin.http.wire`) quotes a request's query with it, and a
compiled request plan quotes a lead's values with it while the template's own text was
quoted once, when the plan was compiled."""

from __future__ import annotations

import string

# quote_plus (httpx's query encoding): unreserved ASCII as is, a space as ``+``, any other
# character as the %XX of its UTF-8 bytes. Written as one str.replace per distinct character
# to quote (a SOQL query has about ten): C loops over the text, not a Python call per
# character (a batch's SOQL is 10,000 of them: 1,100 -> 140 us). ``%`` first and ``+`` before
# the space, as the replacements write both. Which characters an ASCII text holds is read
# from what bytes.translate leaves of it once the safe ones are deleted (one C pass): a set of
# the text's characters made one Python object per character (a lead's 250-character SOQL:
# 58,000 -> 35,000 instructions; a batch's 14,000: 1.7 -> 0.85 million).
_SAFE = frozenset(string.ascii_letters + string.digits + "_.-~")
_SAFE_BYTES = "".join(sorted(_SAFE)).encode("ascii")
_QUOTED = {chr(c): "+" if c == 0x20 else f"%{c:02X}" for c in range(128) if chr(c) not in _SAFE}
# each unsafe ASCII byte's (character, its quoting), in the order the replacements run
_ORDER = tuple(sorted((ord(ch) for ch in _QUOTED), key=lambda b: (b != 0x25, b != 0x2B, b)))
_REPLACE = {ord(ch): (ch, quoted) for ch, quoted in _QUOTED.items()}
_FEW = 64  # left over bytes up to this many: a set of them; more: ask for each unsafe byte (memchr)
# A text's unsafe characters, in order (what the translate leaves), fix its replacements; the
# leads of one template leave the same ones (a SOQL phone block: ' + , ( ) and spaces), so
# they are kept per residue rather than worked out per text (a phone block 20,400 -> 12,200
# instructions). Residues up to _FEW bytes, at most _RESIDUES of them (then it starts over).
_RESIDUES = 512
_replacements_of: dict[bytes, tuple[tuple[str, str], ...]] = {}


def quote_plus(text: str) -> str:
    if not text.isascii():
        return _quote_any(text)
    residue = text.encode("ascii").translate(None, _SAFE_BYTES)
    if not residue:
        return text
    pairs = _replacements_of.get(residue)
    if pairs is None:
        pairs = _replacements(residue)
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def _replacements(residue: bytes) -> tuple[tuple[str, str], ...]:
    """The replacements that quote a text whose unsafe characters are ``residue``'s."""
    if len(residue) > _FEW:  # a batch's query: not kept
        return tuple(_REPLACE[b] for b in _ORDER if b in residue)
    present = set(residue)
    pairs = tuple(_REPLACE[b] for b in _ORDER if b in present)
    if len(_replacements_of) >= _RESIDUES:
        _replacements_of.clear()
    _replacements_of[residue] = pairs
    return pairs


def _quote_any(text: str) -> str:
    """:func:`quote_plus` of a text with characters beyond ASCII."""
    unsafe = set(text)
    unsafe -= _SAFE
    for first in ("%", "+"):
        if first in unsafe:
            text = text.replace(first, _QUOTED[first])
            unsafe.discard(first)
    for ch in unsafe:
        # strict UTF-8: a lone surrogate raises UnicodeEncodeError, as quote_plus does
        text = text.replace(ch, _QUOTED.get(ch) or "".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    return text
