"""The due-time index: what the due-cart check finds, without scanning every open cart."""

from __future__ import annotations

from scv.streams.due import DueIndex
from scv.streams.state import Partition


def test_built_from_the_table_and_finds_only_what_is_due() -> None:
    part = Partition({b"a": b"10.0", b"b": b"30.0", b"c": b"20.0"})
    index = DueIndex(part)
    assert index.due(5.0) == []
    assert index.due(20.0) == [b"a", b"c"]  # earliest first
    assert index.due(20.0) == [b"a", b"c"]  # still due until a step moves them


def test_a_moved_due_time_replaces_the_old_one() -> None:
    part = Partition({})
    index = DueIndex(part)
    index.set(b"a", 10.0)
    index.set(b"a", 50.0)  # the cart was touched again: due later
    assert index.due(20.0) == []
    assert index.due(60.0) == [b"a"]
    assert part.get(b"a") == b"50.0"  # the table holds the same time (for recovery)


def test_clearing_writes_the_table_only_for_what_was_there() -> None:
    part = Partition({b"a": b"10.0"})
    index = DueIndex(part)
    index.set(b"nobody", None)  # a profile without a cart: no delete, no changelog message
    assert part.pending == {}
    index.set(b"a", None)
    assert part.pending == {b"a": None}
    assert index.due(100.0) == []
