"""Storage helpers for the hot paths: insert-if-new, multi-row upserts, SQLite write locking."""
import threading
import time

import pytest
from sqlalchemy import bindparam, column, select, table, text
from sqlalchemy.exc import IntegrityError, OperationalError

from core.db import (
    POSTGRES_CHUNK_ROWS,
    CompiledRead,
    KeptWriter,
    WriteLock,
    delete_rows,
    find_rows,
    insert_new,
    make_engine,
    run_write,
    upsert_rows,
    write_transaction,
)
from tests.helpers import run_together


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pairs (a VARCHAR(10), b INTEGER, note VARCHAR(10), PRIMARY KEY (a, b))"))
    yield engine
    engine.dispose()


def stored(engine) -> set[tuple]:
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(text("SELECT a, b, note FROM pairs"))}


def test_insert_new_returns_only_new_rows_first_of_each_key(engine):
    columns = ("a", "b", "note")
    with write_transaction(engine) as conn:
        assert insert_new(conn, "pairs", columns, [("x", 1, "one"), ("y", 2, "two")], key=("a", "b")) == [
            ("x", 1, "one"), ("y", 2, "two")]
    rows = [("x", 1, "again"), ("z", 3, "first"), ("z", 3, "second"), ("y", 4, "new")]
    with write_transaction(engine) as conn:
        assert insert_new(conn, "pairs", columns, rows, key=("a", "b")) == [("z", 3, "first"), ("y", 4, "new")]
    assert stored(engine) == {("x", 1, "one"), ("y", 2, "two"), ("z", 3, "first"), ("y", 4, "new")}


def test_insert_new_and_find_rows_handle_more_rows_than_one_statement(engine):
    count = 2 * POSTGRES_CHUNK_ROWS + 1234  # three statements on PostgreSQL, more on SQLite
    rows = [(f"k{i % 7}", i, None) for i in range(count)]
    with write_transaction(engine) as conn:
        assert len(insert_new(conn, "pairs", ("a", "b", "note"), rows, key=("a", "b"))) == count
        found = find_rows(conn, "pairs", ("a", "b"), ("b",), [(f"k{i % 7}", i) for i in range(0, count + 100, 2)])
    assert sorted(b for (b,) in found) == list(range(0, count, 2))


def test_delete_rows_deletes_just_the_rows_of_the_keys(engine):
    count = POSTGRES_CHUNK_ROWS + 10  # two statements on PostgreSQL
    with write_transaction(engine) as conn:
        insert_new(conn, "pairs", ("a", "b", "note"), [("k", i, None) for i in range(count)] + [("j", 0, None)],
                   key=("a", "b"))
        delete_rows(conn, "pairs", ("a", "b"), [("k", i) for i in range(1, count, 2)] + [("j", 1)])
    assert stored(engine) == {("k", i, None) for i in range(0, count, 2)} | {("j", 0, None)}


def test_compiled_read_answers_the_first_row_with_its_parameters_by_name(engine):
    pairs = table("pairs", column("a"), column("b"), column("note"))
    read = CompiledRead(engine, select(pairs.c.note, pairs.c.b).where(
        pairs.c.b == bindparam("b"), pairs.c.a == bindparam("a")).order_by(pairs.c.note))
    with write_transaction(engine) as conn:
        insert_new(conn, "pairs", ("a", "b", "note"), [("x", 1, "one"), ("y", 1, "two")], key=("a", "b"))
    assert tuple(read.first(a="y", b=1)) == ("two", 1)
    assert tuple(read.first(b=1, a="x")) == ("one", 1)
    assert read.first(a="x", b=2) is None
    with write_transaction(engine) as conn:
        conn.execute(text("UPDATE pairs SET note = 'changed' WHERE a = 'x'"))
    assert tuple(read.first(a="x", b=1)) == ("changed", 1)  # read afresh each time


def test_compiled_read_replaces_a_connection_that_failed(engine):
    """Each thread keeps a connection for its reads; one that breaks (a database restarted) is
    dropped and the read made again on a new one."""
    pairs = table("pairs", column("a"), column("b"), column("note"))
    read = CompiledRead(engine, select(pairs.c.note).where(pairs.c.a == bindparam("a")))
    with write_transaction(engine) as conn:
        insert_new(conn, "pairs", ("a", "b", "note"), [("x", 1, "one")], key=("a", "b"))
    assert tuple(read.first(a="x")) == ("one",)
    read._threads.connection.close()
    assert tuple(read.first(a="x")) == ("one",)
    answers = []
    thread = threading.Thread(target=lambda: answers.append(read.first(a="x")))  # a thread of its own
    thread.start()
    thread.join()
    assert [tuple(a) for a in answers] == [("one",)]


def test_kept_writer_commits_its_transactions_and_rolls_back_a_failed_one(engine):
    writer = KeptWriter(engine)
    assert writer.run(lambda conn: insert_new(conn, "pairs", ("a", "b", "note"), [("x", 1, "one")], ("a", "b"))) \
        == [("x", 1, "one")]

    def fails(conn):
        insert_new(conn, "pairs", ("a", "b", "note"), [("y", 1, "two")], ("a", "b"))
        conn.exec_driver_sql("INSERT INTO pairs (a, b, note) VALUES ('x', 1, 'again')")  # the key is taken

    with pytest.raises(IntegrityError):  # the driver's error, as SQLAlchemy raises it
        writer.run(fails)
    assert writer.run(lambda conn: conn.exec_driver_sql("SELECT a, b FROM pairs")) == [("x", 1)]
    assert stored(engine) == {("x", 1, "one")}  # committed; the failed transaction left nothing


def test_kept_writer_replaces_a_connection_that_was_closed(engine):
    """A connection lost between transactions (a database restarted) is replaced, and the transaction
    that found it lost is made on the new one."""
    writer = KeptWriter(engine)
    writer.run(lambda conn: conn.exec_driver_sql("INSERT INTO pairs (a, b, note) VALUES ('x', 1, 'one')"))
    if writer._connection is not None:  # in-memory SQLite writes through the pool: nothing kept
        writer._connection.close()
    writer.run(lambda conn: conn.exec_driver_sql("INSERT INTO pairs (a, b, note) VALUES ('y', 2, 'two')"))
    assert stored(engine) == {("x", 1, "one"), ("y", 2, "two")}


def test_upsert_rows_inserts_and_updates(engine):
    with write_transaction(engine) as conn:
        upsert_rows(conn, "pairs", ("a", "b", "note"), ("a", "b"), [("x", 1, "old")], "note = excluded.note")
        upsert_rows(conn, "pairs", ("a", "b", "note"), ("a", "b"), [("x", 1, "new"), ("x", 2, "two")],
                    "note = excluded.note")
    assert stored(engine) == {("x", 1, "new"), ("x", 2, "two")}


def test_rows_keep_their_values_whatever_the_mix_of_types_in_a_column(engine):
    """Ints beside floats, NULLs, quotes, braces and non-ASCII text come back as they went in."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE mixed (k VARCHAR(20) PRIMARY KEY, n BIGINT, x FLOAT, note VARCHAR(20))"))
    rows = [('a"{b},\\', 1, 2.5, None), ("é ö", None, 3, "x"), ("c", 2**40, None, None)]
    with write_transaction(engine) as conn:
        upsert_rows(conn, "mixed", ("k", "n", "x", "note"), ("k",), rows, "x = excluded.x")
        found = find_rows(conn, "mixed", ("k",), ("k", "n", "x", "note"), [(row[0],) for row in rows])
    assert sorted(found) == sorted(rows)


def test_sqlite_write_transaction_holds_the_write_lock_from_its_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    engine, other = make_engine(url), make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with write_transaction(engine) as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar_one()  # a read only, so far
        with other.connect() as intruder:
            intruder.exec_driver_sql("PRAGMA busy_timeout=50")
            intruder.commit()
            with pytest.raises(OperationalError, match="locked"):
                with intruder.begin():
                    intruder.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    other.dispose()


@pytest.mark.parametrize("shared", [False, True], ids=["two handles, as two processes", "one handle, two threads"])
def test_write_lock_makes_writers_take_turns(tmp_path, shared):
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    first = WriteLock(engine)
    second = first if shared else WriteLock(engine)  # one handle: the flock alone would let both in
    order = []

    def later():
        with second:
            order.append("second")

    with first:
        thread = threading.Thread(target=later)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]
    engine.dispose()


def test_write_lock_is_a_no_op_for_postgresql_and_memory():
    for url in ("sqlite://", "postgresql+psycopg://u@localhost/db"):
        lock = WriteLock(make_engine(url))
        assert lock.path is None
        with lock, lock:  # re-entrant because it does nothing
            pass



@pytest.fixture
def pg_engine(pg_schema_url):
    engine = make_engine(pg_schema_url())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pairs (a VARCHAR(10), b INTEGER, note VARCHAR(10), PRIMARY KEY (a, b))"))
        conn.execute(text("INSERT INTO pairs VALUES ('x', 1, ''), ('y', 2, '')"))
    yield engine
    engine.dispose()


def test_run_write_runs_a_deadlocked_transaction_again(pg_engine):
    """Two transactions lock the same two rows in opposite orders and wait for each other: PostgreSQL
    aborts one (deadlock detected), run_write runs it again, and both changes are committed."""
    both_hold_one = threading.Barrier(2)
    attempts = []

    def writer(first, second, note):
        def work(conn):
            attempts.append(note)
            conn.execute(text("UPDATE pairs SET note = note || :n WHERE a = :a"), {"n": note, "a": first})
            if attempts.count(note) == 1:
                both_hold_one.wait(10)
            conn.execute(text("UPDATE pairs SET note = note || :n WHERE a = :a"), {"n": note, "a": second})
            return note

        return lambda: run_write(pg_engine, work)

    assert run_together(writer("x", "y", "1"), writer("y", "x", "2")) == ["1", "2"]
    assert len(attempts) >= 3  # PostgreSQL aborted one (rarely both, when both look at once): it ran again
    notes = {a: note for a, _, note in stored(pg_engine)}
    assert sorted(notes["x"]) == sorted(notes["y"]) == ["1", "2"]


@pytest.mark.parametrize("helper", ["insert_new", "upsert_rows"])
def test_overlapping_multi_row_writes_in_different_orders_do_not_deadlock(pg_engine, helper):
    """Eight transactions write the same 300 keys, each in its own shuffled order: the helpers write
    in key order, so they wait for each other instead of deadlocking."""
    import random

    keys = [(f"k{i % 10}", i) for i in range(300)]
    columns = ("a", "b", "note")

    def writer(seed):
        rows = [(a, b, str(seed)) for a, b in random.Random(seed).sample(keys, len(keys))]

        def write():
            with write_transaction(pg_engine) as conn:
                if helper == "insert_new":
                    insert_new(conn, "pairs", columns, rows, key=("a", "b"))
                else:
                    upsert_rows(conn, "pairs", columns, ("a", "b"), rows, "note = excluded.note")
                time.sleep(0.01)
        return write

    for _ in range(3):
        assert run_together(*[writer(seed) for seed in range(8)]) == [None] * 8
    assert {(a, b) for a, b, _ in stored(pg_engine)} >= set(keys)
