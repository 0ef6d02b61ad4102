"""The in-process SQLite write lock (jlis.db.SqliteWriter): writers of one process queue on it, it is
released by commit, rollback and a connection that goes away, and readers never take it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from jlis.db import make_engine, make_session_factory, read_only, sqlite_writer, transaction


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
