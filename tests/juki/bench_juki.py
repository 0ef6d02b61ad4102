"""Benchmarks of the network (not collected by pytest; run by hand):

    .venv/bin/python tests/juki/bench_juki.py relay --changes 10000
    .venv/bin/python tests/juki/bench_juki.py lookup --records 1000000 --queries 10000

``relay``: ``--changes`` 本人確認情報 changes are written to the outbox as registers write
them (``identity.changed`` to ``cs:<lg>``; a third of them with a 附票 notice too, unless
``--no-fuhyo``), then the relay is timed while it carries them CS → prefecture → J-LIS
(and 本籍地 → 附票 prefecture → 附票 J-LIS) in batches of 1,000.

``lookup``: the national copy is bulk-loaded with ``--records`` people, then provision
queries by 住民票コード are timed one by one, each with its audit append and commit.

``--database-url`` (default: a fresh SQLite file; the tables are dropped and created) lets
both run on PostgreSQL too: give them a database of their own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from jlis.clock import JST, FixedClock
from jlis.codes.generate import random_my_number, random_resident_code
from jlis.db import Base, import_all_tables, make_engine, make_session_factory, transaction
from jlis.juki import ProvisionService, build_relay, bulk_load_national
from jlis.masters import Agency, IdentityItem, ProvisionRule, ProvisionTable, load_geography
from jlis.messaging import publish
from jlis.registry import ChangeReason, FuhyoNotice, IdentityRecord
from jlis.registry.events import TOPIC_FUHYO, TOPIC_IDENTITY

LG_CODES = ["131016", "131041", "132012", "141011", "141020"]
HONSEKI = ["131016", "141011", "132012"]
CLOCK = FixedClock(dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST))


def _engine(url: str | None) -> Engine:
    import_all_tables()
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        Base.metadata.create_all(conn)
    return engine


def _record(rng: random.Random, i: int, now: dt.datetime, used: set[str]) -> IdentityRecord:
    code = random_resident_code(rng)
    while code in used:  # a million random 住民票コード collide a few dozen times
        code = random_resident_code(rng)
    used.add(code)
    return IdentityRecord(
        resident_code=code,
        my_number=random_my_number(rng),
        lg_code=LG_CODES[i % len(LG_CODES)],
        family_name="佐藤",
        given_name=f"太郎{i}",
        family_kana="サトウ",
        given_kana=f"タロウ{i}",
        alias=None,
        former_surname=None,
        birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=i % 20000),
        sex="male" if i % 2 else "female",
        address=f"東京都千代田区千代田{i}番地",
        status="active",
        reason=ChangeReason.RELOCATION,
        change_date=now.date(),
        recorded_at=now,
    )


def bench_relay(changes: int, url: str | None, fuhyo: bool = True) -> None:
    engine = _engine(url)
    factory = make_session_factory(engine)
    rng = random.Random(1)
    now = CLOCK.now()
    used: set[str] = set()
    with transaction(factory) as s:
        for i in range(changes):
            r = _record(rng, i, now, used)
            source = f"registry:{r.lg_code}"
            payload = r.to_payload()
            publish(
                s,
                source=source,
                destination=f"cs:{r.lg_code}",
                topic=TOPIC_IDENTITY,
                key=r.resident_code,
                payload=payload,
                now=now,
            )
            if fuhyo and i % 3 == 0:
                honseki = HONSEKI[i % len(HONSEKI)]
                notice = FuhyoNotice(
                    resident_code=r.resident_code,
                    honseki_lg_code=honseki,
                    honseki="本籍",
                    family_name=r.family_name,
                    given_name=r.given_name,
                    birth_date=r.birth_date,
                    sex=r.sex,
                    address=r.address,
                    address_lg_code=r.lg_code,
                    address_since=r.change_date,
                    reason=r.reason,
                    change_date=r.change_date,
                    recorded_at=now,
                )
                publish(
                    s,
                    source=source,
                    destination=f"honseki:{honseki}",
                    topic=TOPIC_FUHYO,
                    key=r.resident_code,
                    payload=notice.to_payload(),
                    now=now,
                )
    relay = build_relay(factory, CLOCK, load_geography())
    started = time.perf_counter()
    delivered = relay.drain(1000)
    took = time.perf_counter() - started
    print(
        f"{engine.dialect.name}: {changes:,} changes ({delivered:,} deliveries, 附票 for"
        f" {'a third' if fuhyo else 'none'})"
        f" in {took:.2f} s = {changes / took:,.0f} changes/s, {delivered / took:,.0f} deliveries/s"
    )


def bench_lookup(records: int, queries: int, url: str | None) -> None:
    engine = _engine(url)
    factory = make_session_factory(engine)
    rng = random.Random(2)
    now = CLOCK.now()
    used: set[str] = set()
    codes: list[str] = []
    started = time.perf_counter()
    chunk = 50_000
    for start in range(0, records, chunk):
        batch = [_record(rng, i, now, used) for i in range(start, min(records, start + chunk))]
        codes.extend(r.resident_code for r in batch[:: max(1, records // (queries * 2))])
        with transaction(factory) as s:
            bulk_load_national(s, batch)
    loaded = time.perf_counter() - started
    print(f"{engine.dialect.name}: bulk_load_national {records:,} records in {loaded:.1f} s")
    table = ProvisionTable(
        [Agency("pension", "日本年金機構")],
        [
            ProvisionRule(
                "pension",
                "benefit",
                "年金給付",
                frozenset({IdentityItem.NAME, IdentityItem.ADDRESS, IdentityItem.CHANGE_INFO}),
                "別表第一",
            )
        ],
    )
    sample = [codes[rng.randrange(len(codes))] for _ in range(queries)]
    latencies = []
    started = time.perf_counter()
    for code in sample:
        t0 = time.perf_counter()
        with transaction(factory) as s:
            result = ProvisionService(s, CLOCK, table).query("pension", "benefit", resident_code=code)
        latencies.append(time.perf_counter() - t0)
        assert result.records
    took = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    worst = latencies[-1] * 1000
    print(
        f"{engine.dialect.name}: {queries:,} lookups by 住民票コード over {records:,} records"
        f" (audit append + commit each): {queries / took:,.0f}/s,"
        f" p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["relay", "lookup"])
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--no-fuhyo", action="store_true", help="relay: identity changes only")
    args = ap.parse_args()
    if args.what == "relay":
        bench_relay(args.changes, args.database_url, fuhyo=not args.no_fuhyo)
    else:
        bench_lookup(args.records, args.queries, args.database_url)


if __name__ == "__main__":
    main()
