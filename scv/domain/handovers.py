"""Hand-over storms: one profile handed state again and again within a short time.

A profile's state moves between partitions in ``absorb`` messages (a merged-away profile's
state handed to its survivor) and ``adopt`` messages (a split part's state handed to the new
part); a merged-away id passes what still reaches it on to its survivor. Normal traffic hands
a profile over a few times in its life: in the 20k-event demo no profile received more than
4 hand-overs in the whole run. A bug once made two profiles send each other ``adopt``
messages forever, and nothing showed it: every message was valid and applied.

:class:`HandoverWatch` is the safety net's rule. It counts the hand-overs each profile
receives within a sliding window and reports a :class:`Storm` when a profile passes the bound,
then stays quiet about that profile for one window, so a loop that goes on is reported once
per window, not once per message. It only observes: the stage applies every message as
before (a false alarm must never cost data, and a loop is a bug to fix, not traffic to drop).

Time is passed in (the stage's clock), so tests decide what "within the window" means. No
Kafka import: the stage (``scv.streams.profiles``) logs, counts and audits what it reports.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

#: Profiles tracked at most. A worker sees millions of profiles, so the least recently
#: handed-over one is forgotten beyond this; a looping profile is handed over all the time
#: and stays at the recent end. Entries older than the window are dropped before that.
CAPACITY = 10_000

#: Peer ids kept per profile (the most recent ones): enough to name the other side of a
#: loop, bounded so that a profile absorbing many others does not grow without end.
MAX_PEERS = 8


@dataclass(frozen=True, slots=True)
class Storm:
    """A profile handed over more than ``bound`` times within ``window_s`` seconds.

    ``count`` hand-overs were received from ``since`` to ``at`` (both in the caller's
    clock): on the first report of a profile, the ``bound + 1`` within the window; on a
    later one, those since the previous report (a loop that goes on shows its rate).
    ``peers``: the other profile ids involved, most recent last (the absorbed id of an
    absorb, the origin of an adopt, the survivor a message was forwarded to). Ids only.
    """

    profile_id: str
    peers: tuple[str, ...]
    count: int
    since: float
    at: float
    bound: int
    window_s: float


class _Track:
    """One profile's recent hand-overs: the last ``bound + 1`` times are all the sliding
    window needs (more than ``bound`` within it iff the oldest of them is inside it)."""

    __slots__ = ("after_report", "peers", "quiet_until", "reported_at", "times")

    def __init__(self, bound: int) -> None:
        self.times: deque[float] = deque(maxlen=bound + 1)
        self.peers: dict[str, None] = {}
        self.reported_at: float | None = None
        self.quiet_until = float("-inf")
        self.after_report = 0


class HandoverWatch:
    """Counts hand-overs per receiving profile id; reports storms (see the module docstring).

    Memory is bounded: at most ``capacity`` profiles, each with ``bound + 1`` times and
    ``MAX_PEERS`` peer ids. Profiles are kept in least-recently-handed-over order, so those
    with nothing in the window are dropped from the old end as time moves on (amortised
    O(1) per call), and the least recent goes when ``capacity`` is reached.
    """

    def __init__(self, bound: int, window_s: float, capacity: int = CAPACITY) -> None:
        if bound < 1 or window_s <= 0 or capacity < 1:
            raise ValueError("bound and capacity must be >= 1 and window_s > 0")
        self.bound, self.window_s, self.capacity = bound, window_s, capacity
        self._tracks: OrderedDict[str, _Track] = OrderedDict()

    def __len__(self) -> int:
        """How many profiles are tracked now."""
        return len(self._tracks)

    def note(self, profile_id: str, peers: Iterable[object], now: float) -> Storm | None:
        """``profile_id`` received a hand-over at ``now``, involving ``peers`` (values that
        are not non-empty strings, and the profile itself, are left out); the storm to
        report, if this one passes the bound and the profile was not reported within the
        last window."""
        tracks = self._tracks
        self._prune(now)
        track = tracks.get(profile_id)
        if track is None:
            track = tracks[profile_id] = _Track(self.bound)
            if len(tracks) > self.capacity:
                tracks.popitem(last=False)  # the least recently handed-over profile
        else:
            tracks.move_to_end(profile_id)
        times = track.times
        times.append(now)
        track.after_report += 1
        known = track.peers
        for peer in peers:
            if isinstance(peer, str) and peer and peer != profile_id:
                known.pop(peer, None)  # re-inserted: now the most recent
                known[peer] = None
                if len(known) > MAX_PEERS:
                    del known[next(iter(known))]
        if len(times) <= self.bound or now - times[0] > self.window_s:
            return None
        if now < track.quiet_until:
            return None  # reported within the last window already
        if track.reported_at is None:
            count, since = len(times), times[0]
        else:
            count, since = track.after_report, track.reported_at
        track.reported_at, track.quiet_until, track.after_report = now, now + self.window_s, 0
        return Storm(profile_id, tuple(known), count, since, now, self.bound, self.window_s)

    def _prune(self, now: float) -> None:
        """Forget profiles with no hand-over within the window (oldest first: once one is
        recent enough, so are all after it). Their quiet time has run out as well."""
        tracks, horizon = self._tracks, now - self.window_s
        while tracks:
            oldest = next(iter(tracks.values()))
            if oldest.times[-1] >= horizon:
                return
            tracks.popitem(last=False)
