"""A producer stand-in for the replay unit tests: it keeps what it is given.

The broker side of replay is the integration tier's (tests/integration/test_operations.py);
these tests are about reading files, progress and the drop folder's bookkeeping.
"""

from __future__ import annotations

from typing import Any


class Recorder:
    def __init__(self, undelivered: int = 0) -> None:
        self.values: list[bytes] = []
        self.undelivered = undelivered  # what flush() reports as never delivered

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, *, on_delivery: Any = None
    ) -> None:
        self.values.append(value)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        return self.undelivered
