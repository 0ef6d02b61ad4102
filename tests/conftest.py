"""Shared fixtures.

Database tests take the ``factory`` fixture, which runs each test on SQLite and, when
``JLIS_TEST_POSTGRES_URL`` is set (CI sets it), again on PostgreSQL. Under CI (``CI=true``) a
missing PostgreSQL or Chromium is an error, never a silent skip.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import JST, FixedClock
from jlis.db import Base, import_all_tables, make_engine, make_session_factory
from jlis.registry.store import forget_household_ids

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Under pytest-xdist each worker gets a database of its own (<name>_gw0, …), created on first use:
# the fixture below drops, creates and truncates tables, which workers sharing one would break.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _worker_database(url: str) -> str:
    if not url or not WORKER:
        return url
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{WORKER}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


POSTGRES_URL = _worker_database(os.environ.get("JLIS_TEST_POSTGRES_URL", ""))


def require_or_skip(available: bool, what: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI but is not available")
    pytest.skip(f"{what} not available")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST))


_pg_engine: Engine | None = None


def _postgres_engine() -> Engine:
    global _pg_engine
    if _pg_engine is None:
        import_all_tables()
        _pg_engine = make_engine(POSTGRES_URL)
        with _pg_engine.begin() as conn:
            Base.metadata.drop_all(conn)
            Base.metadata.create_all(conn)
    return _pg_engine


@contextmanager
def sqlite_engine(path: Path) -> Iterator[Engine]:
    """A fresh SQLite database at ``path`` with every table."""
    import_all_tables()
    eng = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    import_all_tables()
    if request.param == "sqlite":
        with sqlite_engine(tmp_path / "test.sqlite3") as eng:
            yield eng
        return
    require_or_skip(bool(POSTGRES_URL), "PostgreSQL (JLIS_TEST_POSTGRES_URL)")
    eng = _postgres_engine()
    yield eng
    with eng.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    forget_household_ids(eng)  # the sequences start over: ids reserved from them would clash


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
