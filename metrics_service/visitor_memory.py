"""What one metrics_service process remembers having written for its recent visitors, so later
batches skip aggregate rows that are already stored (pure, in memory, per process)."""
from __future__ import annotations

from collections.abc import Iterable

from core.events import EVENT_BITS, EVENT_TYPES
from metrics_service.aggregates import ANY_TYPE, PERIODS, Counted

# How many visitors each process remembers it has written (see Known): enough to cover the few
# minutes in which one visitor's page view, click and signup arrive, at thousands of new visitors a
# minute per worker; a visitor forgotten costs one more look-up, never a wrong count.
MEMORY_VISITORS = 50_000
ANY_BIT = 1 << len(EVENT_TYPES)  # beside EVENT_BITS: "some event" in a period (the "*" rows of visitor_periods)


class Recent:
    """A bounded memory in two generations: entries written recently stay, older ones are dropped
    a generation at a time (an approximate LRU without a per-entry linked list)."""

    def __init__(self, limit: int):
        self.limit = max(2, limit)
        self._young: dict = {}
        self._old: dict = {}

    def get(self, key):
        value = self._young.get(key)
        return self._old.get(key) if value is None else value

    def __len__(self) -> int:
        return len(self._young) + sum(1 for key in self._old if key not in self._young)

    def put(self, key, value) -> None:
        self._young[key] = value
        if len(self._young) >= self.limit // 2:
            self._old, self._young = self._young, {}


class VisitorMemo:
    """What is known to be stored for one visitor: the state row, and the period rows of the
    latest hour and day seen (as bit masks of event types, ANY_BIT for "*")."""

    __slots__ = ("first_ts", "mask", "hour", "hour_bits", "day", "day_bits")

    def __init__(self, first_ts: int, mask: int):
        self.first_ts, self.mask = first_ts, mask
        self.hour = self.day = -1
        self.hour_bits = self.day_bits = 0

    def covers_state(self, first_ts: int, mask: int) -> bool:
        """True when a batch can change nothing in the state (no earlier event, no new type)."""
        return self.first_ts <= first_ts and mask & ~self.mask == 0

    def has_period(self, kind: str, period: int, bit: int) -> bool:
        if kind == "h":
            return self.hour == period and bool(self.hour_bits & bit)
        return self.day == period and bool(self.day_bits & bit)

    def saw_period(self, kind: str, period: int, bit: int) -> None:
        if kind == "h":
            if period > self.hour:
                self.hour, self.hour_bits = period, 0
            if period == self.hour:
                self.hour_bits |= bit
        else:
            if period > self.day:
                self.day, self.day_bits = period, 0
            if period == self.day:
                self.day_bits |= bit


class Known:
    """Rows one store has seen committed, per visitor, so later batches skip what is already there.

    Stored rows only ever grow (a period seen, an earlier first event, more event types), so a
    remembered period row is still there and a remembered state can only have moved further.
    Kept per store (per database), for the most recent `limit` visitors in an experiment and variant
    (about 350 bytes each, the visitor id included: 50,000 take about 17 MB)."""

    def __init__(self, limit: int = MEMORY_VISITORS):
        self.visitors = Recent(limit)

    def unknown_periods(self, rows: Iterable[Counted]) -> set[tuple]:
        """The visitor_periods rows these events need that are not known to be stored."""
        get = self.visitors.get
        keys = set()
        for experiment, variant, event_type, visitor_id, ts in rows:
            memo = get((experiment, variant, visitor_id))
            bit = EVENT_BITS.get(event_type)  # a registered type has no bit here: always looked up
            for kind, size in PERIODS.items():
                period = ts - ts % size
                for name, flag in ((event_type, bit), (ANY_TYPE, ANY_BIT)):
                    if memo is None or flag is None or not memo.has_period(kind, period, flag):
                        keys.add((experiment, variant, visitor_id, name, kind, period))
        return keys

    def unknown_states(self, states: dict[tuple, tuple[int, int]]) -> dict[tuple, tuple[int, int]]:
        get = self.visitors.get
        return {k: v for k, v in states.items() if (memo := get(k)) is None or not memo.covers_state(*v)}

    def remember(self, states: dict[tuple, tuple[int, int]], periods: Iterable[tuple]) -> None:
        """After commit: the visitors' stored states, and period rows now known to be stored."""
        for key, (first_ts, mask) in states.items():
            memo = self.visitors.get(key)
            if memo is None:
                self.visitors.put(key, VisitorMemo(first_ts, mask))
            else:
                memo.first_ts, memo.mask = first_ts, mask
                self.visitors.put(key, memo)
        for experiment, variant, visitor_id, event_type, kind, period in periods:
            memo = self.visitors.get((experiment, variant, visitor_id))
            bit = ANY_BIT if event_type == ANY_TYPE else EVENT_BITS.get(event_type)
            if memo is not None and bit is not None:
                memo.saw_period(kind, period, bit)
