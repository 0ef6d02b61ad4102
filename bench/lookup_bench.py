"""National look-up: provision queries by 住民票コード over a national copy of 1,000,000 people.

    .venv/bin/python -m bench.lookup_bench [--records 1000000] [--queries 20000] [--postgres ADMIN_URL]

The national copy is bulk-loaded (初期移行) with synthetic people; then ``--queries`` provision
queries by 住民票コード are made in-process, one per transaction, exactly as the agency API makes
them: the legal-table check, the indexed read, the hash-chained provision-log entry and the commit.
Printed beside them, as the baseline of the same run: bare primary-key look-ups of the same codes
through the same driver (no audit, no commit). Target: p99 under 5 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

from faker import Faker
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.common import DEFAULT_PG, fresh_postgres, fresh_sqlite, machine, summary
from jlis.clock import JST, FixedClock
from jlis.codes import random_my_number, random_resident_code
from jlis.db import make_session_factory, transaction
from jlis.juki import ProvisionService, bulk_load_national
from jlis.juki.tables import NationalIdentity
from jlis.masters import load_provision_table
from jlis.registry import ChangeReason, IdentityRecord

CLOCK = FixedClock(dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST))
AGENCY, AFFAIR = "nenkin", "national_pension_benefit"


def load(engine: Engine, records: int) -> list[str]:
    rng = random.Random(11)
    fake = Faker("ja_JP")
    fake.seed_instance(11)
    families = [fake.last_name_pair() for _ in range(500)]
    givens = [fake.first_name_pair() for _ in range(500)]
    factory = make_session_factory(engine)
    now = CLOCK.now()
    codes: list[str] = []
    seen: set[str] = set()
    for start in range(0, records, 50_000):
        batch = []
        for i in range(start, min(records, start + 50_000)):
            code = random_resident_code(rng)
            while code in seen:
                code = random_resident_code(rng)
            seen.add(code)
            fam, giv = families[i % 500], givens[(i * 7) % 500]
            batch.append(
                IdentityRecord(
                    resident_code=code,
                    my_number=random_my_number(rng),
                    lg_code="131016",
                    family_name=fam[0],
                    given_name=giv[0],
                    family_kana=fam[1],
                    given_kana=giv[1],
                    alias=None,
                    former_surname=None,
                    birth_date=dt.date(1930, 1, 1) + dt.timedelta(days=i % 30000),
                    sex="male" if i % 2 else "female",
                    address=f"東京都千代田区千代田{i % 999 + 1}番地",
                    status="active",
                    reason=ChangeReason.INITIAL,
                    change_date=dt.date(2020, 4, 1),
                    recorded_at=now,
                )
            )
        codes.extend(r.resident_code for r in batch[::50])
        with transaction(factory) as s:
            bulk_load_national(s, batch)
    return codes


def run(kind: str, engine: Engine, records: int, queries: int) -> None:
    t0 = time.perf_counter()
    codes = load(engine, records)
    print(f"{kind:10} loaded {records:,} national records in {time.perf_counter() - t0:.0f} s")
    factory = make_session_factory(engine)
    table = load_provision_table()
    rng = random.Random(3)
    sample = [rng.choice(codes) for _ in range(queries)]

    # Baseline: the bare indexed read of the same rows through the same driver.
    col = NationalIdentity.__table__.c
    stmt = select(col.family_name, col.address).where(col.resident_code == "?")
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True})).replace(
        "'?'", "%s" if kind == "postgresql" else "?"
    )
    raw = engine.raw_connection()
    cur = raw.cursor()
    base: list[float] = []
    started = time.perf_counter()
    for code in sample:
        t = time.perf_counter()
        cur.execute(sql, (code,))
        assert cur.fetchone()
        base.append(time.perf_counter() - t)
    base_rate = queries / (time.perf_counter() - started)
    raw.close()

    lat: list[float] = []
    started = time.perf_counter()
    for code in sample:
        t = time.perf_counter()
        with transaction(factory) as s:
            result = ProvisionService(s, CLOCK, table).query(AGENCY, AFFAIR, resident_code=code)
        lat.append(time.perf_counter() - t)
        assert result.records
    rate = queries / (time.perf_counter() - started)
    q, b = summary(lat), summary(base)
    print(
        f"{kind:10} {queries:,} provision queries: {rate:8,.0f}/s, p50 {q['p50_ms']:.2f} ms, "
        f"p99 {q['p99_ms']:.2f} ms (target p99 < 5 ms: {'met' if q['p99_ms'] < 5 else 'NOT met'})   "
        f"baseline bare read {base_rate:8,.0f}/s, p99 {b['p99_ms']:.3f} ms; ratio {rate / base_rate:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--postgres", default=None, help=f"admin URL, e.g. {DEFAULT_PG}")
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    print(f"lookup benchmark — {machine()}")
    if not args.no_sqlite:
        run("sqlite", fresh_sqlite("lookup"), args.records, args.queries)
    if args.postgres:
        run("postgresql", fresh_postgres(args.postgres, "jlis_bench_lookup"), args.records, args.queries)


if __name__ == "__main__":
    main()
