"""Propagation: changes recorded at municipal counters until they sit in the national copy.

    .venv/bin/python -m bench.propagation_bench [--changes 100000] [--counters N] [--clerks M]
        [--postgres ADMIN_URL]

A population is seeded into 10 municipalities of two prefectures (東京都 and 神奈川県). Then
``--changes`` changes (転居 60 %, 職権修正 25 %, 氏名変更 15 %) are recorded through
``RegistryService`` — the same service the counter pages and the API call — by ``--clerks`` clerk
threads per counter process, each change a counter action committed before its clerk goes on,
through the process's group commit (``jlis.groupcommit``, as the web app's counter routes do;
``--clerks 1`` is one transaction per change). The relay carries every message CS → 都道府県サーバ →
全国サーバ and 本籍地 → 附票都道府県サーバ → 附票全国サーバ while the clerks work:

- ``--counters`` counter processes at once (each serving its share of the municipalities), as
  ``jlis serve --no-relay --workers N`` would, and one relay process beside them, as ``jlis juki
  relay`` runs it (on SQLite with planned rounds: the relay holds the write lock only to replay
  each round's writes, see jlis.planned);
- SQLite with ``--sqlite-inline-relay``: one counter process that also runs the relay in a
  ``RelayWorker`` thread poked after every change, as the one-process deployment (``jlis demo``,
  ``jlis serve``) does.

64 clerks work in all by default, in the shape that serves each backend best (DEFAULT_SHAPES): on
SQLite two counter processes of 32, which plan their groups on snapshots side by side and take the
write lock only to replay them; on PostgreSQL one process of 64, whose groups are twice as large
(about 44 changes a commit instead of 24): half the commits, reads-ahead and held-row writes, and
no second process taking the relay's CPU (measured 2026-11-27: the counters' CPU per change
0.29–0.32 → 0.25–0.26 ms, and the relay drains within a second of the counters instead of 3–5 s
after them). ``--counters`` and ``--clerks`` choose another shape.

``--stack`` runs the relay the deployment runs (``jlis.stack``): the national copy's subscribers
(JPKI, the card system, the linkage, the middle servers) get every change too, ~10 deliveries per
change instead of ~6.

The seed is made at a fixed time and the changes at the system's, so that each change carries its
own time, as at a real counter. The clock starts when the clerks start and stops when the relay has
drained everything: the last change is in the national copy and nothing waits. The figure is
changes per second over that whole time. With ``--postgres`` the same runs on a fresh PostgreSQL
database, beside ``pgbench`` (TPC-B, 8 clients, 2 threads) on the same server in the same run; on
SQLite the yardstick is pgbench's script run on SQLite (bench.sqlite_tpcb), measured just before.
Targets: ≥ 2,000 changes/s on SQLite; ≥ 1.0 × pgbench's tps on PostgreSQL. Each line gives the
changes per commit, the CPU time per change of the counter and relay processes (not the database
server's) and ends with the load average (1 min) before and after the run: other work on the
machine shows there.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from bench.common import DEFAULT_PG, fresh_postgres, fresh_sqlite, machine
from bench.sqlite_tpcb import sqlite_tpcb
from jlis.clock import JST, Clock, FixedClock, SystemClock
from jlis.codes import NumberAuthority
from jlis.container import Container
from jlis.db import make_engine, make_session_factory
from jlis.errors import RuleViolation
from jlis.groupcommit import GroupCommit
from jlis.juki import build_relay
from jlis.juki.network import BATCH, PARTS, RelayWorker
from jlis.juki.tables import NationalHistory
from jlis.masters import Geography, load_geography
from jlis.messaging import Relay
from jlis.messaging.tables import OutboxRow
from jlis.registry import PersonName, Placement, RegistryService
from jlis.registry.desk import counter_group_commit
from jlis.registry.tables import ResidentRow
from jlis.seed import DEFAULT_LG_CODES, Seeder
from jlis.settings import Settings
from jlis.stack import build_stack_relay

SECRET = b"bench-secret-bench-secret-000000"
FAMILY = [
    ("高橋", "タカハシ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
]


@dataclass
class Population:
    """A seeded database, ready for changes."""

    factory: sessionmaker[Session]
    clock: Clock  # the changes' clock: the system's, as at a real counter (see seed)
    geo: Geography
    lg_codes: list[str]
    ids: dict[str, list[int]]  # resident ids per municipality
    towns: dict[str, list[str]]  # town ids per municipality
    history_before: int  # rows in the national history before the changes


def seed(engine: Engine, residents: int) -> Population:
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
    # The seed is made at a fixed time; the changes are recorded at the real one, so each carries a
    # time of its own, as at real counters (with one fixed time, every conversion of a row's time
    # was the same value, remembered once per statement: a cost the bench did not see).
    return Population(factory, SystemClock(), geo, lg_codes, ids, towns, history_before)


def clerk_changes(
    pop: Population, desk: GroupCommit, changes: int, rng: random.Random, after: Any = None
) -> None:
    """One clerk: ``changes`` changes at random counters of ``pop.lg_codes``, each its own counter
    action, committed through ``desk`` (alone when the desk is not started) before the next."""
    clock, geo = pop.clock, pop.geo
    numbers_rng = random.Random(rng.random())
    for _ in range(changes):
        lg = rng.choice(pop.lg_codes)
        rid = rng.choice(pop.ids[lg])

        def work(s: Session, lg: str = lg, rid: int = rid) -> None:
            svc = RegistryService(
                s,
                lg_code=lg,
                clock=clock,
                geography=geo,
                numbers=NumberAuthority(s, SECRET, clock),
                rng=numbers_rng,
                staff="bench",
            )
            change(svc, pop, lg, rid, rng)

        desk.run(work, hint=rid)  # the record it changes, as the web app's routes name it
        if after is not None:
            after()


def change(svc: RegistryService, pop: Population, lg: str, rid: int, rng: random.Random) -> None:
    """One change of record ``rid`` at the counter of ``lg``: 転居 60 %, 職権修正 25 %, 氏名変更 15 %."""
    clock = pop.clock
    kind = rng.random()
    if kind < 0.60:
        while True:  # a random address can be the current one: the service refuses it untouched
            banchi = f"{rng.randint(1, 60)}番{rng.randint(1, 30)}号"
            try:
                svc.record_relocation(
                    rid, Placement(rng.choice(pop.towns[lg]), banchi), moved_on=clock.today()
                )
                return
            except RuleViolation:
                continue
    elif kind < 0.85:
        svc.record_correction(rid, {"banchi": f"{rng.randint(1, 40)}番地{rng.randint(1, 99)}"}, reason="誤記")
    else:
        fam, kana = rng.choice(FAMILY)
        cur = svc.get(rid, purpose="異動処理")
        name = PersonName(fam, cur.name.given, kana, cur.name.given_kana)
        if name == cur.name:
            name = PersonName(fam + "原", cur.name.given, kana + "ハラ", cur.name.given_kana)
        svc.record_name_change(rid, name, changed_on=clock.today(), cause="婚姻")


def outcome(pop: Population) -> tuple[int, int]:
    """(records added to the national history since the seed, messages still pending)."""
    with pop.factory() as s:
        arrived = (
            s.execute(select(func.count()).select_from(NationalHistory)).scalar_one() - pop.history_before
        )
        pending = s.execute(select(func.count()).select_from(OutboxRow)).scalar_one()
    return arrived, pending


def network_relay(url: str, factory: sessionmaker[Session], pop: Population, stack: bool, **kw: Any) -> Relay:
    """The relay as the bench's deployment runs it: the bare 住基ネット and 附票 network, or with
    ``stack`` the whole stack's (``jlis juki relay``, ``jlis serve``): the national change stream
    also goes to its subscribers (JPKI, the card system, the linkage, the middle servers)."""
    if not stack:
        return build_relay(factory, pop.clock, pop.geo, **kw)
    data = Path(tempfile.gettempdir()) / "jlis-bench-stack"  # the linkage's secret, kept between runs
    return build_stack_relay(Container(Settings(data_dir=data, database_url=url), clock=pop.clock), **kw)


def counter(
    url: str,
    pop: Population,
    lg_codes: list[str],
    changes: int,
    seed: int,
    go: Any,
    clerks: int,
    relay_inline: bool,
    batch: int,
    stack: bool,
    out: Any,
    planned: bool = True,
) -> None:
    """A counter process: ``clerks`` clerk threads make ``changes`` changes at the counters of
    ``lg_codes``, each a counter action committed before the clerk goes on, through the process's
    group commit (jlis.groupcommit, as the web app's counter routes do; ``clerks`` 1 is one
    transaction per change). With ``relay_inline`` the process also runs the relay in a
    ``RelayWorker`` thread poked after every change, as the one-process deployment does, and drains
    it before it reports."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    pop = dataclasses.replace(pop, factory=factory, lg_codes=lg_codes)
    desk = counter_group_commit(factory, planned=planned)
    if clerks > 1:
        desk.start()
    relay = network_relay(url, factory, pop, stack) if relay_inline else None
    worker = RelayWorker(relay, batch=batch) if relay is not None else None
    shares = [changes // clerks + (i < changes % clerks) for i in range(clerks)]
    threads = [
        threading.Thread(
            target=clerk_changes,
            args=(pop, desk, share, random.Random(seed * 1000 + i), worker.poke if worker else None),
        )
        for i, share in enumerate(shares)
    ]
    go.wait()
    cpu = time.process_time()
    if worker is not None:
        worker.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    desk.stop()
    if worker is not None:
        worker.stop(None)
        assert relay is not None
        relay.drain(batch)
    stats = (relay.stats.delivered, relay.stats.followed) if relay else (0, 0)
    rounds = (relay.stats.planned, relay.stats.unplanned) if relay else (0, 0)
    plans = (desk.planned_groups, desk.planned_actions, desk.given_up, desk.replays_failed)
    out.put(("counter", *stats, time.process_time() - cpu, desk.groups, rounds, plans))
    engine.dispose()


def relay_loop(
    url: str,
    pop: Population,
    batch: int,
    part: str | None,
    stack: bool,
    go: Any,
    counters_done: Any,
    out: Any,
) -> None:
    """A relay process, as ``jlis juki relay --interval 0.05 [--part P]`` runs it: a ``RelayWorker``
    (a round at once after a full one, ``RelayWorker.gather`` after a partial one) until the
    counters are done, then a drain of what is left."""
    engine = make_engine(url)
    relay = network_relay(url, make_session_factory(engine), pop, stack, plan_rounds=True, part=part)
    worker = RelayWorker(relay, batch=batch, interval=0.05)
    go.wait()
    cpu = time.process_time()
    worker.start()
    counters_done.wait()
    worker.stop(None)
    relay.drain(batch)
    rounds = (relay.stats.planned, relay.stats.unplanned)
    out.put(
        ("relay", relay.stats.delivered, relay.stats.followed, time.process_time() - cpu, 0, rounds, None)
    )
    engine.dispose()


def run(
    engine: Engine,
    changes: int,
    counters: int,
    clerks: int,
    residents: int,
    batch: int,
    inline: bool,
    relays: int = 1,
    stack: bool = False,
    planned: bool = True,
    pop: Population | None = None,
) -> dict[str, Any]:
    """``inline``: one counter process that runs the relay itself in a thread; otherwise
    ``counters`` counter processes and one relay process beside them. ``pop``: a population
    already seeded into ``engine`` (by :func:`seed`); otherwise ``residents`` are seeded first."""
    if pop is None:
        pop = seed(engine, residents)
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()  # the processes open their own connections
    ctx = mp.get_context("fork")  # children inherit the loaded town master
    go, counters_done, out = ctx.Event(), ctx.Event(), ctx.Queue()
    shares = [changes // counters + (i < changes % counters) for i in range(counters)]

    if inline:
        counters = 1
        shares = [changes]
    workers = [
        ctx.Process(
            target=counter,
            args=(url, pop, pop.lg_codes[i::counters], shares[i], 5 + i, go),
            kwargs={
                "clerks": clerks,
                "relay_inline": inline,
                "batch": batch,
                "stack": stack,
                "out": out,
                "planned": planned,
            },
        )
        for i in range(counters)
    ]
    parts: list[str | None] = [] if inline else [None] if relays == 1 else [p for p in sorted(PARTS)]
    relay_processes = [
        ctx.Process(target=relay_loop, args=(url, pop, batch, part, stack, go, counters_done, out))
        for part in parts
    ]
    for p in (*workers, *relay_processes):
        p.start()
    load = os.getloadavg()[0]
    time.sleep(1.0)  # let every process connect before the clock starts
    started = time.perf_counter()
    go.set()
    for p in workers:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a counter process failed ({p.exitcode})")
    recorded = time.perf_counter() - started
    counters_done.set()
    delivered = followed = groups = planned_rounds = unplanned = 0
    desk = [0, 0, 0, 0]  # the counters' planned groups, their actions, actions given up, failed replays
    cpu = {"counter": 0.0, "relay": 0.0}
    for _ in range(counters + len(relay_processes)):
        kind, d, f, seconds, g, (p, u), plans = out.get()
        if plans is not None:
            desk = [a + b for a, b in zip(desk, plans, strict=True)]
        delivered, followed, groups = delivered + d, followed + f, groups + g
        planned_rounds, unplanned = planned_rounds + p, unplanned + u
        cpu[kind] += seconds
    # Every process has reported: the relays drained everything. Their closing (on SQLite, the
    # checkpoint of the WAL into the database file) is not part of the propagation.
    total = time.perf_counter() - started
    for p in relay_processes:
        p.join()
    arrived, pending = outcome(pop)
    return {
        "changes": changes,
        "counters": counters,
        "inline": inline,
        "stack": stack,
        "relays": len(relay_processes),
        "clerks": clerks,
        "groups": groups,
        "arrived": arrived,
        "pending": pending,
        "record_s": recorded,
        "total_s": total,
        "rate": changes / total,
        "delivered": delivered,
        "followed": followed,
        "planned": (planned_rounds, unplanned),
        "desk": desk,
        "load": (load, os.getloadavg()[0]),
        "cpu": cpu,
    }


def pgbench(admin_url: str, database: str, seconds: int, scale: int) -> float:
    """pgbench's tps on a fresh database ``database`` beside ``admin_url``'s."""
    pgbench_init(admin_url, database, scale)
    return pgbench_run(admin_url, database, seconds)


def _pgbench_args(admin_url: str) -> list[str]:
    url = make_url(admin_url)
    return ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]


def pgbench_init(admin_url: str, database: str, scale: int) -> None:
    fresh_postgres(admin_url, database).dispose()
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(scale), *_pgbench_args(admin_url), database],
        check=True,
        capture_output=True,
    )


def pgbench_run(admin_url: str, database: str, seconds: int) -> float:
    """TPC-B, 8 clients, 2 threads: the tps."""
    args = _pgbench_args(admin_url)
    out = subprocess.run(
        ["pgbench", "-c", "8", "-j", "2", "-T", str(seconds), *args, database],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([0-9.]+)", out)
    assert match, out
    return float(match.group(1))


def report(kind: str, r: dict[str, Any], extra: str = "") -> None:
    processes = (
        "1 counter process running the relay"
        if r["inline"]
        else f"{r['counters']} counter process{'es' if r['counters'] > 1 else ''} + "
        + ("a relay process" if r["relays"] == 1 else f"{r['relays']} relay processes (juki, fuhyo)")
    )
    if r["stack"]:
        processes += ", the stack's relay (the national copy's subscribers too)"
    # One clerk per process runs without the group commit: one transaction per change.
    per_commit = "1 change per commit"
    if r["groups"]:
        per_commit = f"{r['changes'] / r['groups']:.1f} changes per commit"
    print(
        f"{kind:10} {r['changes']:,} changes: {r['rate']:8,.0f} changes/s end to end "
        f"({processes}"
        f" × {r['clerks']} clerks, {per_commit}; "
        f"done at {r['record_s']:.1f} s, relay drained at {r['total_s']:.1f} s; "
        f"{r['delivered']:,} deliveries, {r['followed']:,} of them in the round that made them; "
        f"{r['planned'][0]:,} rounds planned, {r['planned'][1]:,} not; "
        f"counters: {r['desk'][0]:,} groups planned ({r['desk'][1]:,} changes), {r['desk'][2]:,} "
        f"changes given up by a plan, {r['desk'][3]:,} replays refused; "
        f"national history +{r['arrived']:,}, pending {r['pending']}; CPU per change: counters "
        f"{r['cpu']['counter'] / r['changes'] * 1e3:.2f} ms, relay process "
        f"{r['cpu']['relay'] / r['changes'] * 1e3:.2f} ms){extra}  "
        f"[load {r['load'][0]:.1f} → {r['load'][1]:.1f}]",
        flush=True,
    )


# (counter processes, clerks per process) by backend, 64 clerks in all: see the module's docstring.
DEFAULT_SHAPES = {"sqlite": (2, 32), "postgresql": (1, 64)}


def processes(args: argparse.Namespace, backend: str) -> tuple[int, int]:
    """The counter processes and clerks per process of a run on ``backend``: as asked, or its
    default shape."""
    counters, clerks = DEFAULT_SHAPES[backend]
    counters = counters if args.counters is None else max(1, min(10, args.counters))
    return counters, clerks if args.clerks is None else max(1, args.clerks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--counters", type=int, default=None, help="counter processes beside the relay (≤ 10)")
    ap.add_argument(
        "--relays", type=int, choices=(1, 2), default=1, help="relay processes: 2 = one per part (--part)"
    )
    ap.add_argument(
        "--clerks", type=int, default=None, help="clerk threads per counter process (1: no group commit)"
    )
    ap.add_argument(
        "--sqlite-inline-relay",
        action="store_true",
        help="SQLite: one process runs the counters and the relay, as jlis demo and jlis serve do",
    )
    ap.add_argument("--batch", type=int, default=BATCH, help="messages per relay round")
    ap.add_argument(
        "--stack",
        action="store_true",
        help="the whole stack's relay: the national copy's subscribers (JPKI, card, linkage, middle) too",
    )
    ap.add_argument("--residents", type=int, default=20_000)
    ap.add_argument(
        "--unplanned-counters",
        action="store_true",
        help="SQLite: the counters' groups hold the write lock for all their Python (no plan), as before",
    )
    ap.add_argument("--postgres", default=None, help=f"admin URL, e.g. {DEFAULT_PG}")
    ap.add_argument("--pgbench-seconds", type=int, default=30)
    # Scale 1 (pgbench's default) is how the project's performance notes measured 1,700 tps: 8
    # clients contend on one branch row. Larger scales spread them out and give more tps.
    ap.add_argument("--pgbench-scale", type=int, default=1)
    ap.add_argument("--no-sqlite", action="store_true")
    # The same-run yardstick on SQLite (bench.sqlite_tpcb), as pgbench is on PostgreSQL.
    ap.add_argument("--sqlite-tpcb-seconds", type=float, default=10.0)
    # The databases this bench drops and creates on that server (its own, never a shared one).
    ap.add_argument("--pg-database", default="jlis_bench_propagation")
    args = ap.parse_args()
    print(
        f"propagation benchmark: 10 municipalities in 2 prefectures, "
        f"each change a counter action committed before its clerk goes on — {machine()}",
        flush=True,
    )
    shape: dict[str, Any] = {
        "changes": args.changes,
        "residents": args.residents,
        "batch": args.batch,
        "relays": args.relays,
        "stack": args.stack,
        "planned": not args.unplanned_counters,
    }
    if not args.no_sqlite:
        tpcb = sqlite_tpcb(args.sqlite_tpcb_seconds)
        engine = fresh_sqlite("propagation")
        where = Path(str(engine.url.database)).parent
        counters, clerks = processes(args, "sqlite")
        r = run(engine, inline=args.sqlite_inline_relay, counters=counters, clerks=clerks, **shape)
        report(
            "sqlite",
            r,
            f"  sqlite TPC-B (bench.sqlite_tpcb) {tpcb:,.0f} tps, ratio {r['rate'] / tpcb:.2f}; "
            f"target ≥ 2,000: {'met' if r['rate'] >= 2000 else 'NOT met'}",
        )
        shutil.rmtree(where, ignore_errors=True)  # ~0.8 GB after 100,000 changes
    if args.postgres:
        tps = pgbench(args.postgres, f"{args.pg_database}_pgbench", args.pgbench_seconds, args.pgbench_scale)
        engine = fresh_postgres(args.postgres, args.pg_database)
        counters, clerks = processes(args, "postgresql")
        r = run(engine, inline=False, counters=counters, clerks=clerks, **shape)
        ratio = r["rate"] / tps
        report(
            "postgresql",
            r,
            f"  pgbench (scale {args.pgbench_scale}) {tps:,.0f} tps, ratio {ratio:.2f} "
            f"(target ≥ 1.0: {'met' if ratio >= 1 else 'NOT met'})",
        )


if __name__ == "__main__":
    main()
