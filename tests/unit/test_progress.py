"""The replay progress line: bytes read per format, the drawn line, the summary."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from recorder import Recorder

from scv.connectors import replay as replay_module
from scv.connectors.progress import Progress, human_bytes
from scv.connectors.replay import replay


def records(n: int) -> list[dict[str, Any]]:
    return [
        {"event_id": f"e{i}", "anonymous_id": f"ck-{i}", "note": "x" * (i % 50)} for i in range(n)
    ]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    elif path.suffix == ".csv":
        lines = ["event_id,anonymous_id,note"]
        lines += [f"{r['event_id']},{r['anonymous_id']},{r['note']}" for r in rows]
        path.write_text("\n".join(lines) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2000)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_bytes_read_grow_to_the_file_size(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "POLL_EVERY", 500)
    path = write(tmp_path / f"events{suffix}", records(12_000))
    calls: list[tuple[int, int]] = []

    n = replay([path], "raw.web.v1", Recorder(), progress=lambda r, b: calls.append((r, b)))

    size = path.stat().st_size
    assert n == 12_000
    assert calls[-1] == (12_000, size)
    done = [b for _, b in calls]
    assert done == sorted(done)  # never goes back
    assert 0 < done[len(done) // 2] < size  # and is in between half-way through
    assert [r for r, _ in calls[:-1]] == list(range(500, 12_001, 500))


def test_bytes_of_several_files_add_up(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", records(1500))
    b = write(tmp_path / "b.csv", records(1500))
    calls: list[tuple[int, int]] = []
    replay([a, b], "t", Recorder(), progress=lambda r, by: calls.append((r, by)))
    total = a.stat().st_size + b.stat().st_size
    assert calls[-1] == (3000, total)
    assert calls[1][1] > a.stat().st_size  # the second file counts on top of the first


def test_progress_line_and_summary() -> None:
    out = io.StringIO()
    bar = Progress("replay", total_bytes=1000, stream=out, tty=False, log_every_s=0.0)
    bar(250, 500)
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("replay  [############............]  50.0%  250 records")
    assert "rec/s" in line and "ETA 0:00:" in line
    summary = bar.close()
    assert summary.startswith("replay (1000 B): 250 records in ")
    assert out.getvalue().endswith(summary + "\n")


def test_progress_redraws_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    bar = Progress("x", total_bytes=None, stream=out, tty=True, redraw_s=0.0)
    bar(10, 0)
    bar(20, 0)
    bar.close()
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 3  # two redraws and the clear before the summary
    assert "20 records" in text and "%" not in text  # no total: no bar, no ETA
    assert text.endswith("\n") and text.count("\n") == 1


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (10, 1536, 5 * 2**20, 3 * 2**30)] == [
        "10 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]
