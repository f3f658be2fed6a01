"""Group commit: concurrent callers share one database transaction instead of one each.

A caller adds its work to a queue and waits for the write lock. Whoever holds the lock (the leader)
writes everything queued so far in one call, then hands each caller its own result. A caller whose
work was written by an earlier leader returns at once. With one caller at a time this is a plain
write; under load, transactions grow and their fixed costs are shared. No background thread: works
the same under gunicorn, the development server and tests.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Pending(Generic[T]):
    __slots__ = ("work", "size", "done", "result", "error")

    def __init__(self, work: Sequence[Any]):
        self.work = work
        self.size = max(1, len(work))
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """`write(groups)` gets a list of callers' work and returns one result per caller, in order.

    When a shared write fails, each caller's work is written again on its own, so one bad request
    fails alone and the others still succeed.
    """

    def __init__(self, write: Callable[[list[Sequence[Any]]], list[T]], max_items: int = 5000):
        self._write = write
        self._max_items = max_items
        self._queue: list[_Pending[T]] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def submit(self, work: Sequence[Any]) -> T:
        pending: _Pending[T] = _Pending(work)
        with self._queue_lock:
            self._queue.append(pending)
        with self._write_lock:
            while not pending.done:  # older callers may fill a group before this one
                self._lead()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _take(self) -> list[_Pending[T]]:
        """The oldest queued callers, up to max_items of work (always at least one caller)."""
        with self._queue_lock:
            taken, total = [], 0
            for pending in self._queue:
                if taken and total + pending.size > self._max_items:
                    break
                taken.append(pending)
                total += pending.size
            del self._queue[:len(taken)]
        return taken

    def _lead(self) -> None:
        group = self._take()
        try:
            results = self._write([p.work for p in group])
        except Exception as exc:  # noqa: BLE001 - handed to the callers, never swallowed
            if len(group) == 1:
                _finish(group[0], error=exc)
                return
            for pending in group:
                try:
                    [result] = self._write([pending.work])
                except Exception as single:  # noqa: BLE001
                    _finish(pending, error=single)
                else:
                    _finish(pending, result=result)
            return
        for pending, result in zip(group, results, strict=True):
            _finish(pending, result=result)


def _finish(pending: _Pending, result: Any = None, error: BaseException | None = None) -> None:
    pending.result = result
    pending.error = error
    pending.done = True
