"""Which profiles of a partition have a cart past its window, without scanning them all.

The ``carts-due`` table holds each profile's earliest due time (for recovery, through its
changelog); this index keeps the same times in a heap, so the check between batches costs
what is due rather than every open cart. Entries are replaced lazily: a heap entry that no
longer matches the profile's current due time is dropped when it comes up.
"""

from __future__ import annotations

import heapq

from scv.streams.state import Partition


class DueIndex:
    """The due times of one ``carts-due`` partition (built from it when first needed)."""

    def __init__(self, part: Partition) -> None:
        self.part = part
        self.current: dict[bytes, float] = {key: float(raw) for key, raw in part.items()}
        self._heap = [(due, key) for key, due in self.current.items()]
        heapq.heapify(self._heap)

    def set(self, key: bytes, due: float | None) -> None:
        """Record (and write to the table) ``key``'s due time; None: nothing is due."""
        if due is None:  # the index mirrors the table: absent here means absent there
            if self.current.pop(key, None) is not None:
                self.part.pop(key, None)
            return
        if self.current.get(key) != due:
            self.current[key] = due
            heapq.heappush(self._heap, (due, key))
            self.part[key] = str(due).encode()

    def due(self, now: float) -> list[bytes]:
        """Keys due at ``now``; they stay recorded until :meth:`set` changes them."""
        found: dict[bytes, None] = {}
        heap, current = self._heap, self.current
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            if current.get(key) == due:
                found[key] = None
        for key in found:  # still due until a step moves or clears it
            heapq.heappush(heap, (current[key], key))
        return list(found)
