"""Hostile values that pass the schema: what the fuzzer (tests/stages/test_fuzz_stages.py)
found, pinned down one by one.

A DLQ reason is read by people and lands in logs: it must not repeat the sender's data,
keys included.
"""

from __future__ import annotations

import orjson
import pytest
from examples import variant

from scv.domain.commands import parse_command
from scv.domain.normalize import InvalidEvent, normalize


@pytest.mark.parametrize(
    ("source", "event"),
    [
        ("web", variant("web", "web-1", page={"url": "u", "jane.doe@example.com": 1})),
        ("web", variant("web", "web-1", traits={"Jane Doe": "x"})),
    ],
)
def test_schema_reasons_do_not_name_unknown_keys(source: str, event: dict[str, object]) -> None:
    """fastjsonschema lists unknown keys in its message; a key may be personal data."""
    with pytest.raises(InvalidEvent) as info:
        normalize(source, orjson.dumps(event))
    assert info.value.reason.endswith("must not contain unknown properties")
    assert "jane" not in info.value.reason.lower()


def test_command_schema_reasons_do_not_name_unknown_keys() -> None:
    command = {
        "command_id": "c-1",
        "type": "unmerge",
        "timestamp": 0,
        "subject": {"profile_id": "p_1"},
        "identifiers": [{"type": "email", "value": "a@b.example"}],
        "jane.doe@example.com": True,
    }
    with pytest.raises(InvalidEvent) as info:
        parse_command(orjson.dumps(command))
    assert info.value.reason == "schema: data must not contain unknown properties"
