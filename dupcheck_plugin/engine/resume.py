"""``run --resume`` continues the file an interrupted run was deciding, by row
number: the rows it decided are skipped. That is right only if the file still
holds the same leads at those rows; an edited or re-exported file (a row
inserted, the rows sorted) would have its leads skipped unseen and others
decided a second time. So before anything is decided, the decided rows are
read again and each one's phone is compared with the phone it was decided for.
Pure but for reading the items it is given.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from .sources import Item

_UNSEEN = object()


def changed_row(items: Iterable[Item], decided: Mapping[int, str | None],
                phone_of: Callable[[dict], str | None]) -> str | None:
    """The first decided row whose lead is no longer the one decided, said for a
    person; None when every decided row holds its lead still. ``decided``: row ->
    the E.164 phone it was decided for (None: it had none, so it cannot be told
    apart); ``phone_of``: a row's lead -> its E.164 phone, as intake reads it."""
    left = dict(decided)
    for row, lead, _error in items:
        if not left:
            return None
        want = left.pop(row, _UNSEEN)
        if want is _UNSEEN or want is None or lead is None:
            continue
        have = phone_of(lead)
        if have != want:
            return f"row {row} was decided for {want}, and the file has {have or 'no valid phone'} there now"
    if left:
        row = min(left)
        return f"row {row} was decided, and the file has no lead at row {row} now"
    return None
