"""When has a pipeline drained, and when has it stopped draining? Pure logic, no broker.

:func:`scv.runner.wait_drained` reads the consumer group's lag on every stage input a few
times a second and hands each reading to a :class:`DrainWatch`, which decides:

* **drained**: the total lag has been 0 for ``settle`` seconds (zero once is not enough: a
  stage may be about to produce to the next topic);
* **stalled**: the work stopped going down. Progress means a new *lowest* lag: the total over
  all topics, or one topic's own, below anything seen before. Offsets that move are not
  progress: a message handed round in a loop is consumed and committed over and over while
  the lag never gets lower. So is work that piles up (a stage produces more than it
  consumes). After ``stall`` seconds without a new lowest the wait gives up;
* **timed out**: ``timeout`` seconds have passed, progress or not.

Giving up raises :class:`DrainTimeout`, whose message names every topic that still has lag,
how much, and whether that lag moved, e.g.::

    not drained: no progress for 60 s (after 75 s): profiles.events.v1 lag 412 (moving;
    lowest 398, 55 s ago; partition 3: 400, partition 5: 12), the 6 other inputs at 0

"unchanged for 60 s" instead of "moving" means that nobody consumes (or commits) the topic.

A reading that failed (the broker timed a request out while the group rebalanced) is no
reading: it does not end the wait, it only makes no progress.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class DrainTimeout(TimeoutError):
    """A drain wait gave up: no progress for the stall period, or the overall timeout.

    ``lags`` is the last lag reading per topic (empty when none succeeded); ``logs`` are
    worker log files worth reading, which the message names when set.
    """

    def __init__(self, message: str, lags: Mapping[str, int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.lags = dict(lags or {})
        self.logs: list[Path] = []

    def __str__(self) -> str:
        if not self.logs:
            return self.message
        noun = "log" if len(self.logs) == 1 else "logs"
        return f"{self.message}; worker {noun}: {', '.join(str(p) for p in self.logs)}"


class Verdict(Enum):
    WAITING = "waiting"
    DRAINED = "drained"
    STALLED = "stalled"
    TIMED_OUT = "timed out"


@dataclass(slots=True)
class _Topic:
    lag: int = 0
    partitions: dict[int, int] = field(default_factory=dict)
    lowest: int | None = None
    lowest_at: float = 0.0
    changed_at: float = 0.0
    last_lag: int = 0  #: the latest lag above 0 (a topic at 0 now may have had some)
    last_lag_at: float | None = None


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


class DrainWatch:
    """Lag readings in (with the time each was taken), a :class:`Verdict` out.

    Times are in seconds on any monotonic clock; ``start`` is when the wait began.
    """

    def __init__(
        self,
        topics: Iterable[str],
        *,
        settle: float,
        stall: float,
        timeout: float,
        start: float,
    ) -> None:
        self.settle = settle
        self.stall = stall
        self.timeout = timeout
        self.start = start
        self.topics = {t: _Topic() for t in topics}
        self.readings = 0
        self.lowest_total: int | None = None
        self.progress_at = start  #: when the lag last reached a new lowest (or the start)
        self.zero_since: float | None = None  #: since when the total lag has been 0
        self.error: str | None = None  #: why the latest reading failed (None: it did not)
        self.failed_since: float | None = None

    @property
    def total(self) -> int:
        return sum(t.lag for t in self.topics.values())

    def observe(self, now: float, lags: Mapping[tuple[str, int], int]) -> Verdict:
        """One reading: the group's lag per (topic, partition). Partitions of the watched
        topics that are missing from it count as 0."""
        self.readings += 1
        self.error = self.failed_since = None
        per_topic: dict[str, dict[int, int]] = {name: {} for name in self.topics}
        for (topic, partition), lag in lags.items():
            if topic in per_topic:
                per_topic[topic][partition] = lag
        progress = False
        for name, parts in per_topic.items():
            track = self.topics[name]
            lag = sum(parts.values())
            if self.readings == 1 or lag != track.lag:
                track.changed_at = now
            track.lag, track.partitions = lag, parts
            if lag > 0:
                track.last_lag, track.last_lag_at = lag, now
            if track.lowest is None or lag < track.lowest:
                progress = True
                track.lowest, track.lowest_at = lag, now
        total = self.total
        if self.lowest_total is None or total < self.lowest_total:
            progress = True
            self.lowest_total = total
        if progress:
            self.progress_at = now
        if total == 0:
            self.zero_since = now if self.zero_since is None else self.zero_since
            if now - self.zero_since >= self.settle:
                return Verdict.DRAINED
        else:
            self.zero_since = None
        return self._deadline(now)

    def failed(self, now: float, error: str) -> Verdict:
        """A reading that could not be taken: no progress, and no end of the wait by itself."""
        self.error = error
        self.failed_since = now if self.failed_since is None else self.failed_since
        return self._deadline(now)

    def _deadline(self, now: float) -> Verdict:
        if now - self.start >= self.timeout:
            return Verdict.TIMED_OUT
        if now - self.progress_at >= self.stall:
            return Verdict.STALLED
        return Verdict.WAITING

    def describe(self, now: float) -> str:
        """One line: why the wait gave up and where the lag is."""
        elapsed = now - self.start
        if elapsed >= self.timeout:
            head = f"not drained after {_s(self.timeout)} (the timeout)"
        else:
            still = _s(now - self.progress_at)
            head = f"not drained: no progress for {still} (after {_s(elapsed)})"
        if self.readings == 0:
            return f"{head}: could not read the consumer lag: {self.error}"
        lagging = [(n, t) for n, t in self.topics.items() if t.lag > 0]
        lagging.sort(key=lambda item: -item[1].lag)
        parts = [f"{name} lag {track.lag} ({self._detail(track, now)})" for name, track in lagging]
        recent = [  # at 0 now, but not for long: lag comes and goes there
            (n, t)
            for n, t in self.topics.items()
            if t.lag == 0 and t.last_lag_at is not None and now - t.last_lag_at < self.stall
        ]
        parts += [
            f"{name} lag 0 (comes and goes: {t.last_lag} {_s(now - (t.last_lag_at or now))} ago)"
            for name, t in recent
        ]
        named = {n for n, _ in recent}
        idle = [n for n, t in self.topics.items() if t.lag == 0 and n not in named]
        if not parts:
            parts.append("every input at 0, but not for the settle time")
        elif len(idle) <= 2:
            parts += [f"{name} lag 0" for name in idle]
        else:
            parts.append(f"the {len(idle)} other inputs at 0")
        line = f"{head}: {', '.join(parts)}"
        if self.error is not None and self.failed_since is not None:
            line += f"; lag unreadable for the last {_s(now - self.failed_since)}: {self.error}"
        return line

    def _detail(self, track: _Topic, now: float) -> str:
        still = now - track.changed_at
        text = f"unchanged for {_s(still)}" if still >= 1.0 else "moving"
        if track.lowest is not None and track.changed_at > track.lowest_at:
            text += f"; lowest {track.lowest}, {_s(now - track.lowest_at)} ago"
        if len(track.partitions) > 1:
            behind = sorted(
                ((p, lag) for p, lag in track.partitions.items() if lag > 0),
                key=lambda item: (-item[1], item[0]),
            )
            shown = ", ".join(f"partition {p}: {lag}" for p, lag in behind[:4])
            more = f" and {len(behind) - 4} more" if len(behind) > 4 else ""
            text += f"; {shown}{more}"
        return text

    def exception(self, now: float) -> DrainTimeout:
        return DrainTimeout(self.describe(now), {n: t.lag for n, t in self.topics.items()})
