"""Shared pieces of the benchmarks: fresh databases, the machine line, percentiles."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from jlis.db import Base, import_all_tables, make_engine

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )


def fresh_sqlite(name: str) -> Engine:
    path = Path(tempfile.mkdtemp(prefix="jlis-bench-")) / f"{name}.sqlite3"
    return schema(make_engine(f"sqlite:///{path}"))


def fresh_postgres(admin_url: str, name: str) -> Engine:
    """Drop and create database ``name`` next to ``admin_url``'s, and lay the schema into it."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name)
    return schema(make_engine(url.render_as_string(hide_password=False)))


def schema(engine: Engine) -> Engine:
    import_all_tables()
    Base.metadata.create_all(engine)
    return engine


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "mean_ms": statistics.fmean(values) * 1000 if values else float("nan"),
    }
