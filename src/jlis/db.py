"""Storage: one SQLAlchemy metadata for every package's tables, an engine factory that tunes SQLite,
and a session factory. Packages declare tables on :class:`Base`; nothing else is shared."""

from __future__ import annotations

import datetime as dt
import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own busy handler queues other processes' writers
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import DateTime, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from jlis.planned import PlanningConnection

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


UTC = dt.UTC


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes stored in UTC, read back aware (UTC). SQLite keeps no offset, so without this
    an aware JST value would come back naive and compare wrongly with the next message's time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        value = _as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return _in_utc(value)

    # On SQLite the value is text in SQLAlchemy's default DATETIME format, which is what
    # ``isoformat(" ", "microseconds")`` writes and ``fromisoformat`` reads, in C: SQLAlchemy's own
    # processors format and parse it in Python, ~3 µs a value, and every row the relay writes has
    # one or two distinct times (tests/test_db.py holds the two to the same text and values).

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            # One call a value instead of SQLAlchemy's two wrappers around process_bind_param:
            # the relay binds thousands a round.
            def aware(value: Any) -> Any:
                return value if value is None else _as_utc(value)

            return aware
        if not _default_sqlite_format(dialect, self.impl):
            return super().bind_processor(dialect)

        def process(value: Any) -> str | None:
            return None if value is None else _sqlite_text(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":

            def read(value: Any) -> Any:  # as process_result_value, in one call
                return value if value is None or value.tzinfo is UTC else _in_utc(value)

            return read
        if not _default_sqlite_format(dialect, self.impl):
            return super().result_processor(dialect, coltype)
        parse = dt.datetime.fromisoformat

        def process(value: Any) -> dt.datetime | None:
            if value is None:
                return None
            return _in_utc(parse(value))  # a text with an offset (written by hand) is converted

        return process


def _in_utc(value: dt.datetime) -> dt.datetime:
    """A time read back: naive ones are UTC (SQLite keeps no offset), aware ones converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_utc(value: Any) -> dt.datetime:
    if getattr(value, "tzinfo", None) is not UTC:  # bound for every row of a batch: keep UTC cheap
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"an aware datetime is required, got {value!r}")
        value = value.astimezone(UTC)
    return value


# Remembered across columns and statements: a record's time goes to a dozen rows of a relay round
# (each tier's copy and history, each its own statement and column). Equal aware times are the
# same instant, so the same UTC text.
@functools.lru_cache(maxsize=8192)
def _sqlite_text(value: dt.datetime) -> str:
    return _as_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def _default_sqlite_format(dialect: Dialect, impl: Any) -> bool:
    """Whether the column's SQLite DATETIME keeps SQLAlchemy's default text format."""
    from sqlalchemy.dialects.sqlite import DATETIME

    text = impl.dialect_impl(dialect)
    return (
        isinstance(text, DATETIME)
        and text._storage_format == DATETIME._storage_format
        and getattr(text, "_reg", None) is None
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, cache_kib: int = 0) -> None:
    # Let SQLAlchemy, not pysqlite, open transactions (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL + NORMAL: durable across a process crash (SIGKILL), which is what the outbox promises;
    # only an OS crash can lose the last transactions, as docs/architecture.md says.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    cur.execute(f"PRAGMA cache_size={-(cache_kib or SQLITE_CACHE_KIB)}")
    # Checkpoint the WAL back into the database every ~400 MB instead of every ~4 MB. A change
    # dirties ~37 pages (150 KB of WAL: every row write rewrites a 4 KB page of a table or an
    # index), and a checkpoint writes each page back at random and fsyncs: the fewer checkpoints,
    # the more often a hot page (an index's, the outbox's tail) is written back once for many
    # changes. Measured on the propagation bench: 406 changes/s at ~40 MB, 470 at ~200 MB, 516 at
    # ~400 MB. jlis checkpoints itself, on the first commit past the mark (CHECKPOINT_BYTES) and
    # after that commit has released the write lock (SqliteWriter.checkpoint_if_due): SQLite's own
    # automatic checkpoint runs inside COMMIT, and every writer queued on the lock would wait for it
    # (seconds, at ~400 MB). Past twice the mark the checkpoint also starts the WAL over (see
    # checkpoint_if_due), and the file is truncated back to 64 MB; a restart after a crash reads up
    # to ~800 MB of WAL (a second or two).
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.execute("PRAGMA journal_size_limit=67108864")
    cur.close()


READ_ONLY = {"jlis_read_only": True}


SQLITE_BUSY_SECONDS = 30.0  # SQLite's busy timeout (_sqlite_pragmas) and the write lock's wait
# Each connection's page cache, in KiB, instead of SQLite's default 2 MiB. A relay round or a counter
# group reads and writes thousands of pages of the copies, histories and their indexes; with 2 MiB
# it read many of them again from the OS within the same transaction. On the propagation bench,
# four alternated pairs: 1,364–1,773 changes/s (mean 1,625) against 1,319–1,527 (mean 1,410) with
# the default, the relay's CPU per change 0.51–0.68 ms against 0.60–0.70 (bench/RESULTS.md). A
# larger cache did no better there (SQLite drops a connection's cache when another one has written
# since its last transaction). It only holds pages read, so a small database uses less.
SQLITE_CACHE_KIB = 64 * 1024
CHECKPOINT_BYTES = 400 * 1024 * 1024  # WAL size from which a commit checkpoints (see _sqlite_pragmas)
RESTART_BYTES = 2 * CHECKPOINT_BYTES  # from which the checkpoint waits for readers and restarts the WAL
RESTART_WAIT_SECONDS = 0.25  # how long it waits for them, holding up the writers


class SqliteWriter:
    """The write lock of one SQLite database, for the writers of this process and of the others.

    SQLite lets one transaction write at a time and makes a second writer sleep and retry: its busy
    handler sleeps 1, 2, 5 … up to 100 ms at a time, so a writer often sleeps on long after the
    lock is free. This lock queues writers instead. Between the threads of one process (the web
    app's request threads, its relay worker, its group commits) a thread lock hands over the moment
    the holder commits; between processes (``jlis serve --workers N``, a relay process beside
    them) a ``flock`` on a file beside the database (``<database>-writer``), polled every 50 µs to
    1 ms. Taken just before ``BEGIN IMMEDIATE`` and released right after ``COMMIT`` or ``ROLLBACK``
    (or when the connection is closed or invalidated without either); the kernel drops a dead
    process's ``flock``. Neither is reentrant: a thread that opens a second write transaction while
    holding one waits ``SQLITE_BUSY_SECONDS`` and fails with "database is locked", exactly as
    SQLite itself would have answered it.
    """

    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._holder: Any = None  # the sqlite3 connection whose transaction holds the lock
        self._path = f"{path}-writer" if path and fcntl is not None else None
        self._wal = f"{path}-wal" if path else None
        self._next_checkpoint = 0.0
        self.checkpoints = 0
        self.restarts = 0  # checkpoints that started the WAL over (see checkpoint_if_due)
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd: a forked child opens its own
        self.waits = 0  # acquisitions that found the lock taken (for tests and benchmarks)

    def acquire(self, raw: Any) -> None:
        deadline = time.monotonic() + SQLITE_BUSY_SECONDS
        if not self._lock.acquire(blocking=False):
            self.waits += 1
            if not self._lock.acquire(timeout=SQLITE_BUSY_SECONDS):
                raise sqlite3.OperationalError("database is locked (another writer of this process)")
        try:
            self._lock_file(deadline)
        except BaseException:
            self._lock.release()
            raise
        self._holder = raw

    def _lock_file(self, deadline: float) -> None:
        if self._path is None:
            return
        assert fcntl is not None
        if self._fd is None or self._pid != os.getpid():
            # A child of fork() shares its parent's open file, and with it the parent's flock.
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd, self._pid = fd, os.getpid()
            weakref.finalize(self, os.close, fd)  # with the engine, not at process exit
        pause = 50e-6
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if pause == 50e-6:
                    self.waits += 1
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError(
                        "database is locked (a writer of another process)"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)

    def release(self, raw: Any) -> None:
        if raw is not None and self._holder is raw:
            self._holder = None
            if self._fd is not None and self._pid == os.getpid():
                assert fcntl is not None
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._lock.release()

    def checkpoint_if_due(self, raw: Any) -> None:
        """After a commit, outside the write lock: copy the WAL back into the database once it has
        reached ``CHECKPOINT_BYTES`` (a PASSIVE checkpoint: writers go on meanwhile; at most one
        attempt a second per process).

        A PASSIVE checkpoint never lets the WAL start over while some reader's snapshot is in it,
        and with planned rounds and groups (jlis.planned) there always is one: the WAL grew to
        6 GB in a propagation run of 100,000 changes, and every page read searched its index.
        So from ``RESTART_BYTES`` on, the checkpoint also waits for those readers to finish, up to
        ``RESTART_WAIT_SECONDS`` (SQLite makes new writers wait meanwhile; this process's and the
        others' queue on the write lock, which the checkpoint holds), and the WAL starts over.
        A reader that takes longer only costs the attempt: writers go on, and it is tried again."""
        if self._wal is None or time.monotonic() < self._next_checkpoint:
            return
        try:
            size = os.stat(self._wal).st_size
        except FileNotFoundError:
            return
        if size < CHECKPOINT_BYTES:
            return
        self._next_checkpoint = time.monotonic() + 1.0
        raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.checkpoints += 1
        if size < RESTART_BYTES:
            return
        # Most of the WAL is copied now, with the writers going on; what the restart copies under
        # the lock is only what they wrote meanwhile.
        self.acquire(raw)
        try:
            raw.execute(f"PRAGMA busy_timeout={int(RESTART_WAIT_SECONDS * 1000)}")
            (busy, _, _) = raw.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
            self.release(raw)
        self.restarts += 0 if busy else 1


_WRITERS: weakref.WeakKeyDictionary[Engine, SqliteWriter] = weakref.WeakKeyDictionary()


def _driver(dbapi_connection: Any) -> Any:
    return getattr(dbapi_connection, "driver_connection", dbapi_connection)


def _sqlite_begin(writer: SqliteWriter, conn: Any) -> None:
    # pysqlite would start a transaction only at the first write, so two writers could both read
    # the same state first (a read-then-write race). BEGIN IMMEDIATE takes the write lock at once;
    # in WAL mode readers on other connections still proceed. A session that only reads says so
    # (see read_only) and gets a plain BEGIN: a snapshot that blocks no writer.
    # Straight on the driver: SQLAlchemy's execution path costs more than the BEGIN itself, on
    # every transaction of every counter action.
    raw = conn.connection.driver_connection
    if conn.get_execution_options().get("jlis_read_only"):
        raw.execute("BEGIN")
        return
    writer.acquire(raw)
    try:
        raw.execute("BEGIN IMMEDIATE")
    except BaseException:
        writer.release(raw)
        raise


def _install_writer(engine: Engine, path: str | None) -> SqliteWriter:
    """Queue this process's writers of ``engine`` on a :class:`SqliteWriter`: taken in the ``begin``
    event, released after the dialect's commit or rollback (SQLAlchemy has events only before
    them) and by the pool when a connection goes away in the middle of a transaction."""
    writer = SqliteWriter(path)
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        commit(dbapi_connection)  # a failed COMMIT leaves the transaction open: its ROLLBACK releases
        raw = _driver(dbapi_connection)
        writer.release(raw)
        writer.checkpoint_if_due(raw)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            writer.release(_driver(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    def gone(dbapi_connection: Any, *_: Any) -> None:
        writer.release(_driver(dbapi_connection))

    for name in ("checkin", "close", "invalidate", "soft_invalidate", "close_detached"):
        event.listen(engine.pool, name, gone)
    event.listen(engine, "begin", partial(_sqlite_begin, writer))
    _WRITERS[engine] = writer
    return writer


def sqlite_writer(engine: Engine) -> SqliteWriter | None:
    """The in-process write lock of a SQLite engine made by :func:`make_engine` (None otherwise)."""
    return _WRITERS.get(engine)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``. A SQLite URL may end with ``?cache_mib=N``: each connection's page
    cache in MiB instead of ``SQLITE_CACHE_KIB`` (a deployment with many connections and little
    memory may want it smaller)."""
    if url.startswith("sqlite"):
        parsed = make_url(url)
        cache_kib = 0
        if "cache_mib" in parsed.query:
            cache_kib = _cache_mib(parsed.query["cache_mib"]) * 1024
            url = parsed.difference_update_query(["cache_mib"]).render_as_string(hide_password=False)
        path = parsed.database
        if not path or path == ":memory:" or path.startswith("file:"):
            path = None  # a memory database, or a URI form: no file to lock beside
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Connections that can plan a transaction (jlis.planned); otherwise plain sqlite3 ones.
        connect_args = {"factory": PlanningConnection, **kwargs.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, cache_kib=cache_kib))
        _install_writer(engine, path)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    if engine.dialect.driver == "psycopg":
        event.listen(engine, "do_connect", _write_behind_connect)
    return engine


def _write_behind_connect(_dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
    """psycopg connections that can hold writes back (jlis.writebehind), their session in UTC
    (unless the URL sets options): jlis stores and compares UTC times, and psycopg then reads a
    ``timestamptz`` as aware in ``datetime.UTC``, which UtcDateTime takes as it is."""
    from jlis.writebehind import WriteBehindConnection

    cparams.setdefault("options", "-c TimeZone=UTC")
    return WriteBehindConnection.connect(*cargs, **cparams)


def _cache_mib(raw: Any) -> int:
    value = raw[-1] if isinstance(raw, tuple) else raw
    if not str(value).isdigit() or not 1 <= int(value) <= 65536:
        raise ValueError(
            f"database URL cache_mib: must be a whole number of MiB from 1 to 65536, not {value!r}"
        )
    return int(value)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error."""
    with factory() as session, session.begin():
        yield session


def read_only(session: Session) -> Session:
    """Mark a fresh session as a reader (call before its first statement): on SQLite it then takes
    no write lock, so a long read such as an audit verification never holds up the writers."""
    session.connection(execution_options=READ_ONLY)
    return session


def import_all_tables() -> None:
    """Import every package's tables so that ``Base.metadata`` is complete (migrations, create_all)."""
    import importlib

    for module in (
        "jlis.codes.tables",
        "jlis.messaging.tables",
        "jlis.registry.tables",
        "jlis.juki.tables",
        "jlis.audit.tables",
        "jlis.auth.tables",
        "jlis.jpki.tables",
        "jlis.card.tables",
        "jlis.linkage.hub.tables",
        "jlis.linkage.exchange.tables",
        "jlis.linkage.middle.tables",
        "jlis.linkage.portal.tables",
        "jlis.lgwan.tables",
        "jlis.kiosk.pdf.tables",
        "jlis.kiosk.issuer.tables",
        "jlis.kiosk.center.tables",
        "jlis.kiosk.screen.tables",
        "jlis.bcl.tables",
    ):
        importlib.import_module(module)
