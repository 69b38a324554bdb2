"""Re-used part encodings (``PartCodes``) must give the very bytes a full encoding gives.

The demo workload (events, merges with hand-overs, carts, consent) runs through the real
stages; every profile record the stage encodes is also encoded afresh, and the two must be
byte for byte the same. The re-use must actually have happened, or nothing was compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scv.bench.stages import run_once
from scv.domain.profile import ProfileState
from scv.streams.partcodes import PartCodes, Touched


def test_reused_part_encodings_write_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    encode = PartCodes.encode
    seen = {"records": 0, "reused_parts": 0}

    def checked(self: PartCodes, key: bytes, state: ProfileState, touched: Touched) -> bytes:
        fast = encode(self, key, state, touched)
        assert fast == encode(PartCodes(), key, state, None), key
        seen["records"] += 1
        if touched is not None:
            seen["reused_parts"] += sum(1 for anchor in state.parts if anchor not in touched)
        return fast

    monkeypatch.setattr(PartCodes, "encode", checked)
    run_once(8000, 11, 200, False, tmp_path)
    assert seen["records"] > 1000
    assert seen["reused_parts"] > 1000, "(almost) no part encoding was re-used"
