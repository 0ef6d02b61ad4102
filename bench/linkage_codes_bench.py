"""符号一斉取得: bulk acquisition of 機関別符号 for 1,000,000 people.

    .venv/bin/python -m bench.linkage_codes_bench [--codes 1000000] [--batch 20000]
        [--postgres ADMIN_URL] [--pg-database jlis_bench_codes] [--no-sqlite]

Set-up (not timed): a fresh database, the national copy bulk-loaded (初期移行) with ``--codes``
synthetic people, the members ``lg-131016`` and ``nenkin``.

Timed, each as one call of :func:`jlis.linkage.hub.codes.acquire_codes_bulk` over every person,
one transaction and one 処理通番 per ``--batch``:

- **first** — the municipality's 符号一斉取得 on an empty hub: per batch J-LIS looks up recorded
  values (those of people who changed 住民票コード: none here), checks the codes against its
  national copy and derives the values; the hub derives links and codes, checks which are issued
  (none), inserts them and closes the serial; J-LIS appends one audit entry;
- **second member** — ``nenkin`` over the same people: the same J-LIS work, the hub inserts the
  new member's codes into a table that already holds a million;
- **repeat** — the municipality again: nothing new to write, every code answered.

Baselines measured in the same run: the three HMACs per person alone (``hmac`` only), and a bare
bulk insert of the same number of code rows into a fresh ``linkage_hub_codes`` (``sqlite3``
``executemany`` / psycopg ``COPY``, one transaction per batch, same batch size, each batch in key
order and the same SQLite page cache as the bulk run: the least any run that stores the codes
must write). Target:
≥ 20,000 codes/s for the first run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import random
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.engine import Engine

from bench.common import DEFAULT_PG, fresh_postgres, fresh_sqlite, machine
from jlis.bulk import bulk_insert
from jlis.clock import JST, FixedClock
from jlis.codes import random_resident_code
from jlis.db import make_session_factory, transaction
from jlis.juki import bulk_load_national
from jlis.linkage.hub.codes import (
    BULK_CACHE_KIB,
    DEFAULT_BATCH,
    HUB_LABEL,
    JLIS_LABEL,
    acquire_codes_bulk,
    derive_key,
)
from jlis.linkage.hub.members import Member, MemberService
from jlis.linkage.hub.tables import HubCodeRow
from jlis.registry import ChangeReason, IdentityRecord

CLOCK = FixedClock(dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST))
SECRET = b"linkage-bench-secret-0123456789abcdef"
TARGET = 20_000
LOAD_CHUNK = 50_000


def people(n: int) -> list[str]:
    rng = random.Random(11)
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen[str(random_resident_code(rng))] = None
    return list(seen)


def load_national(engine: Engine, codes: list[str]) -> None:
    factory = make_session_factory(engine)
    now = CLOCK.now()
    for start in range(0, len(codes), LOAD_CHUNK):
        batch = [
            IdentityRecord(
                resident_code=code,
                my_number="123456789018",
                lg_code="131016",
                family_name="山田",
                given_name="花子",
                family_kana="ヤマダ",
                given_kana="ハナコ",
                alias=None,
                former_surname=None,
                birth_date=dt.date(1930, 1, 1) + dt.timedelta(days=i % 30000),
                sex="female",
                address=f"東京都千代田区千代田{i % 999 + 1}番地",
                status="active",
                reason=ChangeReason.INITIAL,
                change_date=dt.date(2020, 4, 1),
                recorded_at=now,
            )
            for i, code in enumerate(codes[start : start + LOAD_CHUNK], start)
        ]
        with transaction(factory) as s:
            bulk_load_national(s, batch)


def members(engine: Engine, key_dir: Path) -> tuple[Member, Member]:
    with transaction(make_session_factory(engine)) as s:
        svc = MemberService(s, CLOCK, actor="bench", key_dir=key_dir)
        chiyoda, _ = svc.register("lg-131016", "千代田区", "municipality")
        nenkin, _ = svc.register("nenkin", "日本年金機構", "agency")
    return chiyoda, nenkin


def hmac_baseline(codes: list[str]) -> float:
    """Three HMAC-SHA256 per person (value, link, code) with the standard library alone."""
    jk, hk = derive_key(SECRET, JLIS_LABEL), derive_key(SECRET, HUB_LABEL)
    started = time.perf_counter()
    for c in codes:
        v = hmac.digest(jk, c.encode(), "sha256")[:16].hex()
        link = hmac.digest(hk, v.encode(), "sha256")[:16].hex()
        hmac.digest(hk, f"lg-131016|{link}".encode(), "sha256")
    return len(codes) / (time.perf_counter() - started)


def insert_baseline(engine: Engine, n: int, batch: int) -> float:
    """A bare bulk insert of ``n`` code rows (precomputed HMAC-like keys) into the empty codes
    table, done as well as the bulk run does it: one transaction per batch, each batch in key
    order, the same SQLite page cache."""
    table = cast(Table, HubCodeRow.__table__)
    now = CLOCK.now()
    rows: list[dict[str, Any]] = [
        {"member_id": "baseline", "code": f"{i:026d}", "link": f"{i:032x}", "issued_at": now}
        for i in range(n)
    ]
    rng = random.Random(5)
    rng.shuffle(rows)  # codes arrive in no order, like HMAC outputs
    factory = make_session_factory(engine)
    started = time.perf_counter()
    for start in range(0, n, batch):
        with transaction(factory) as s:
            if engine.dialect.name == "sqlite":
                s.connection().exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
            chunk = sorted(rows[start : start + batch], key=lambda r: r["code"])
            bulk_insert(s, table, chunk)
    return n / (time.perf_counter() - started)


def run(kind: str, engine: Engine, baseline_engine: Engine, n: int, batch: int) -> float:
    codes = people(n)
    t0 = time.perf_counter()
    load_national(engine, codes)
    print(f"{kind:10} set-up: {n:,} national records loaded in {time.perf_counter() - t0:.0f} s")
    chiyoda, nenkin = members(engine, Path(tempfile.mkdtemp(prefix="jlis-bench-keys-")))
    factory = make_session_factory(engine)
    rates = {}
    for label, member in (("first", chiyoda), ("second member", nenkin), ("repeat", chiyoda)):
        report = acquire_codes_bulk(factory, CLOCK, SECRET, member, codes, batch=batch)
        assert report.issued == n and not report.unknown and not report.invalid
        rates[label] = report.rate
        print(
            f"{kind:10} {label:14} {n:,} codes in {report.seconds:6.1f} s: {report.rate:9,.0f} codes/s "
            f"({len(report.serials):,} serials)"
        )
    base = insert_baseline(baseline_engine, n, batch)
    first = rates["first"]
    print(
        f"{kind:10} baseline bare insert of {n:,} code rows: {base:9,.0f} rows/s; "
        f"ratio first/baseline {first / base:.2f}; target ≥ {TARGET:,} codes/s: "
        f"{'met' if first >= TARGET else 'NOT met'}"
    )
    return first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codes", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--postgres", default=None, help=f"admin URL, e.g. {DEFAULT_PG}")
    ap.add_argument("--pg-database", default="jlis_bench_codes")
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    print(f"linkage codes benchmark: {args.codes:,} people, batch {args.batch:,} — {machine()}")
    rate = hmac_baseline(people(min(args.codes, 200_000)))
    print(f"{'python':10} baseline three stdlib HMAC-SHA256 per person: {rate:9,.0f} people/s")
    if not args.no_sqlite:
        run("sqlite", fresh_sqlite("codes"), fresh_sqlite("codes-baseline"), args.codes, args.batch)
    if args.postgres:
        run(
            "postgresql",
            fresh_postgres(args.postgres, args.pg_database),
            fresh_postgres(args.postgres, f"{args.pg_database}_base"),
            args.codes,
            args.batch,
        )


if __name__ == "__main__":
    main()
