"""Propagation: changes recorded at municipal counters until they sit in the national copy.

    .venv/bin/python -m bench.propagation_bench [--changes 100000] [--per-tx 100] [--postgres ADMIN_URL]

A population is seeded into 10 municipalities of two prefectures (東京都 and 神奈川県). Then
``--changes`` changes (転居 60 %, 職権修正 25 %, 氏名変更 15 %) are recorded through
``RegistryService`` — the same service the counter pages and the API call — ``--per-tx`` changes
per transaction, and the relay carries every resulting message CS → 都道府県サーバ → 全国サーバ
(and 本籍地 → 附票 servers). The clock stops when the last change is in the national copy;
the figure is changes per second over the whole run. With ``--postgres`` the same runs on a fresh
PostgreSQL database, beside ``pgbench`` (TPC-B, 8 clients, 2 threads) on the same server in the
same run. Targets: ≥ 2,000 changes/s on SQLite; ≥ 1.0 × pgbench's tps on PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import subprocess
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine, make_url

from bench.common import DEFAULT_PG, fresh_postgres, fresh_sqlite, machine
from jlis.clock import JST, FixedClock
from jlis.codes import NumberAuthority
from jlis.db import make_session_factory, transaction
from jlis.errors import RuleViolation
from jlis.juki import build_relay
from jlis.juki.tables import NationalHistory
from jlis.masters import load_geography
from jlis.messaging.tables import OutboxRow
from jlis.registry import PersonName, Placement, RegistryService
from jlis.registry.tables import ResidentRow
from jlis.seed import DEFAULT_LG_CODES, Seeder

SECRET = b"bench-secret-bench-secret-000000"
FAMILY = [
    ("高橋", "タカハシ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
]


def run(engine: Engine, changes: int, per_tx: int, residents: int) -> dict[str, Any]:
    geo = load_geography()
    clock = FixedClock(dt.datetime(2026, 11, 26, 9, 0, tzinfo=JST))
    factory = make_session_factory(engine)
    lg_codes = DEFAULT_LG_CODES[:10]
    Seeder(factory, clock=clock, geography=geo, secret=SECRET).run(lg_codes, residents, seed=3)
    with factory() as s:
        ids = {
            lg: list(s.execute(select(ResidentRow.id).where(ResidentRow.lg_code == lg)).scalars())
            for lg in lg_codes
        }
        history_before = s.execute(select(func.count()).select_from(NationalHistory)).scalar_one()
    towns = {lg: [t.town_id for t in geo.towns(lg)] for lg in lg_codes}
    rng = random.Random(5)
    relay = build_relay(factory, clock, geo)

    started = time.perf_counter()
    done = 0
    while done < changes:
        lg = rng.choice(lg_codes)
        n = min(per_tx, changes - done)
        with transaction(factory) as s:
            svc = RegistryService(
                s,
                lg_code=lg,
                clock=clock,
                geography=geo,
                numbers=NumberAuthority(s, SECRET, clock),
                rng=rng,
                staff="bench",
            )
            for _ in range(n):
                rid = rng.choice(ids[lg])
                kind = rng.random()
                if kind < 0.60:
                    while True:  # a random address can be the current one: the service refuses it untouched
                        banchi = f"{rng.randint(1, 60)}番{rng.randint(1, 30)}号"
                        try:
                            svc.record_relocation(
                                rid, Placement(rng.choice(towns[lg]), banchi), moved_on=clock.today()
                            )
                            break
                        except RuleViolation:
                            continue
                elif kind < 0.85:
                    svc.record_correction(
                        rid, {"banchi": f"{rng.randint(1, 40)}番地{rng.randint(1, 99)}"}, reason="誤記"
                    )
                else:
                    fam, kana = rng.choice(FAMILY)
                    cur = svc.get(rid, purpose="異動処理")
                    name = PersonName(fam, cur.name.given, kana, cur.name.given_kana)
                    if name == cur.name:
                        name = PersonName(fam + "原", cur.name.given, kana + "ハラ", cur.name.given_kana)
                    svc.record_name_change(rid, name, changed_on=clock.today(), cause="婚姻")
        done += n
    recorded = time.perf_counter() - started
    relay.drain(batch=1000)
    total = time.perf_counter() - started
    with factory() as s:
        arrived = s.execute(select(func.count()).select_from(NationalHistory)).scalar_one() - history_before
        pending = s.execute(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.delivered_at.is_(None))
        ).scalar_one()
    return {
        "changes": changes,
        "arrived": arrived,
        "pending": pending,
        "record_s": recorded,
        "relay_s": total - recorded,
        "total_s": total,
        "rate": changes / total,
    }


def pgbench(admin_url: str, seconds: int, scale: int) -> float:
    url = make_url(admin_url)
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    fresh_postgres(admin_url, "jlis_pgbench").dispose()
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(scale), *args, "jlis_pgbench"], check=True, capture_output=True
    )
    out = subprocess.run(
        ["pgbench", "-c", "8", "-j", "2", "-T", str(seconds), *args, "jlis_pgbench"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([0-9.]+)", out)
    assert match, out
    return float(match.group(1))


def report(kind: str, r: dict[str, Any], extra: str = "") -> None:
    print(
        f"{kind:10} {r['changes']:,} changes: {r['rate']:8,.0f} changes/s end to end "
        f"(record {r['record_s']:.1f} s + relay {r['relay_s']:.1f} s = {r['total_s']:.1f} s; "
        f"national history +{r['arrived']:,}, pending {r['pending']}){extra}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--per-tx", type=int, default=100)
    ap.add_argument("--residents", type=int, default=20_000)
    ap.add_argument("--postgres", default=None, help=f"admin URL, e.g. {DEFAULT_PG}")
    ap.add_argument("--pgbench-seconds", type=int, default=30)
    # Scale 1 (pgbench's default) is how the project's performance notes measured 1,700 tps: 8
    # clients contend on one branch row. Larger scales spread them out and give more tps.
    ap.add_argument("--pgbench-scale", type=int, default=1)
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    print(
        f"propagation benchmark: 10 municipalities in 2 prefectures, "
        f"{args.per_tx} changes per transaction — {machine()}"
    )
    if not args.no_sqlite:
        r = run(fresh_sqlite("propagation"), args.changes, args.per_tx, args.residents)
        report("sqlite", r, f"  target ≥ 2,000: {'met' if r['rate'] >= 2000 else 'NOT met'}")
    if args.postgres:
        tps = pgbench(args.postgres, args.pgbench_seconds, args.pgbench_scale)
        r = run(
            fresh_postgres(args.postgres, "jlis_bench_propagation"), args.changes, args.per_tx, args.residents
        )
        ratio = r["rate"] / tps
        report(
            "postgresql",
            r,
            f"  pgbench (scale {args.pgbench_scale}) {tps:,.0f} tps, ratio {ratio:.2f} "
            f"(target ≥ 1.0: {'met' if ratio >= 1 else 'NOT met'})",
        )


if __name__ == "__main__":
    main()
