"""Alembic environment: the URL comes from jlis settings (or the caller's config), the target
metadata from every package's tables."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from jlis.db import Base, import_all_tables, make_engine
from jlis.migrate import include_object, render_item
from jlis.settings import load_settings

import_all_tables()
config = context.config


url = config.get_main_option("sqlalchemy.url") or load_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
        include_object=include_object,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _driver(connection: Connection) -> Any:
    return connection.connection.driver_connection


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A table SQLite must copy (batch mode) is dropped while other tables' foreign keys
            # point at it: checks are off while the migrations run (they cannot be turned off
            # inside a transaction, so before it begins), and the whole database is checked once
            # before the commit instead.
            _driver(connection).execute("PRAGMA foreign_keys = OFF")
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=include_object,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migrations broke foreign keys: {broken[:5]}")
        if sqlite:
            _driver(connection).execute("PRAGMA foreign_keys = ON")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
