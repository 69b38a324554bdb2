"""Tables without RocksDB's write-ahead log: a clean close keeps everything; a crash keeps a
consistent prefix, so the checkpoint never claims writes the database does not hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scv.settings import Settings
from scv.streams.state import CHECKPOINT, Table, rocksdb_options

CRASH = """
import os, sys
from pathlib import Path
from scv.settings import Settings
from scv.streams.state import CHECKPOINT, Table, rocksdb_options
table = Table("t", 1, None, Path(sys.argv[1]), rocksdb_options(Settings()))
part = table.open(0)
entries = {b"k%d" % i: b"v" for i in range(100)}
entries[CHECKPOINT] = b"100"  # as a commit applies them: data and checkpoint in one batch
table.apply(part, entries)
os._exit(9)  # no close, no flush: what only lived in the memtable is gone
"""


def _table(root: Path) -> Table:
    return Table("t", 1, "t-changelog", root, rocksdb_options(Settings()))


def test_a_closed_table_reopens_with_its_writes_and_checkpoint(tmp_path: Path) -> None:
    table = _table(tmp_path)
    part = table.open(0)
    table.apply(part, {b"a": b"1", b"b": b"2", CHECKPOINT: b"42"})
    table.close_all()

    reopened = _table(tmp_path)
    again = reopened.open(0)
    assert (again.get(b"a"), again.get(b"b")) == (b"1", b"2")
    assert reopened.checkpoint_of(0) == 42


def test_a_crash_loses_the_checkpoint_with_the_writes_it_covers(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], check=False)
    assert done.returncode == 9
    table = _table(tmp_path)
    part = table.open(0)
    held = sum(part.get(b"k%d" % i) is not None for i in range(100))
    if table.checkpoint_of(0) == 100:
        assert held == 100  # the checkpoint survived, so must everything before it
    else:
        assert (table.checkpoint_of(0), held) == (0, 0)  # replay from the start restores it
