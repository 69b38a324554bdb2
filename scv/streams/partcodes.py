"""Profile states to table bytes, re-using the encodings of the parts a batch left alone.

A profile keeps one partial state per anchor identifier (``scv.domain.parts``), and those
partials are most of its bytes: about 70 % of the demo's profile records. An event changes
its anchor's part only, yet writing the state back encoded every part again; that was the
largest single cost of a profile write. :class:`PartCodes` keeps each part's bytes (an
``orjson.Fragment``, written into the record verbatim) with the part object they were made
from, and re-uses them while that same object is in the state and the batch's messages
cannot have changed it. The record's bytes are the same either way
(``tests/stages/test_part_codes.py``).
"""

from __future__ import annotations

from collections.abc import Set

import orjson

from scv.domain.profile import ProfileState

#: The anchors whose parts a batch may have changed, for one profile; None: any of them.
Touched = Set[str] | None
_NONE: frozenset[str] = frozenset()


class PartCodes:
    """The part encodings of one table partition's cached profiles (dropped with them)."""

    def __init__(self) -> None:
        self._codes: dict[bytes, dict[str, tuple[ProfileState, orjson.Fragment]]] = {}

    def encode(self, key: bytes, state: ProfileState, touched: Touched) -> bytes:
        old = self._codes.get(key) if touched is not None else None
        changed = touched if touched is not None else _NONE
        codes: dict[str, tuple[ProfileState, orjson.Fragment]] = {}
        for anchor, part in state.parts.items():
            code = old.get(anchor) if old is not None else None
            # ``is``: the entry holds the part, so its id cannot be taken by another object
            if code is None or code[0] is not part or anchor in changed:
                code = (part, orjson.Fragment(orjson.dumps(part.to_dict(copy=False))))
            codes[anchor] = code
        self._codes[key] = codes
        parts = {anchor: code[1] for anchor, code in codes.items()}
        return orjson.dumps(state.to_dict(copy=False, parts=parts))

    def drop(self, key: bytes) -> None:
        self._codes.pop(key, None)

    def __len__(self) -> int:
        return len(self._codes)
