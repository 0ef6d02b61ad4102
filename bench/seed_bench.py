"""Seeding rate against the raw insert rate of the same rows through the same driver.

    .venv/bin/python bench/seed_bench.py --residents 100000 [--postgres URL] [--no-sqlite]

For each database: seed a fresh database with ``jlis.seed.Seeder`` (generation, numbering,
register rows, history and the initial load of every network tier), then read back every row it
wrote and insert exactly those rows into a second fresh database with the bare driver
(``executemany`` on sqlite3, ``COPY`` on psycopg), in one transaction. Both are reported as
residents per second; the target is seed/raw ≥ 0.3. The raw ``COPY`` is in PostgreSQL's binary
format wherever every column's type has a plain one (as jlis.bulk's is), in text otherwise: the
yardstick is the driver's fastest way, not a slower one beside jlis's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.common import DEFAULT_PG, fresh_postgres, fresh_sqlite, machine
from jlis.clock import JST, FixedClock
from jlis.db import Base, make_session_factory
from jlis.masters import load_geography
from jlis.seed import Seeder, choose_municipalities

SECRET = b"bench-secret-bench-secret-000000"


def seed(engine: Engine, residents: int, municipalities: int) -> float:
    geo = load_geography()
    clock = FixedClock(dt.datetime(2026, 11, 26, 9, 0, tzinfo=JST))
    seeder = Seeder(make_session_factory(engine), clock=clock, geography=geo, secret=SECRET)
    lg_codes = choose_municipalities(geo, municipalities)
    started = time.perf_counter()
    seeder.run(lg_codes, residents, seed=1, chunk=10_000)
    return time.perf_counter() - started


def dump(engine: Engine) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    out: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table)).all()
            if rows:
                out[table.name] = ([c.name for c in table.columns], [tuple(r) for r in rows])
    return out


# Types whose binary form psycopg writes from the value alone (text, varchar, int2/4/8, bool, date,
# timestamptz, bytea), by OID.
BINARY_OIDS = frozenset({25, 1043, 21, 23, 20, 16, 1082, 1184, 17})


def binary_types(driver: Any, name: str, cols: list[str]) -> list[int] | None:
    """The type OIDs of ``cols`` of table ``name`` when every one has a plain binary form."""
    found = dict(
        driver.execute(
            "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
            (f'"{name}"',),
        ).fetchall()
    )
    oids = [found[c] for c in cols]
    return oids if all(o in BINARY_OIDS for o in oids) else None


def raw_insert(engine: Engine, data: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> float:
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        if engine.dialect.name == "postgresql":
            types = {name: binary_types(driver, name, cols) for name, (cols, _) in data.items()}
            driver.commit()  # type: ignore[union-attr]
        started = time.perf_counter()
        if engine.dialect.name == "postgresql":
            with driver.cursor() as cur:  # type: ignore[union-attr]
                for name, (cols, rows) in data.items():
                    quoted = ", ".join(f'"{c}"' for c in cols)
                    oids = types[name]
                    binary = " (FORMAT BINARY)" if oids is not None else ""
                    with cur.copy(f'COPY "{name}" ({quoted}) FROM STDIN{binary}') as copy:
                        if oids is not None:
                            copy.set_types(oids)
                        for row in rows:
                            copy.write_row(row)
            driver.commit()  # type: ignore[union-attr]
        else:
            cur = driver.cursor()  # type: ignore[union-attr]
            cur.execute("BEGIN")
            for name, (cols, rows) in data.items():
                marks = ", ".join("?" for _ in cols)
                quoted = ", ".join(f'"{c}"' for c in cols)
                cur.executemany(f'INSERT INTO "{name}" ({quoted}) VALUES ({marks})', rows)
            cur.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        raw.close()


def run(kind: str, make: Any, residents: int, municipalities: int) -> None:
    seeded = make("seed")
    t_seed = seed(seeded, residents, municipalities)
    data = dump(seeded)
    rows = sum(len(r) for _, r in data.values())
    seeded.dispose()
    target = make("raw")
    t_raw = raw_insert(target, data)
    target.dispose()
    seed_rate, raw_rate = residents / t_seed, residents / t_raw
    print(
        f"{kind:10} seed {seed_rate:10,.0f} residents/s ({t_seed:6.1f} s)   "
        f"raw {raw_rate:10,.0f} residents/s ({t_raw:6.1f} s, {rows:,} rows in {len(data)} tables)   "
        f"ratio {seed_rate / raw_rate:5.3f}  "
        f"(target ≥ 0.30: {'met' if seed_rate >= 0.3 * raw_rate else 'NOT met'})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--municipalities", type=int, default=10)
    ap.add_argument("--postgres", default=None, help=f"admin URL, e.g. {DEFAULT_PG}")
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    print(f"seed benchmark: {args.residents:,} residents, {args.municipalities} municipalities — {machine()}")
    if not args.no_sqlite:
        run("sqlite", fresh_sqlite, args.residents, args.municipalities)
    if args.postgres:
        run(
            "postgresql",
            lambda n: fresh_postgres(args.postgres, f"jlis_bench_{n}"),
            args.residents,
            args.municipalities,
        )


if __name__ == "__main__":
    main()
