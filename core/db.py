"""Engine creation from DATABASE_URL: SQLite in WAL mode by default, PostgreSQL for shared deployments."""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; synchronous=NORMAL keeps the database consistent
    # after a crash and may lose only the last transactions on power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def write_transaction(engine: Engine):
    """A transaction that writes. On a SQLite file it first takes the engine's WriteLock (writers
    of every process take turns without SQLite's sleep-polling), then the database's write lock at
    its start (BEGIN IMMEDIATE; the driver would begin only before the first write), so what it
    reads cannot change before it writes. On PostgreSQL a plain transaction."""
    with write_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


@contextmanager
def exclusive(engine: Engine, name: str):
    """One holder of the lock `name` at a time, across threads and processes (and, on PostgreSQL,
    machines): a PostgreSQL advisory lock, or a flock on `<database file>.<name>.lock`. Released
    when the block ends or its process dies, however it dies. Nothing to lock for in-memory SQLite."""
    import fcntl

    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(hashtext(%s))", (name,))
            try:
                yield
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.{name}.lock", "a") as handle:  # a handle of its own: threads exclude each other too
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# PostgreSQL aborts one of two transactions that wait on each other (deadlock_detected) or whose
# isolation cannot be kept (serialization_failure); run again from the start, either succeeds.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
TRANSACTION_ATTEMPTS = 6
RETRY_BACKOFF_SECONDS = 0.02  # the first wait is up to this, doubling each attempt (full jitter)


def is_retryable(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure: the transaction was rolled back and can run again."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def is_transient(exc: BaseException) -> bool:
    """True for an error of the database's state rather than of the work: a deadlock or serialization
    failure (is_retryable) that outlasted its attempts, a connection lost or refused, a lock or
    statement timeout, the database busy, locked or out of space (the drivers' OperationalError and
    InterfaceError), no connection free in the pool, the write lock's file out of reach (OSError).
    The same work can succeed later; any other error (a bug, data the work cannot take) comes back.
    SQLite reports a few mistakes in SQL as OperationalError too: those fail every run alike."""
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or is_retryable(exc)):
        return True
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError))


def retry_transient(operation: Callable[[], T], attempts: int = TRANSACTION_ATTEMPTS,
                    backoff: float = RETRY_BACKOFF_SECONDS, sleep: Callable[[float], None] = time.sleep,
                    jitter: Callable[[float, float], float] = random.uniform) -> T:
    """operation(), run again after a deadlock or serialization failure, at most `attempts` times in
    all, waiting a random time up to backoff, 2 x backoff, 4 x backoff... between runs (so the
    transactions that collided do not collide again in step). Other errors pass at once."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            log.info("transaction aborted (%s), attempt %d of %d; running it again",
                     exc.orig.sqlstate, attempt, attempts)
        sleep(jitter(0, backoff * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def run_write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """work(conn) in a write_transaction, committed; run again from the start after a deadlock or
    serialization failure (see retry_transient). `work` must do nothing outside the database that
    a second run would repeat: what is learnt is acted on after run_write returns."""

    def once() -> T:
        with write_transaction(engine) as conn:
            return work(conn)

    return retry_transient(once)


class CompiledRead:
    """A Core SELECT compiled once for an engine and run straight on a DBAPI connection: for the
    hottest reads, where SQLAlchemy's per-execution work (a Connection, an execution context, result
    metadata, the pool's check-out, ping and reset) costs several times the query itself. Each thread
    keeps a connection of its own for it, in autocommit (every read sees what is committed, and holds
    nothing open between reads); one that fails is closed and the read made once more on a new one
    (a database restarted meanwhile). In-memory SQLite, a database per connection, reads through the
    pool. Columns come back as the driver gives them, so the statement should select plain column
    types (TEXT, numbers), as a CAST does."""

    def __init__(self, engine: Engine, statement):
        compiled = statement.compile(dialect=engine.dialect)
        self.engine = engine
        self.sql = str(compiled)
        self._positions = compiled.positiontup  # the parameters' order for a positional paramstyle (SQLite)
        in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._threads = None if in_memory else threading.local()

    def first(self, **params) -> tuple | None:
        """The first row, or None."""
        values = tuple(params[name] for name in self._positions) if self._positions else params
        if self._threads is None:
            connection = self.engine.raw_connection()
            try:
                return _first(connection, self.sql, values)
            finally:
                connection.close()  # back to the pool, rolled back
        kept = getattr(self._threads, "connection", None)
        if kept is not None:
            try:
                return _first(kept, self.sql, values)
            except self.engine.dialect.loaded_dbapi.Error:
                self._threads.connection = None
                _close_quietly(kept)
        return _first(self._new_thread_connection(), self.sql, values)

    def _new_thread_connection(self):
        pooled = self.engine.raw_connection()  # made as the engine makes them (its pragmas), checked alive
        pooled.detach()  # this thread's from now on, closed when the thread ends
        connection = pooled.dbapi_connection
        connection.rollback()
        self.engine.dialect.set_isolation_level(connection, "AUTOCOMMIT")
        self._threads.connection = connection
        return connection


class DriverConnection:
    """What the raw-SQL helpers of this module use of SQLAlchemy's Connection (`dialect`,
    `exec_driver_sql`), on a bare DBAPI connection: each statement goes straight to the driver.
    Driver errors are raised as SQLAlchemy's (DBAPIError and its kinds), as through a Connection."""

    def __init__(self, connection, dialect):
        self.connection = connection
        self.dialect = dialect
        self.statements = 0  # run so far

    def exec_driver_sql(self, sql: str, params=()) -> list[tuple]:
        """The rows the statement returns (none for most writes)."""
        self.statements += 1
        try:
            cursor = self.connection.cursor()
            try:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description is not None else []
            finally:
                cursor.close()
        except self.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(self.dialect, exc, sql, params) from exc


def _wrapped(dialect, exc: Exception, sql: str, params) -> DBAPIError:
    return DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect)


class KeptWriter:
    """Write transactions as run_write makes them (the SQLite write lock taken first, run again
    after a deadlock or serialization failure), on one DBAPI connection kept for them and without
    SQLAlchemy's per-execution work (`work` gets a DriverConnection): for the hottest writes, made
    one at a time, such as a group commit's. A connection that fails is closed, and a transaction
    whose first statement found it closed (a database restarted meanwhile) runs once more on a new
    one; it has written nothing. In-memory SQLite, a database per connection, writes through the pool."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._connection = None
        self._pid = None

    def run(self, work: Callable[[DriverConnection], T]) -> T:
        """work(conn) in a transaction, committed; the caller runs one at a time."""
        return retry_transient(lambda: self._once(work))

    def _once(self, work: Callable[[DriverConnection], T]) -> T:
        with write_lock(self.engine):
            for attempt in (1, 2):
                connection = self._connect()
                conn = DriverConnection(connection, self.engine.dialect)
                try:
                    return self._transaction(conn, work)
                except BaseException as exc:
                    gone = self._failed(connection, exc)
                    if not (gone and conn.statements <= 1 and attempt == 1):
                        raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _transaction(self, conn: DriverConnection, work: Callable[[DriverConnection], T]) -> T:
        if self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        result = work(conn)
        try:
            conn.connection.commit()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(self.engine.dialect, exc, "COMMIT", ()) from exc
        if self._in_memory:
            conn.connection.close()  # back to the pool
        return result

    def _connect(self):
        import os

        if self._in_memory:
            return self.engine.raw_connection()
        if self._connection is None or self._pid != os.getpid():  # a forked process opens its own
            pooled = self.engine.raw_connection()  # made as the engine makes them (its pragmas), checked alive
            pooled.detach()  # kept from now on
            self._connection, self._pid = pooled.dbapi_connection, os.getpid()
            self._connection.rollback()
        return self._connection

    def _failed(self, connection, exc: BaseException) -> bool:
        """Roll back after a failure; True when the connection was lost (it is closed and dropped)."""
        dbapi_error = exc.orig if isinstance(exc, DBAPIError) else exc
        gone = isinstance(dbapi_error, self.engine.dialect.loaded_dbapi.Error) and \
            self.engine.dialect.is_disconnect(dbapi_error, connection, None)
        if not gone:
            try:
                connection.rollback()
            except self.engine.dialect.loaded_dbapi.Error:
                gone = True
        if self._in_memory:
            connection.close()
        elif gone:
            self._connection = None
            _close_quietly(connection)
        return gone


def _first(connection, sql: str, values) -> tuple | None:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, values)
        return cursor.fetchone()
    finally:
        cursor.close()


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except Exception as exc:  # noqa: BLE001 - a broken connection may fail to close; it is dropped either way
        log.debug("closing a failed connection: %s", exc)


def make_engine(url: str) -> Engine:
    """An engine for the URL; creates the SQLite file's folder when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


def insert_ignore(engine_or_conn, table):
    """An INSERT that skips rows whose key already exists, in the backend's own dialect."""
    return dialect_insert(engine_or_conn, table).on_conflict_do_nothing()


def dialect_insert(engine_or_conn, table):
    """The backend's own INSERT construct (it knows ON CONFLICT on both SQLite and PostgreSQL)."""
    dialect = engine_or_conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise ValueError(f"unsupported database backend: {dialect}")
    return insert(table)


def now_millis() -> int:
    import time

    return int(time.time() * 1000)


def now_millis_sql(dialect: str) -> str:
    """The database's own clock in milliseconds since the epoch, as SQL (a column default, or compared
    with one: the same clock on both sides, whatever the application servers' clocks say)."""
    if dialect == "postgresql":
        return "(CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT))"  # the transaction's start
    return "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"


def placeholders(conn, columns: int, rows: int = 1) -> str:
    """`(?, ?), (?, ?)` for rows x columns values, in the driver's own parameter style, for SQL run
    with `exec_driver_sql` on hot paths (no statement building or compiling per call)."""
    row = "(" + ", ".join([param_mark(conn)] * columns) + ")"
    return ", ".join([row] * rows)


def param_mark(conn) -> str:
    """A positional parameter in the driver's own style: `?` (SQLite) or `%s` (psycopg)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def chunked(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# Rows per multi-row statement. SQLite binds each value: 500 rows x 8 columns stays far below its
# limit. PostgreSQL takes one array per column (see _relation), whatever the number of rows: larger
# statements save round trips (a fold writes tens of thousands of rows).
CHUNK_ROWS = 500
POSTGRES_CHUNK_ROWS = 5_000


def chunk_rows(conn) -> int:
    return POSTGRES_CHUNK_ROWS if conn.dialect.name == "postgresql" else CHUNK_ROWS


def _arrays(chunk: Sequence[tuple]) -> list[tuple[list, str]]:
    """Rows as one array per column, each with its PostgreSQL type: float8[] where a value is a float
    (the ints among them made floats: a binary array holds one type), bigint[] where values are ints,
    text[] otherwise (a column of NULLs too)."""
    arrays = []
    for values in zip(*chunk, strict=True):
        kinds = set(map(type, values))
        if float in kinds:
            arrays.append(([v if v is None else float(v) for v in values] if int in kinds else list(values),
                           "float8[]"))
        else:
            arrays.append((list(values), "bigint[]" if int in kinds else "text[]"))
    return arrays


def _unnest(arrays: Sequence[tuple[list, str]]) -> tuple[str, tuple]:
    """The arrays as a relation v(column1, column2, ...), sent in binary (no quoting of each value)."""
    names = ", ".join(f"column{i}" for i in range(1, len(arrays) + 1))
    casts = ", ".join(f"%b::{cast}" for _, cast in arrays)
    return f"SELECT * FROM unnest({casts}) AS v({names})", tuple(values for values, _ in arrays)


def _relation(conn, columns: int, chunk: Sequence[tuple]) -> tuple[str, tuple]:
    """Rows as a relation v(column1, column2, ...). SQLite: a VALUES list. PostgreSQL: unnest() of
    one array per column, one small statement whatever the number of rows (a VALUES list of 500
    rows makes PostgreSQL parse and plan thousands of parameters every time)."""
    if conn.dialect.name == "postgresql":
        return _unnest(_arrays(chunk))
    return f"VALUES {placeholders(conn, columns, len(chunk))}", tuple(chain.from_iterable(chunk))


# Rows up to which a PostgreSQL INSERT sends a VALUES list rather than unnest()'s arrays: a short list
# is planned quickly, and its parameters cost the driver far less to send than one array per column
# (a single event's insert took a third of the CPU).
FEW_ROWS = 8


def _insert(conn, table: str, columns: Sequence[str], chunk: Sequence[tuple]) -> tuple[str, tuple]:
    if conn.dialect.name == "postgresql":  # a column that is NULL in every row is left to its default
        if len(chunk) > FEW_ROWS:
            arrays = _arrays(chunk)
            kept = [i for i, (values, _) in enumerate(arrays) if values.count(None) < len(values)]
            rows, params = _unnest([arrays[i] for i in kept])
            return f"INSERT INTO {table} ({', '.join(columns[i] for i in kept)}) {rows}", params
        kept = [i for i in range(len(columns)) if any(row[i] is not None for row in chunk)]
        if len(kept) < len(columns):
            columns, chunk = [columns[i] for i in kept], [tuple(row[i] for i in kept) for row in chunk]
    # SQLite, and a few rows on PostgreSQL: an INSERT's VALUES list takes each parameter's type from its column
    rows, params = f"VALUES {placeholders(conn, len(columns), len(chunk))}", tuple(chain.from_iterable(chunk))
    return f"INSERT INTO {table} ({', '.join(columns)}) {rows}", params


def _fetch_all(conn, statement: str, params) -> list[tuple]:
    """The rows of a statement run on the connection's DBAPI cursor, as the driver's tuples (no
    SQLAlchemy row per row), inside the connection's transaction."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(statement, params)
        return cursor.fetchall()
    finally:
        cursor.close()


def find_rows(conn, table: str, key: Sequence[str], columns: Sequence[str], keys: Sequence[tuple],
              lock: str | None = None) -> list[tuple]:
    """The stored rows (as `columns`) whose `key` columns equal one of `keys`: a join against the
    keys as a relation, which both SQLite and PostgreSQL answer from the primary key or unique index.
    `lock` ("SHARE", "UPDATE"): on PostgreSQL, lock the rows found, in key order (SQLite's write
    transactions hold the database's lock already)."""
    found = []
    match = " AND ".join(f"t.{name} = v.column{i}" for i, name in enumerate(key, 1))
    locking = ""
    if lock is not None and conn.dialect.name == "postgresql":
        locking = f" ORDER BY {', '.join('t.' + name for name in key)} FOR {lock} OF t"
    for chunk in chunked(keys, chunk_rows(conn)):
        rows, params = _relation(conn, len(key), chunk)
        selected = ", ".join("t." + c for c in columns)
        found += _fetch_all(conn, f"SELECT {selected} FROM ({rows}) AS v JOIN {table} AS t ON {match}{locking}", params)
    return found


def delete_rows(conn, table: str, key: Sequence[str], keys: Sequence[tuple]) -> None:
    """Delete the rows whose `key` columns equal one of `keys` (matched against the keys as a
    relation, as in find_rows: one small statement per chunk, nothing compiled per key)."""
    for chunk in chunked(keys, chunk_rows(conn)):
        rows, params = _relation(conn, len(key), chunk)
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE ({', '.join(key)}) IN (SELECT * FROM ({rows}) AS v)", params)


def key_of(columns: Sequence[str], key: Sequence[str]) -> Callable[[tuple], tuple]:
    """row -> the tuple of its `key` columns."""
    positions = [columns.index(name) for name in key]
    return itemgetter(*positions) if len(positions) > 1 else (lambda row, i=positions[0]: (row[i],))


def insert_new(conn, table: str, columns: Sequence[str], rows: Sequence[tuple], key: Sequence[str]) -> list[tuple]:
    """Insert the rows whose `key` columns are not stored yet; return them (the first row of each
    key), in order.

    PostgreSQL: INSERT .. ON CONFLICT DO NOTHING RETURNING, safe beside concurrent writers; rows
    go in in key order, so two transactions inserting overlapping keys wait for each other in the
    same order instead of deadlocking.
    SQLite: one look-up of the keys already stored, then one multi-row INSERT, inside a transaction
    begun IMMEDIATE (the write lock is held from the start, so nothing can slip in between). The
    sqlite3 module releases the GIL for every row a statement steps through; a RETURNING insert of
    500 rows would hand it over 500 times, each time waiting behind the request threads."""
    get_key = key_of(columns, key)
    unique: dict[tuple, tuple] = {}
    for row in rows:
        unique.setdefault(get_key(row), row)
    if conn.dialect.name == "postgresql":
        stored: set[tuple] = set()
        for chunk in chunked([unique[k] for k in sorted(unique)], POSTGRES_CHUNK_ROWS):
            statement, params = _insert(conn, table, columns, chunk)
            stored.update(_fetch_all(conn, f"{statement} ON CONFLICT DO NOTHING RETURNING {', '.join(key)}", params))
        return [row for k, row in unique.items() if k in stored]
    present = set(find_rows(conn, table, key, key, list(unique)))
    new = [row for k, row in unique.items() if k not in present]
    insert_rows(conn, table, columns, new)
    return new


def insert_rows(conn, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """A plain INSERT of many rows per statement."""
    for chunk in chunked(rows, chunk_rows(conn)):
        conn.exec_driver_sql(*_insert(conn, table, columns, chunk))


def upsert_rows(conn, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[tuple],
                update: str) -> None:
    """INSERT .. ON CONFLICT (key) DO UPDATE SET update, many rows per statement (keys distinct).
    On PostgreSQL in key order: each row is locked as it is written (see insert_new)."""
    if conn.dialect.name == "postgresql":
        rows = sorted(rows, key=key_of(columns, key))
    for chunk in chunked(rows, chunk_rows(conn)):
        statement, params = _insert(conn, table, columns, chunk)
        conn.exec_driver_sql(f"{statement} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {update}", params)


class WriteLock:
    """Serialises write transactions across the threads and processes sharing one SQLite file.

    SQLite's own busy handler polls with sleeps of up to 100 ms, which shows as long tail latency
    when two gunicorn workers write at once; a blocking flock on a file beside the database wakes
    the next writer as soon as the lock is free (a thread lock in front of it, since a flock is
    shared by the threads using one file handle). On PostgreSQL (row locks) and in-memory SQLite it
    does nothing. write_transaction takes it; there is one per engine.
    """

    def __init__(self, engine: Engine):
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.path = f"{database}.write.lock" if database and database != ":memory:" else None
        self._threads = threading.Lock()
        self._handle = None
        self._pid = None

    def __enter__(self):
        import fcntl
        import os

        if self.path is None:
            return self
        self._threads.acquire()
        try:
            if self._handle is None or self._pid != os.getpid():  # a forked worker opens its own
                self._handle = open(self.path, "a")  # noqa: SIM115 - kept open for the process's life
                self._pid = os.getpid()
            fcntl.flock(self._handle, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self.path is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._threads.release()


_write_locks: WeakKeyDictionary[Engine, WriteLock] = WeakKeyDictionary()


def write_lock(engine: Engine) -> WriteLock:
    """The engine's WriteLock."""
    lock = _write_locks.get(engine)
    if lock is None:
        lock = _write_locks.setdefault(engine, WriteLock(engine))
    return lock
