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


# What is known to be stored for one visitor, as a plain tuple of ints (the garbage collector stops
# tracking those, so the remembered visitors add nothing to its full collections): the state row
# (first_ts, mask), and the period rows of the latest hour and day seen, each as (period, bit mask of
# event types, ANY_BIT for "*"). The period of a kind is at 2 + 2 * SLOT[kind], its bits right after.
VisitorMemo = tuple[int, int, int, int, int, int]
SLOT = {kind: 2 + 2 * i for i, kind in enumerate(PERIODS)}


def memo_of(first_ts: int, mask: int) -> VisitorMemo:
    return (first_ts, mask, -1, 0, -1, 0)


def covers_state(memo: VisitorMemo, first_ts: int, mask: int) -> bool:
    """True when a batch can change nothing in the state (no earlier event, no new type)."""
    return memo[0] <= first_ts and mask & ~memo[1] == 0


def period_bits(memo: VisitorMemo | None, slot: int, period: int) -> int:
    """The event types (and ANY_BIT) whose rows of this period (of the kind at `slot`) are known stored."""
    return 0 if memo is None or memo[slot] != period else memo[slot + 1]


def saw_period(memo: VisitorMemo, kind: str, period: int, bit: int) -> VisitorMemo:
    """The memo once the period row is known to be stored (only the latest period of a kind is kept)."""
    slot = SLOT[kind]
    if period < memo[slot]:
        return memo
    bits = memo[slot + 1] | bit if period == memo[slot] else bit
    return (*memo[:slot], period, bits, *memo[slot + 2:])


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
        keys: set[tuple] = set()
        add = keys.add
        sizes = [(kind, size, SLOT[kind]) for kind, size in PERIODS.items()]
        for experiment, variant, event_type, visitor_id, ts in rows:
            memo = get((experiment, variant, visitor_id))
            bit = EVENT_BITS.get(event_type)  # a registered type has no bit here: always looked up
            for kind, size, slot in sizes:
                period = ts - ts % size
                seen = period_bits(memo, slot, period)
                if bit is None or not seen & bit:
                    add((experiment, variant, visitor_id, event_type, kind, period))
                if not seen & ANY_BIT:
                    add((experiment, variant, visitor_id, ANY_TYPE, kind, period))
        return keys

    def unknown_states(self, states: dict[tuple, tuple[int, int]]) -> dict[tuple, tuple[int, int]]:
        get = self.visitors.get
        return {k: v for k, v in states.items() if (memo := get(k)) is None or not covers_state(memo, *v)}

    def remember(self, states: dict[tuple, tuple[int, int]], periods: Iterable[tuple]) -> None:
        """After commit: the visitors' stored states, and period rows now known to be stored."""
        get = self.visitors.get
        memos = {key: memo_of(first_ts, mask) if (memo := get(key)) is None else (first_ts, mask, *memo[2:])
                 for key, (first_ts, mask) in states.items()}
        for experiment, variant, visitor_id, event_type, kind, period in periods:
            bit = ANY_BIT if event_type == ANY_TYPE else EVENT_BITS.get(event_type)
            if bit is None:
                continue
            key = (experiment, variant, visitor_id)
            memo = memos.get(key) or get(key)
            if memo is not None:
                memos[key] = saw_period(memo, kind, period, bit)
        for key, memo in memos.items():
            self.visitors.put(key, memo)
