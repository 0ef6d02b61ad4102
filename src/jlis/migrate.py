"""`jlis db upgrade`: Alembic driven from the package, so an installed jlis can migrate any database."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config

from jlis.db import UtcDateTime

MIGRATIONS = Path(__file__).parent / "migrations"

# Created by the append-only DDL of the audit log and of the exchange records (jlis.audit.tables,
# jlis.linkage.exchange.tables), not by the metadata.
UNMANAGED_TABLES = {"audit_purge_permit", "linkage_purge_permit"}


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name in UNMANAGED_TABLES)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # UtcDateTime converts in Python only; in the schema it is a timezone-aware DateTime.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from jlis.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return rev
