"""The SQLite write lock (jlis.db.SqliteWriter): writers of one process queue on it, writers of other
processes on its lock file; it is released by commit, rollback and a connection that goes away, and
readers never take it. And UtcDateTime's own SQLite processors, which must write and read exactly
what SQLAlchemy's would."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, TypeDecorator, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from jlis.db import (
    SQLITE_CACHE_KIB,
    UtcDateTime,
    _default_sqlite_format,
    make_engine,
    make_session_factory,
    read_only,
    sqlite_writer,
    transaction,
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def _locked(engine: Engine) -> bool:
    writer = sqlite_writer(engine)
    assert writer is not None
    return writer._lock.locked()


def test_commit_and_rollback_release_the_lock(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        assert _locked(engine)
    assert not _locked(engine)
    with pytest.raises(ValueError), transaction(factory) as s:
        s.execute(text("INSERT INTO t VALUES (2)"))
        raise ValueError
    assert not _locked(engine)
    with factory() as s:
        assert s.execute(text("SELECT n FROM t")).scalars().all() == [1]


def test_a_reader_takes_no_lock(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as s:
        read_only(s)
        s.execute(text("SELECT count(*) FROM t"))
        assert not _locked(engine)


def test_an_invalidated_connection_releases_the_lock(engine: Engine) -> None:
    conn = engine.connect()
    conn.begin()
    conn.execute(text("INSERT INTO t VALUES (3)"))
    assert _locked(engine)
    conn.invalidate()
    assert not _locked(engine)
    conn.close()


def test_a_second_writer_waits_for_the_first_then_goes_on(engine: Engine) -> None:
    factory = make_session_factory(engine)
    writer = sqlite_writer(engine)
    assert writer is not None
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with transaction(factory) as s:
            s.execute(text("INSERT INTO t VALUES (10)"))
            inside.set()
            release.wait(5)
            order.append("first")

    def second() -> None:
        with transaction(factory) as s:
            s.execute(text("INSERT INTO t VALUES (20)"))
            order.append("second")

    t1 = threading.Thread(target=first)
    t1.start()
    assert inside.wait(5)
    t2 = threading.Thread(target=second)
    t2.start()
    while writer.waits == 0:  # the second writer is queued on the lock, not in SQLite's busy handler
        threading.Event().wait(0.001)
    release.set()
    t1.join(5)
    t2.join(5)
    assert order == ["first", "second"]
    with factory() as s:
        assert sorted(s.execute(text("SELECT n FROM t")).scalars()) == [10, 20]


_HOLDER = """
import sys, time
from pathlib import Path
from sqlalchemy import text
from jlis.db import make_engine
engine = make_engine(sys.argv[1])
with engine.begin() as c:
    c.execute(text("INSERT INTO t VALUES (7)"))
    Path(sys.argv[2]).touch()
    time.sleep(0.5)
engine.dispose()
"""


def test_a_writer_of_another_process_is_waited_for_on_the_lock_file(engine: Engine, tmp_path: Path) -> None:
    held = tmp_path / "held"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(engine.url), str(held)])
    try:
        while not held.exists():
            assert child.poll() is None, "the holder process died"
            time.sleep(0.005)
        assert Path(f"{engine.url.database}-writer").exists()
        writer = sqlite_writer(engine)
        assert writer is not None and writer.waits == 0
        started = time.monotonic()
        with transaction(make_session_factory(engine)) as s:
            s.execute(text("INSERT INTO t VALUES (8)"))  # BEGIN IMMEDIATE comes with the first statement
            waited = time.monotonic() - started
        assert writer.waits == 1  # queued on the other process's flock, not in SQLite's busy handler
        assert 0.2 < waited < 5
    finally:
        assert child.wait(timeout=30) == 0
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == [7, 8]


def test_a_forked_child_takes_the_lock_file_for_itself(engine: Engine) -> None:
    """A child of fork() inherits the parent's open lock file, and would share its flock: it opens
    its own, so parent and child exclude each other."""
    factory = make_session_factory(engine)
    with transaction(factory) as s:  # the parent opens its lock file
        s.execute(text("INSERT INTO t VALUES (1)"))
    ready, go = multiprocessing.get_context("fork").Event(), multiprocessing.get_context("fork").Event()

    def child() -> None:
        with transaction(factory) as s:
            s.execute(text("INSERT INTO t VALUES (2)"))
            ready.set()
            go.wait(10)
        os._exit(0)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    try:
        assert ready.wait(10)
        writer = sqlite_writer(engine)
        assert writer is not None
        done = threading.Event()

        def parent_write() -> None:
            with transaction(factory) as s:
                s.execute(text("INSERT INTO t VALUES (3)"))
            done.set()

        thread = threading.Thread(target=parent_write)
        thread.start()
        assert not done.wait(0.3)  # the child holds the lock: the parent waits
        go.set()
        assert done.wait(10)
        thread.join()
        assert writer.waits == 1  # on the flock: a shared lock file would have let it through
    finally:
        go.set()
        proc.join(10)
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == [1, 2, 3]


def test_each_connection_keeps_a_larger_page_cache(engine: Engine) -> None:
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB == -65536


def test_the_database_url_can_set_the_page_cache(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'small.sqlite3'}?cache_mib=16")
    try:
        with engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA cache_size").scalar() == -16 * 1024
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert (tmp_path / "small.sqlite3").exists()  # the file of the URL without the parameter
    finally:
        engine.dispose()


@pytest.mark.parametrize("value", ["0", "-1", "lots", "1.5", "70000"])
def test_a_bad_page_cache_size_is_refused_by_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="cache_mib: must be a whole number of MiB from 1 to 65536"):
        make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}?cache_mib={value}")


def test_a_commit_checkpoints_a_large_wal_after_releasing_the_lock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's automatic checkpoint would run inside COMMIT, with every queued writer waiting on it;
    jlis turns it off and checkpoints after the release, once the WAL has reached CHECKPOINT_BYTES."""
    writer = sqlite_writer(engine)
    assert writer is not None
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    held_during: list[bool] = []
    real = writer.checkpoint_if_due

    def watched(raw: object) -> None:
        held_during.append(writer._lock.locked())
        real(raw)

    monkeypatch.setattr(writer, "checkpoint_if_due", watched)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
    assert writer.checkpoints == 0  # the WAL is far below the mark
    monkeypatch.setattr("jlis.db.CHECKPOINT_BYTES", 1)
    with transaction(factory) as s:
        s.execute(text("INSERT INTO t VALUES (2)"))
    assert writer.checkpoints == 1 and held_during == [False, False]
    raw = sqlite3.connect(str(engine.url.database))
    try:
        busy, log, done = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        raw.close()
    assert busy == 0 and log == done  # everything was copied back


def _wal_frames(engine: Engine) -> int:
    """The frames in the WAL now (a PASSIVE checkpoint reports them)."""
    raw = sqlite3.connect(str(engine.url.database))
    try:
        return int(raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        raw.close()


def _reader_in_the_wal(engine: Engine, seconds: float) -> threading.Thread:
    """Another connection reading a snapshot that is in the WAL, for ``seconds``."""
    started = threading.Event()

    def read() -> None:
        raw = sqlite3.connect(str(engine.url.database), isolation_level=None)
        raw.execute("BEGIN")
        raw.execute("SELECT count(*) FROM t").fetchone()
        started.set()
        time.sleep(seconds)
        raw.execute("ROLLBACK")
        raw.close()

    thread = threading.Thread(target=read)
    thread.start()
    assert started.wait(5)
    return thread


@pytest.mark.parametrize("reader_seconds", [0.05, 3.0])
def test_a_wal_past_the_restart_mark_starts_over_once_its_readers_are_done(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, reader_seconds: float
) -> None:
    """A PASSIVE checkpoint cannot start the WAL over while a reader's snapshot is in it. Past
    RESTART_BYTES the checkpoint waits for such readers, up to RESTART_WAIT_SECONDS, and the WAL
    starts over; a reader that takes longer costs only the attempt, and the writers go on."""
    writer = sqlite_writer(engine)
    assert writer is not None
    factory = make_session_factory(engine)
    for n in range(20):
        with transaction(factory) as s:
            s.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
    before = _wal_frames(engine)
    monkeypatch.setattr("jlis.db.CHECKPOINT_BYTES", 1)
    monkeypatch.setattr("jlis.db.RESTART_BYTES", 1)
    monkeypatch.setattr("jlis.db.RESTART_WAIT_SECONDS", 0.5)
    reader = _reader_in_the_wal(engine, reader_seconds)
    started = time.monotonic()
    with transaction(factory) as s:
        s.execute(text("INSERT INTO t VALUES (100)"))
    took = time.monotonic() - started
    reader.join()
    monkeypatch.setattr("jlis.db.CHECKPOINT_BYTES", 10**12)
    with transaction(factory) as s:  # the next write: at the WAL's start if it started over
        s.execute(text("INSERT INTO t VALUES (101)"))
    assert writer.checkpoints == 1
    if reader_seconds < 0.5:
        assert writer.restarts == 1
        assert _wal_frames(engine) < before
    else:
        assert writer.restarts == 0
        assert 0.5 <= took < 2.5  # gave up after the wait, not after the reader
    with engine.connect() as c:  # the wait was on this process's connection only: restored
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


_SQLITE = sqlite.dialect()
_POSTGRES = postgresql.psycopg.dialect()
_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
_AWARE = st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=_OFFSETS)


@given(_AWARE)
def test_utc_datetime_writes_and_reads_sqlites_text_as_sqlalchemy_would(value: dt.datetime) -> None:
    ours = UtcDateTime().dialect_impl(_SQLITE)
    bind = ours.bind_processor(_SQLITE)
    result = ours.result_processor(_SQLITE, None)
    sqlalchemys_bind = TypeDecorator.bind_processor(ours, _SQLITE)
    sqlalchemys_result = TypeDecorator.result_processor(ours, _SQLITE, None)
    assert bind.__qualname__.startswith("UtcDateTime.")  # the fast path is the one in use
    stored = bind(value)
    assert stored == sqlalchemys_bind(value)
    assert result(stored) == sqlalchemys_result(stored) == value
    assert result(stored).tzinfo is dt.UTC
    assert bind(None) is None and result(None) is None


@given(_AWARE)
def test_utc_datetime_binds_and_reads_postgresqls_values_as_sqlalchemy_would(value: dt.datetime) -> None:
    ours = UtcDateTime().dialect_impl(_POSTGRES)
    bind, result = ours.bind_processor(_POSTGRES), ours.result_processor(_POSTGRES, None)
    assert bind.__qualname__.startswith("UtcDateTime.")  # the fast path is the one in use
    assert bind(value) == TypeDecorator.bind_processor(ours, _POSTGRES)(value) == value
    assert bind(value).tzinfo is dt.UTC
    tokyo = value.astimezone(ZoneInfo("Asia/Tokyo"))  # a session in another zone reads this
    for read in (value, tokyo, value.astimezone(dt.UTC)):
        assert result(read) == TypeDecorator.result_processor(ours, _POSTGRES, None)(read) == value
        assert result(read).tzinfo is dt.UTC
    assert bind(None) is None and result(None) is None


def test_utc_datetime_refuses_a_naive_time_and_reads_shorter_texts(engine: Engine) -> None:
    ours = UtcDateTime().dialect_impl(engine.dialect)
    with pytest.raises(ValueError, match="aware datetime"):
        ours.bind_processor(engine.dialect)(dt.datetime(2026, 11, 26, 9, 0))
    table = Table("times", MetaData(), Column("n", Integer, primary_key=True), Column("at", UtcDateTime))
    table.create(engine)
    with engine.begin() as c:  # written by hand, as an older row or another tool might have
        c.execute(
            text(
                "INSERT INTO times VALUES (1, '2026-11-26 00:00:01'), (2, '2026-11-26'), "
                "(4, '2026-11-26T09:00:00+09:00')"
            )
        )
        c.execute(insert(table).values(n=3, at=dt.datetime(2026, 11, 26, 9, 0, 1, 5, tzinfo=dt.UTC)))
        stored = c.execute(text("SELECT at FROM times WHERE n = 3")).scalar_one()
        read = c.execute(select(table.c.at).order_by(table.c.n)).scalars().all()
    assert stored == "2026-11-26 09:00:01.000005"
    assert read == [
        dt.datetime(2026, 11, 26, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 26, 9, 0, 1, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC),  # the offset converted, not replaced
    ]


def test_another_sqlite_storage_format_keeps_sqlalchemys_processors() -> None:
    assert _default_sqlite_format(_SQLITE, DateTime(timezone=True))
    assert not _default_sqlite_format(
        _SQLITE, sqlite.DATETIME(storage_format="%(year)04d%(month)02d%(day)02d")
    )
