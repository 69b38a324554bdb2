"""The profile API's pieces that need no broker: partitioning, reads beside the stream loop,
the worker directory's choice of holder, and the page's static files."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import murmur2

from scv.kafka import partition_for
from scv.settings import Settings
from scv.streams.api import STATIC, Unavailable, advertised_url, read
from scv.streams.directory import Directory
from scv.streams.state import Table, rocksdb_options


def test_partition_for_is_the_java_clients_murmur2() -> None:
    for n in range(300):
        key = os.urandom(n % 41)
        for partitions in (1, 3, 4, 12):
            assert partition_for(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions


def test_read_sees_pending_writes_then_the_database_and_refuses_other_partitions(
    tmp_path: Path,
) -> None:
    table = Table("profiles", 4, None, tmp_path, rocksdb_options(Settings()))
    part = table.open(1)
    part[b"k"] = b"v1"
    assert read(table, 1, b"k") == b"v1"  # written by the batch, not staged yet
    part.stage()
    assert part.pending == {} and read(table, 1, b"k") == b"v1"
    part.sealed, part.staged = part.staged, {}  # a commit takes it
    assert read(table, 1, b"k") == b"v1"
    table.apply(part, part.sealed)
    part.sealed = {}
    assert read(table, 1, b"k") == b"v1"  # now from RocksDB
    del part[b"k"]
    assert read(table, 1, b"k") is None  # a pending delete hides the stored value
    with pytest.raises(Unavailable):
        read(table, 2, b"k")
    db = part.db
    table.close(1)
    with pytest.raises(Unavailable):
        read(table, 1, b"k")
    part.db = db  # a reader that took the partition just before the revoke closed it
    table.open_partitions[1] = part
    part.pending = {}
    with pytest.raises(Unavailable):
        read(table, 1, b"k")


def test_directory_sends_to_the_latest_claim_and_forgets_a_stopped_worker() -> None:
    directory = Directory(Settings(), "http://a:1", dict)

    def announce(url: str, holds: dict[str, list[int]] | None, offset: int) -> None:
        value = None if holds is None else orjson.dumps({"holds": holds, "ts": 0})
        directory._apply(url.encode(), value, offset)

    announce("http://a:1", {"identity-nodes": [0], "profiles": [0, 1]}, 0)
    announce("http://b:2", {"profiles": [2, 3]}, 1)
    assert directory.owner("identity-nodes", 0) == "http://a:1"
    assert directory.owner("profiles", 3) == "http://b:2"
    assert directory.owner("profiles", 9) is None
    # a crashed at 0; b took everything over and said so later: b's claim wins
    announce("http://b:2", {"identity-nodes": [0], "profiles": [0, 1, 2, 3]}, 2)
    assert directory.owner("profiles", 0) == "http://b:2"
    announce("http://b:2", None, 3)  # b stopped cleanly
    assert directory.owner("profiles", 2) is None
    assert directory.owner("profiles", 0) == "http://a:1"  # only a's stale claim is left
    assert set(directory.entries()) == {"http://a:1"}


def test_page_loads_nothing_from_elsewhere_and_never_parses_data_as_html() -> None:
    html = (STATIC / "index.html").read_text()
    script = (STATIC / "app.js").read_text()
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == ["/ui/app.css", "/ui/app.js"]
    assert "<script>" not in html and " style=" not in html  # the CSP forbids inline code
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "localStorage" not in script  # the token lives in this tab only (sessionStorage)


def test_the_advertised_url_is_one_peers_can_dial() -> None:
    assert advertised_url(Settings(web_port=7001)) == "http://127.0.0.1:7001"
    bound_everywhere = Settings(web_host="0.0.0.0", web_port=7001)
    assert advertised_url(bound_everywhere) == f"http://{socket.gethostname()}:7001"
    assert advertised_url(Settings(web_url="http://10.0.0.7:6066/")) == "http://10.0.0.7:6066"
