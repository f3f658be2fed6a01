"""What a worker remembers it has written, and what it therefore skips."""
from metrics_service.aggregates import ANY_TYPE, Counted, batch_states
from metrics_service.series import DAY_MS, HOUR_MS
from metrics_service.visitor_memory import SLOT, Known, Recent, covers_state, memo_of, period_bits, saw_period

T0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS  # midnight


def test_recent_keeps_the_latest_writes_within_its_limit():
    memory = Recent(10)
    for i in range(100):
        memory.put(i, str(i))
    assert len(memory) <= 10
    assert memory.get(99) == "99" and memory.get(95) == "95"
    assert memory.get(0) is None
    memory.put(3, "again")
    assert memory.get(3) == "again"


def test_memo_covers_a_state_only_when_nothing_would_change():
    memo = memo_of(first_ts=T0 + 100, mask=0b011)
    assert covers_state(memo, T0 + 100, 0b001)
    assert covers_state(memo, T0 + 500, 0b011)
    assert not covers_state(memo, T0 + 99, 0b001)  # an earlier first event
    assert not covers_state(memo, T0 + 500, 0b100)  # a new event type


def has_period(memo, kind, period, bit) -> bool:
    return bool(period_bits(memo, SLOT[kind], period) & bit)


def test_memo_keeps_the_latest_hour_and_day():
    memo = saw_period(memo_of(T0, 1), "h", T0 + HOUR_MS, 1)
    memo = saw_period(memo, "h", T0, 2)  # an older hour does not replace the latest
    assert has_period(memo, "h", T0 + HOUR_MS, 1)
    assert not has_period(memo, "h", T0, 2)
    memo = saw_period(memo, "h", T0 + HOUR_MS, 2)
    assert has_period(memo, "h", T0 + HOUR_MS, 2)
    memo = saw_period(memo, "h", T0 + 2 * HOUR_MS, 4)
    assert not has_period(memo, "h", T0 + HOUR_MS, 1)
    memo = saw_period(memo, "d", T0, 8)
    assert has_period(memo, "d", T0, 8) and not has_period(memo, "d", T0 + DAY_MS, 8)
    assert memo[:2] == (T0, 1)  # the state is left as it was


def test_known_skips_only_what_was_remembered():
    known = Known()
    rows = [Counted("landing", "A", "page_view", "v1", T0 + 10)]
    first = known.unknown_periods(rows)
    assert first == {("landing", "A", "v1", t, kind, T0) for t in ("page_view", ANY_TYPE) for kind in "hd"}
    states = batch_states(rows)
    assert known.unknown_states(states) == states
    known.remember(states, first)
    assert known.unknown_periods(rows) == set()
    assert known.unknown_states(states) == {}
    later = [Counted("landing", "A", "cta_click", "v1", T0 + HOUR_MS + 5)]
    assert known.unknown_periods(later) == {
        ("landing", "A", "v1", "cta_click", "h", T0 + HOUR_MS), ("landing", "A", "v1", ANY_TYPE, "h", T0 + HOUR_MS),
        ("landing", "A", "v1", "cta_click", "d", T0)}  # the day's "*" row is already there
    assert known.unknown_states(batch_states(later)) == {("landing", "A", "v1"): (T0 + HOUR_MS + 5, 2)}
