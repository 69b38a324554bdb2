"""The suppression list (``scv.domain.suppression``) and the purge of erased values from
RocksDB files (``scv.streams.state``)."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from scv.domain.suppression import (
    CHECK_KEY,
    Hasher,
    SuppressionKeyMismatch,
    SuppressionList,
    digest,
)
from scv.settings import Settings
from scv.streams.state import Partition, Table, rocksdb_options

SECRET = b"test-secret"
ALICE = "email:alice.erased@acme-corp.co.uk"
COOKIE = "anonymous_id:ck-alice"


def test_entries_are_hmac_sha256_of_the_key_and_hold_no_value() -> None:
    table: dict[bytes, bytes] = {}
    listed = SuppressionList(table, SECRET)
    assert listed.add([ALICE, COOKIE], "erase-1", 5000.0) == 2
    assert listed.add([ALICE], "erase-2", 6000.0) == 0  # already listed
    assert digest(SECRET, ALICE) == hmac.new(SECRET, ALICE.encode(), "sha256").digest()
    assert digest(b"other", ALICE) != digest(SECRET, ALICE)
    assert set(table) == {digest(SECRET, ALICE), digest(SECRET, COOKIE), CHECK_KEY}
    stored = b"".join([*table, *table.values()])
    assert b"alice" not in stored and b"ck-alice" not in stored


@pytest.mark.parametrize("secret", [b"", b"k", b"x" * 64, b"long" * 40])
def test_the_fast_hasher_is_hmac_sha256(secret: bytes) -> None:
    hasher = Hasher(secret)
    for key in (ALICE, COOKIE, "phone:+447700900123", "email:\u00e9l\u00e8ve@acme-corp.co.uk"):
        assert hasher(key) == digest(secret, key)


def test_matching_finds_listed_keys_and_the_commands_that_listed_them() -> None:
    listed = SuppressionList({}, SECRET)
    assert listed.matching([ALICE]) == {}  # empty list: nothing matches (and nothing hashed)
    listed.add([ALICE], "erase-1", 5000.0)
    found = listed.matching([COOKIE, ALICE, "email:someone.else@acme-corp.co.uk"])
    assert list(found) == [ALICE]
    assert listed.commands(found.values()) == ["erase-1"]
    assert len(listed) == 1


def test_a_new_list_over_the_same_table_knows_every_entry() -> None:
    """What a restarted worker sees once the table is restored from its changelog."""
    table: dict[bytes, bytes] = {}
    SuppressionList(table, SECRET).add([ALICE], "erase-1", 5000.0)
    again = SuppressionList(dict(table), SECRET)
    assert list(again.matching([ALICE])) == [ALICE]


def test_another_key_is_refused_rather_than_letting_erased_people_back() -> None:
    table: dict[bytes, bytes] = {}
    SuppressionList(table, SECRET).add([ALICE], "erase-1", 5000.0)
    with pytest.raises(SuppressionKeyMismatch, match="SCV_SUPPRESSION_KEY"):
        SuppressionList(table, b"a-new-secret")
    SuppressionList({}, b"a-new-secret")  # an empty list takes any key


def _commit(table: Table, part: Partition) -> None:
    """What a commit does to a partition's writes: stage, seal, apply."""
    part.stage()
    part.sealed, part.staged = part.staged, {}
    table.apply(part, part.sealed)
    part.sealed = {}


def test_purged_keys_leave_the_rocksdb_files(tmp_path: Path) -> None:
    """A delete only hides a value; a purged key's old bytes are gone from every file (log,
    tables and MANIFEST, which names each table file's first and last key) once the write
    is applied."""
    table = Table("t", 1, None, tmp_path, rocksdb_options(Settings()))
    part = table.open(0)
    for i in range(500):
        part[f"k{i:04}".encode()] = b"filler" * 20
    part[b"email:alice.erased@acme-corp.co.uk"] = b"SECRET-PROFILE-OF-ALICE"
    _commit(table, part)
    part.db.flush(True)

    def files_holding(needle: bytes) -> list[str]:
        return [p.name for p in tmp_path.rglob("*") if p.is_file() and needle in p.read_bytes()]

    assert files_holding(b"SECRET-PROFILE-OF-ALICE")
    del part[b"email:alice.erased@acme-corp.co.uk"]
    _commit(table, part)  # no purge asked: the old value is still on disk
    assert files_holding(b"SECRET-PROFILE-OF-ALICE")

    # Her key sorts first: the MANIFEST names it as a table file's boundary.
    assert any(name.startswith("MANIFEST") for name in files_holding(b"alice.erased"))

    part[b"email:alice.erased@acme-corp.co.uk"] = b"x"
    del part[b"email:alice.erased@acme-corp.co.uk"]
    part.purge.add(b"email:alice.erased@acme-corp.co.uk")
    part.purge.add(b"k0002")  # written by a later commit: purged only once that applies
    _commit(table, part)
    assert files_holding(b"SECRET-PROFILE-OF-ALICE") == []
    assert files_holding(b"alice.erased") == []
    assert part.get(b"k0001") == b"filler" * 20  # the rest is untouched
    assert part.purge == {b"k0002"}
    table.close_all()
