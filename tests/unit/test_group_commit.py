"""Group commit: callers share writes, each gets its own result, a bad caller fails alone."""
import threading
import time
from functools import partial

import pytest

from core.group_commit import GroupCommit
from tests.helpers import run_together


class Recorder:
    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.groups: list[list] = []
        self.delay = delay
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, groups):
        with self.lock:
            self.groups.append([list(g) for g in groups])
        time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in g for g in groups):
            raise ValueError(f"bad work: {self.fail_on}")
        return [sum(len(item) for item in g) for g in groups]


def run_concurrently(group: GroupCommit, works: list[list[str]]) -> list:
    return run_together(*[partial(group.submit, work) for work in works])


def test_a_lone_caller_is_a_plain_write():
    write = Recorder()
    assert GroupCommit(write).submit(["ab", "c"]) == 3
    assert write.groups == [[["ab", "c"]]]


def test_concurrent_callers_share_writes_and_get_their_own_results():
    write = Recorder(delay=0.02)
    works = [["x" * (i + 1)] for i in range(12)]
    results = run_concurrently(GroupCommit(write), works)
    assert results == [i + 1 for i in range(12)]
    assert len(write.groups) < 12  # some callers were written together
    written = sorted(w for group in write.groups for g in group for w in g)
    assert written == sorted(w for work in works for w in work)  # everyone exactly once


def test_a_failing_caller_fails_alone():
    write = Recorder(delay=0.02, fail_on="bad")
    works = [["ok1"], ["bad"], ["ok2"], ["ok3"], ["ok4"]]
    results = run_concurrently(GroupCommit(write), works)
    assert isinstance(results[1], ValueError)
    assert results[0] == 3 and results[2:] == [3, 3, 3]


def test_a_lone_failure_reaches_the_caller():
    with pytest.raises(ValueError, match="bad work"):
        GroupCommit(Recorder(fail_on="bad")).submit(["bad"])


def test_groups_stay_within_max_items():
    write = Recorder(delay=0.02)
    works = [["x"] * 3 for _ in range(10)]
    results = run_concurrently(GroupCommit(write, max_items=7), works)
    assert results == [3] * 10
    assert all(sum(len(g) for g in group) <= 7 for group in write.groups)
