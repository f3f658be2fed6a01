"""Running a transaction again after a deadlock or serialization failure (core.db.retry_transient), and
which errors are the database's (core.db.is_transient)."""
import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.db import TRANSACTION_ATTEMPTS, is_transient, retry_transient


class DriverError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def aborted(sqlstate: str) -> OperationalError:
    return OperationalError("COMMIT", {}, DriverError(sqlstate))


class Flaky:
    """Fails with the given errors, one per call, then returns "done"."""

    def __init__(self, *errors: Exception):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"], ids=["deadlock", "serialization failure"])
def test_aborted_transactions_run_again_after_a_growing_random_wait(sqlstate):
    operation = Flaky(aborted(sqlstate), aborted(sqlstate), aborted(sqlstate))
    waits, bounds = [], []

    def jitter(low, high):
        bounds.append((low, high))
        return high / 2

    assert retry_transient(operation, backoff=0.01, sleep=waits.append, jitter=jitter) == "done"
    assert operation.calls == 4
    assert bounds == [(0, 0.01), (0, 0.02), (0, 0.04)]
    assert waits == [0.005, 0.01, 0.02]


def test_gives_up_after_the_last_attempt_with_the_database_error():
    operation = Flaky(*[aborted("40P01")] * TRANSACTION_ATTEMPTS)
    waits = []
    with pytest.raises(OperationalError) as raised:
        retry_transient(operation, sleep=waits.append)
    assert raised.value.orig.sqlstate == "40P01"
    assert operation.calls == TRANSACTION_ATTEMPTS
    assert len(waits) == TRANSACTION_ATTEMPTS - 1


@pytest.mark.parametrize("error", [
    aborted("57014"),  # query_canceled
    IntegrityError("INSERT", {}, DriverError("23505")),  # unique_violation
    OperationalError("BEGIN", {}, Exception("database is locked")),  # no SQLSTATE at all
    ValueError("not a database error"),
], ids=["other sqlstate", "integrity error", "no sqlstate", "not a database error"])
def test_other_errors_are_not_retried(error):
    operation = Flaky(error)
    with pytest.raises(type(error)):
        retry_transient(operation, sleep=lambda _: pytest.fail("slept"))
    assert operation.calls == 1


@pytest.mark.parametrize(("error", "transient"), [
    (aborted("40P01"), True),  # a deadlock that outlasted its attempts
    (aborted("57014"), True),  # a statement timeout
    (OperationalError("BEGIN", {}, Exception("database is locked")), True),
    (InterfaceError("SELECT 1", {}, Exception("connection already closed")), True),
    (DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True), True),
    (PoolTimeout("QueuePool limit reached"), True),
    (OSError("the write lock's file"), True),
    (IntegrityError("INSERT", {}, DriverError("23505")), False),  # data the work cannot take
    (DataError("INSERT", {}, DriverError("22003")), False),  # numeric_value_out_of_range
    (ValueError("a bug"), False),
    (KeyError("a bug"), False),
], ids=["deadlock", "timeout", "locked", "closed", "invalidated", "pool", "lock file", "integrity", "data",
        "value error", "key error"])
def test_transient_errors_are_those_of_the_database_not_of_the_work(error, transient):
    assert is_transient(error) is transient
