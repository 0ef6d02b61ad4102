"""Lawful queries through the information provision network, end to end, on PostgreSQL.

    .venv/bin/python -m bench.linkage_query_bench [--people 5000] [--queries 20000] [--batch 100]
        [--workers 2] [--postgres ADMIN_URL]

Setup (not timed): ``--people`` people in the national copy; the members (日本年金機構, 千代田区, ...);
the 千代田区 middle server numbers them, acquires their codes (符号一斉取得) and registers a
地方税関係情報 replica for each; 日本年金機構 acquires its codes.

Timed, per query, exactly as a member's client and the hub do it: the requester builds the request
and MACs it with its request key; the hub checks freshness and the MAC, claims the request id
(replay), checks the legal exchange table, resolves and translates the code, the provider's middle
server answers from the replica, and the exchange is appended to three hash chains (hub, requester,
provider); then the commit. Every answer is checked to be a provision with the right items.

Modes: ``single`` — one query per transaction (``POST /api/v1/linkage/queries`` without the group
commit); ``group`` — 64 client threads per worker each sending single queries through the
:class:`QueryBatcher` (the API with ``start_services``: up to ``--batch`` per transaction);
``batch`` — ``--batch`` queries per transaction (``POST /api/v1/linkage/queries/batch``). Each mode
runs in ``--workers`` processes at once; the load generator shares the same cores.

Baseline, in the same run and the same worker layout: the same database work without any of our
code — per query the hub's two code reads and the replica read, and three 300-byte record rows —
through psycopg directly, committed per query (single) or per batch (group, batch; the reads then
batched with ``= ANY``, as ours are).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.common import DEFAULT_PG, fresh_postgres, machine
from jlis.clock import JST, FixedClock
from jlis.codes import random_resident_code
from jlis.db import make_engine, make_session_factory, transaction
from jlis.juki import bulk_load_national
from jlis.registry import ChangeReason, IdentityRecord

CLOCK_AT = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
SECRET = b"bench-linkage-secret-0123456789abcdef"
DB_NAME = "jlis_bench_linkage_query"
PROVIDER = "lg-131016"
REQUESTER = "nenkin"
ITEMS = ("tax_year", "total_income", "tax_exempt")


def identity(code: str, at: dt.datetime) -> IdentityRecord:
    return IdentityRecord(
        resident_code=code,
        my_number="123456789018",
        lg_code="131016",
        family_name="山田",
        given_name="花子",
        family_kana="ヤマダ",
        given_kana="ハナコ",
        alias=None,
        former_surname=None,
        birth_date=dt.date(1960, 1, 1),
        sex="female",
        address="東京都千代田区千代田1番1号",
        status="active",
        reason=ChangeReason.INITIAL,
        change_date=dt.date(2026, 11, 1),
        recorded_at=at,
    )


def setup(url: str, people: int, key_dir: Path) -> tuple[list[str], bytes]:
    """The world; returns 日本年金機構's codes of the people and its request key."""
    from jlis.linkage.hub.codes import acquire_codes_bulk
    from jlis.linkage.hub.members import MemberKind, MemberService, get_member
    from jlis.linkage.middle.service import MiddleServer
    from jlis.linkage.middle.sync import link_all

    engine = make_engine(url)
    factory = make_session_factory(engine)
    clock = FixedClock(CLOCK_AT)
    rng = random.Random(7)
    codes: dict[str, None] = {}
    while len(codes) < people:
        codes[str(random_resident_code(rng))] = None
    residents = list(codes)
    with transaction(factory) as s:
        bulk_load_national(s, [identity(c, clock.now()) for c in residents])
    with transaction(factory) as s:
        svc = MemberService(s, clock, actor="bench", key_dir=key_dir)
        _m, key = svc.register(REQUESTER, "日本年金機構", MemberKind.AGENCY)
        svc.register(PROVIDER, "千代田区", MemberKind.MUNICIPALITY)
        svc.register("lg-131041", "新宿区", MemberKind.MUNICIPALITY)
    with transaction(factory) as s:
        lids = MiddleServer(s, clock, PROVIDER, actor="bench").local_ids_for(residents)
    link_all(factory, clock, SECRET, PROVIDER)
    for start in range(0, people, 1000):
        with transaction(factory) as s:
            middle = MiddleServer(s, clock, PROVIDER, actor="bench")
            for rc in residents[start : start + 1000]:
                middle.register_replica(
                    lids[rc],
                    "local_tax",
                    {"tax_year": 2026, "total_income": rng.randrange(0, 9_000_000), "tax_exempt": False},
                )
    mine: list[str] = []

    def sink(_s: object, pairs: Sequence[tuple[str, str]]) -> None:
        mine.extend(code for _rc, code in pairs)

    with factory() as s:
        member = get_member(s, REQUESTER)
    acquire_codes_bulk(factory, clock, SECRET, member, residents, sink=sink)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))  # as autovacuum would have by now: plans for a loaded database
        conn.execute(
            text("CREATE TABLE bench_raw_records (k text, seq bigint, body text, PRIMARY KEY (k, seq))")
        )
    engine.dispose()
    return mine, key


# ------------------------------------------------------------------------------------------ workers
# A worker runs in its own process: ``mode`` is "single" (one query per transaction), "group" (the
# QueryBatcher: ``clients`` threads each sending single queries, committed in groups) or "batch"
# (``batch`` queries per transaction, query_many).

Args = tuple[str, str, list[str], bytes, int, str, int, int]


def _ours(args: Args) -> tuple[int, float]:
    url, key_dir, codes, key, n, mode, batch, worker = args
    import threading

    from jlis.linkage.exchange.batcher import QueryBatcher
    from jlis.linkage.exchange.models import Outcome, QueryAnswer, sign_request
    from jlis.linkage.exchange.service import ExchangeHub
    from jlis.linkage.hub.members import get_member

    engine = make_engine(url, pool_size=2)
    factory = make_session_factory(engine)
    clock = FixedClock(CLOCK_AT)
    with factory() as s:
        member = get_member(s, REQUESTER)

    def make_hub(s: Session) -> ExchangeHub:
        return ExchangeHub(s, clock, SECRET, key_dir=Path(key_dir))

    counter = iter(range(10**9))
    lock = threading.Lock()

    def request(rng: random.Random) -> Any:  # the member's client: build and MAC
        with lock:
            seq = next(counter)
        return sign_request(
            key,
            REQUESTER,
            request_id=f"w{worker}-{os.getpid()}-{mode}-{seq}",
            requester_code=rng.choice(codes),
            affair="pension_benefit",
            provider_id=PROVIDER,
            category="local_tax",
            items=ITEMS,
            sent_at=clock.now(),
        )

    def check(a: QueryAnswer) -> None:
        if a.outcome is not Outcome.PROVIDED or tuple(a.data) != ITEMS:
            raise SystemExit(f"unexpected answer: {a}")

    rng = random.Random(worker)
    started = time.perf_counter()
    if mode == "group":
        batcher = QueryBatcher(factory, make_hub, max_batch=batch).start()
        per_client = n // CLIENTS

        def client(c: int) -> None:
            crng = random.Random(worker * 1000 + c)
            for _ in range(per_client):
                check(batcher.submit(member, request(crng)))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        batcher.stop()
        done = per_client * CLIENTS
    else:
        done = 0
        while done < n:
            size = 1 if mode == "single" else min(batch, n - done)
            with transaction(factory) as s:
                hub = make_hub(s)
                reqs = [request(rng) for _ in range(size)]
                answers = [hub.query(member, reqs[0])] if size == 1 else hub.query_many(member, reqs)
            for a in answers:
                check(a)
            done += size
    elapsed = time.perf_counter() - started
    engine.dispose()
    return done, elapsed


def _raw(args: Args) -> tuple[int, float]:
    """The floor: the same reads and three record rows per query in hand-written psycopg, committed
    per query (single) or per batch (group, batch; the reads then batched too, as ours are)."""
    url, _key_dir, _codes, _key, n, mode, batch, worker = args
    import psycopg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    payload = "x" * 300
    run_tag = time.time_ns()
    with psycopg.connect(dsn) as conn:
        codes = [r[0] for r in conn.execute("SELECT code FROM linkage_hub_codes LIMIT 5000")]
        lids = [r[0] for r in conn.execute("SELECT local_id FROM middle_replicas LIMIT 5000")]
        rng = random.Random(worker)
        seq = 0
        done = 0
        size = 1 if mode == "single" else batch
        started = time.perf_counter()
        while done < n:
            with conn.cursor() as cur:
                some = [rng.choice(codes) for _ in range(size)]
                people = [rng.choice(lids) for _ in range(size)]
                if size == 1:
                    cur.execute("SELECT link FROM linkage_hub_codes WHERE code = %s", (some[0],))
                    cur.execute("SELECT code FROM linkage_hub_codes WHERE code = %s", (some[0],))
                    cur.execute(
                        "SELECT data FROM middle_replicas WHERE member_id = %s AND local_id = %s "
                        "ORDER BY version DESC LIMIT 1",
                        (PROVIDER, people[0]),
                    )
                else:
                    cur.execute("SELECT link FROM linkage_hub_codes WHERE code = ANY(%s)", (some,))
                    cur.execute("SELECT code FROM linkage_hub_codes WHERE code = ANY(%s)", (some,))
                    cur.execute(
                        "SELECT DISTINCT ON (local_id) data FROM middle_replicas WHERE member_id = %s "
                        "AND local_id = ANY(%s) ORDER BY local_id, version DESC",
                        (PROVIDER, people),
                    )
                cur.fetchall()
                rows = []
                for k in ("hub", "req", "prov"):
                    for _ in range(size):
                        seq += 1
                        rows.append((f"{k}{worker}-{run_tag}", seq, payload))
                cur.executemany("INSERT INTO bench_raw_records VALUES (%s, %s, %s)", rows)
            conn.commit()
            done += size
        elapsed = time.perf_counter() - started
    return done, elapsed


CLIENTS = 64  # client threads per worker in the group mode (an API server's thread pool)


def run(
    fn: Callable[[Args], tuple[int, float]],
    url: str,
    key_dir: Path,
    codes: list[str],
    key: bytes,
    n: int,
    mode: str,
    batch: int,
    workers: int,
) -> float:
    per = n // workers
    args = [(url, str(key_dir), codes, key, per, mode, batch, w) for w in range(workers)]
    if workers == 1:
        results = [fn(args[0])]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(fn, args)
    total = sum(r[0] for r in results)
    slowest = max(r[1] for r in results)
    return total / slowest if slowest else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--single-queries", type=int, default=4000, help="queries in the single mode")
    parser.add_argument("--postgres", default=DEFAULT_PG)
    opts = parser.parse_args()

    print(f"linkage query benchmark — {machine()}")
    engine = fresh_postgres(opts.postgres, DB_NAME)
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    key_dir = Path(f"/tmp/{DB_NAME}-keys")
    key_dir.mkdir(exist_ok=True)
    for f in key_dir.iterdir():
        f.unlink()
    t0 = time.perf_counter()
    codes, key = setup(url, opts.people, key_dir)
    print(f"setup: {opts.people:,} people, codes and replicas in {time.perf_counter() - t0:.1f} s")

    modes = (
        ("single", 1, opts.single_queries),
        ("group", opts.batch, opts.queries),
        ("batch", opts.batch, opts.queries),
    )
    for mode, batch, n in modes:
        raw = run(_raw, url, key_dir, codes, key, n, mode, batch, opts.workers)
        ours = run(_ours, url, key_dir, codes, key, n, mode, batch, opts.workers)
        verdict = "met" if ours >= 1000 else "NOT met"
        print(
            f"postgres {mode:6} ({opts.workers} workers, batch ≤ {batch}, {n:,} queries): "
            f"ours {ours:7,.0f} queries/s   raw {raw:7,.0f}/s   ratio {ours / raw:.2f}   "
            f"target ≥ 1,000/s: {verdict}",
            flush=True,
        )
    check = make_engine(url)
    with check.connect() as conn:
        counts = {
            str(k): int(n)
            for k, n in conn.execute(
                text("SELECT keeper, count(*) FROM linkage_exchange_records GROUP BY keeper")
            )
        }
    check.dispose()
    print(f"records per keeper: {counts}")
    from jlis.linkage.exchange import records as store

    check = make_engine(url)
    factory = make_session_factory(check)
    t0 = time.perf_counter()
    with factory() as s:
        results = {k: store.verify(s, k) for k in sorted(counts)}
    print(
        "chains verify: "
        + ", ".join(f"{k} {'ok' if r.ok else 'BROKEN'} ({r.checked:,})" for k, r in results.items())
        + f" in {time.perf_counter() - t0:.1f} s"
    )
    check.dispose()


if __name__ == "__main__":
    main()
