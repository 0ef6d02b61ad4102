"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL,
including the audit log's append-only triggers; and they go down again cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from jlis.db import Base, import_all_tables, make_engine
from jlis.migrate import alembic_config, current, include_object, upgrade

from ..conftest import POSTGRES_URL, WORKER, require_or_skip


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    require_or_skip(bool(POSTGRES_URL), "PostgreSQL (JLIS_TEST_POSTGRES_URL)")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"jlis_migration_test{('_' + WORKER) if WORKER else ''}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_builds_the_declared_schema(database_url: str) -> None:
    import_all_tables()
    upgrade(database_url)
    assert current(database_url) == _head()
    engine = make_engine(database_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include_object})
        assert compare_metadata(ctx, Base.metadata) == []
        assert set(inspect(conn).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_entries (chain, seq, at, actor, action, subject, details, prev_hash, "
                "hash) VALUES ('t', 1, CURRENT_TIMESTAMP, 'a', 'read', NULL, '{}', 'x', 'y')"
            )
        )
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET actor = 'b'"))
    engine.dispose()


def _head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_principal_kinds_follow_the_migrations(database_url: str) -> None:
    """0002 lets JPKI verifiers sign in (a CHECK constraint that autogenerate does not compare);
    a kind nobody declared is still refused, and the downgrade puts the old rule back."""
    from alembic import command

    upgrade(database_url)
    engine = make_engine(database_url)
    insert = (
        "INSERT INTO auth_principals (username, kind, password_hash, display_name, disabled, created_at) "
        "VALUES (:u, :k, 'x', 'x', false, CURRENT_TIMESTAMP)"
    )
    with engine.begin() as conn:
        conn.execute(text(insert), {"u": "verifier-a", "k": "verifier"})
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(insert), {"u": "someone", "k": "wizard"})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_principals"))
    engine.dispose()
    command.downgrade(alembic_config(database_url), "0001")
    engine = make_engine(database_url)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(insert), {"u": "verifier-b", "k": "verifier"})
    engine.dispose()


def test_downgrade_removes_everything(database_url: str) -> None:
    from alembic import command

    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "base")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_households_become_autoincrement_on_sqlite_with_their_residents_kept(tmp_path: Path) -> None:
    """0009 copies reg_households into an AUTOINCREMENT table (for the counters' reserved ids); the
    residents that point at a household still do, and the foreign key still holds."""
    url = f"sqlite:///{tmp_path / 'with-data.sqlite3'}"
    upgrade(url, "0008")
    engine = make_engine(url)
    resident = (
        "INSERT INTO reg_residents (id, lg_code, resident_code, my_number, household_id, relationship, "
        "family_name, given_name, family_kana, given_kana, nationality, birth_date, sex, town_id, banchi, "
        "address_text, resident_since, address_since, notified_on, status, last_reason, last_change_date, "
        "version) VALUES (7, '131016', '12345678901', '123456789018', :hh, '世帯主', '山田', '太郎', "
        "'ヤマダ', 'タロウ', 'JP', '1980-01-01', 'male', 't', '1', 'a', '2020-01-01', '2020-01-01', "
        "'2020-01-01', 'active', 'initial', '2020-01-01', 0)"
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO reg_households (id, lg_code, household_no, created_on) "
                "VALUES (41, '131016', '0000000041', '2020-01-01')"
            )
        )
        conn.execute(text(resident), {"hh": 41})
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT household_id FROM reg_residents WHERE id = 7")).scalar_one() == 41
        assert (
            conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'reg_households'")).scalar() == 41
        )
        assert (
            "AUTOINCREMENT"
            in conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'reg_households'")).scalar_one()
        )
    with pytest.raises(DBAPIError, match="FOREIGN KEY"), engine.begin() as conn:
        conn.execute(text(resident.replace("(7,", "(8,")), {"hh": 999})
    engine.dispose()


def test_delivered_messages_leave_the_outbox_and_seqs_are_not_handed_out_again(tmp_path: Path) -> None:
    """0010 deletes the delivered rows and keeps the waiting ones; on SQLite the next message's seq
    comes after every seq handed out before, the deleted ones included."""
    url = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    upgrade(url, "0009")
    engine = make_engine(url)
    message = (
        "INSERT INTO outbox (seq, message_id, source, destination, topic, key, payload, created_at, "
        "delivered_at, attempts) VALUES (:seq, :mid, 's', 'd', 't', 'k', '{}', CURRENT_TIMESTAMP, :at, 0)"
    )
    with engine.begin() as conn:
        conn.execute(text(message), {"seq": 5, "mid": "waiting", "at": None})
        conn.execute(text(message), {"seq": 9, "mid": "delivered", "at": "2026-11-27 00:00:00"})
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT seq, message_id FROM outbox")).all() == [(5, "waiting")]
        conn.execute(
            text(
                "INSERT INTO outbox (message_id, source, destination, topic, key, payload, created_at, "
                "attempts) VALUES ('new', 's', 'd', 't', 'k', '{}', CURRENT_TIMESTAMP, 0)"
            )
        )
        assert conn.execute(text("SELECT seq FROM outbox WHERE message_id = 'new'")).scalar_one() == 10
    engine.dispose()
