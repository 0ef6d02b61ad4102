"""Shared pieces of the benchmarks: fresh databases, the machine line, percentiles, a closed-loop
driver of requests in worker processes."""

from __future__ import annotations

import concurrent.futures as cf
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
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


def _timed(fn: Callable[[tuple[int, float]], Any], task: tuple[int, float]) -> tuple[Any, float]:
    """``fn(task)`` and the CPU time the worker process spent on it."""
    cpu = time.process_time()
    out = fn(task)
    return out, time.process_time() - cpu


def closed_loop(
    pool: cf.ProcessPoolExecutor,
    fn: Callable[[tuple[int, float]], Any],
    n: int,
    concurrency: int,
    *,
    start: int = 0,
) -> dict[str, Any]:
    """``concurrency`` requests in flight until ``n`` have completed. ``fn`` (a module-level
    function, run in the pool) gets ``(index, submitted at)`` and returns a tuple whose first three
    items are (index, submitted at, finished at): the latency is the difference."""
    results: list[Any] = []
    cpu: list[float] = []
    started = time.time()
    pending: set[cf.Future[Any]] = set()
    next_i = start
    while next_i < start + min(concurrency, n):
        pending.add(pool.submit(_timed, fn, (next_i, time.time())))
        next_i += 1
    while pending:
        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for f in done:
            out, spent = f.result()
            results.append(out)
            cpu.append(spent)
            if next_i < start + n:
                pending.add(pool.submit(_timed, fn, (next_i, time.time())))
                next_i += 1
    elapsed = time.time() - started
    latencies = [r[2] - r[1] for r in results]
    return {
        "n": n,
        "seconds": elapsed,
        "per_second": n / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_ms": percentile(cpu, 50) * 1000,
        "results": results,
    }
