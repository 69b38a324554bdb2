"""``scv resolve --diff --from-file``: offline input, the RocksDB scratch store, and guards
that keep the command away from the worker's state."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from examples import ev

from scv.cli import main
from scv.domain.governance import Rules
from scv.domain.graph import MappingStore
from scv.domain.resolver import DictStore
from scv.domain.rulediff import replay
from scv.resolvediff import RdictMap, decode, scratch_stores

PHONE = "+447700900001"
RULES = """
identifiers:
  email: {max_per_profile: 5, priority: 90}
  phone: {max_per_profile: 3, priority: 80}
"""


def history() -> list[bytes]:
    events = [
        ev("web", "page_view", 1, [("email", "jane@x.test"), ("phone", PHONE)], event_id="a"),
        ev("web", "page_view", 2, [("email", "john@x.test"), ("phone", PHONE)], event_id="b"),
        ev("web", "page_view", 3, [("email", "john@x.test")], event_id="c"),
    ]
    return [orjson.dumps(e.to_dict()) for e in events]


def test_undecodable_lines_are_counted_and_skipped() -> None:
    no_time = orjson.loads(history()[0]) | {"event_id": "z", "ts": "nan"}
    bad = [b"{", b'{"event_id": "x"}', None, orjson.dumps(no_time)]
    loaded = decode([*history(), *bad], ["f"])
    assert (loaded.records, loaded.undecodable, len(loaded.events)) == (7, 4, 3)
    assert loaded.events[0].traits == {} and loaded.events[0].payload == {}


def test_rocksdb_store_replays_like_the_dict_store(tmp_path: Path) -> None:
    events = decode(history(), ["f"]).events
    owners, nodes = RdictMap(tmp_path / "owners"), RdictMap(tmp_path / "nodes")
    try:
        got = replay(events, Rules.default(), MappingStore(owners, nodes)).outcomes
    finally:
        owners.close()
        nodes.close()
    assert got == replay(events, Rules.default(), DictStore()).outcomes


def test_scratch_stores_leave_nothing_and_avoid_the_worker_state(tmp_path: Path) -> None:
    with scratch_stores("rocksdb", tmp_path / "scratch", tmp_path / "state") as stores:
        stores[0].set_owner("email:a@x.test", "p_1")
        assert stores[0].get_owner("email:a@x.test") == "p_1"
        assert stores[1].get_owner("email:a@x.test") is None
    assert list((tmp_path / "scratch").iterdir()) == []
    with (
        pytest.raises(ValueError, match="inside the worker's state"),
        scratch_stores("rocksdb", tmp_path / "state" / "x", tmp_path / "state"),
    ):
        pass


def test_cli_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "events.jsonl").write_bytes(b"\n".join([*history(), b"", b"junk"]) + b"\n")
    (tmp_path / "base.yaml").write_text(RULES)
    (tmp_path / "new.yaml").write_text(RULES + f'blocked:\n  exact: ["phone:{PHONE}"]\n')
    argv = [
        "resolve",
        "--from-file",
        str(tmp_path / "events.jsonl"),
        "--baseline-rules",
        str(tmp_path / "base.yaml"),
        "--rules",
        str(tmp_path / "new.yaml"),
        "--diff",
        "--state-dir",
        str(tmp_path / "scratch"),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4 records from" in text and "(1 undecodable, 0 duplicate event ids skipped)" in text
    assert "3 events: profiles 1 -> 2" in text
    assert f"because: phone:{PHONE} dropped (blocked) on 2 events, first a" in text
    assert list((tmp_path / "scratch").iterdir()) == []

    assert main([*argv, "--store", "memory", "--json", str(tmp_path / "d.json")]) == 0
    assert json.loads(capsys.readouterr().out)["diff"]["splits"][0]["events"] == 3

    assert main(argv[:-3]) == 2  # without --diff
    assert "only --diff" in capsys.readouterr().err
