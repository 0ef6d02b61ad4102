"""Fixtures for the audit tests: an attacker's raw SQL that gets past the append-only triggers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

Tamper = Callable[[Session, str, dict[str, Any] | None], None]


def _tamper(session: Session, sql: str, params: dict[str, Any] | None = None) -> None:
    """Run ``sql`` as someone with full database access would: around the triggers, not through them."""
    if session.get_bind().dialect.name == "postgresql":
        # Superuser-only, transaction-local: disables triggers without changing the shared schema.
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_update"))
        session.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_delete"))
    session.execute(text(sql), params or {})


@pytest.fixture
def tamper() -> Tamper:
    return _tamper
