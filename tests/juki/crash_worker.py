"""A worker that records resident changes and relays them, and kills itself (SIGKILL) at a chosen
point. test_crash.py runs it again and again against one database until it finishes, then checks
that every change reached every tier exactly once.

The plan is fixed: ``--people`` people, each created by a 転入 and then moved (転居) until they have
``--changes`` changes. A restarted worker finds where it stopped by looking at the register, so a
change whose transaction died is simply made again.

Crash points: ``register`` (inside a register transaction, before commit) and the relay's own
``inside-apply`` (before the commit of a delivery), ``after-apply-before-ack``, ``after-ack``;
``random`` dies at any of them with probability ``--p``. ``none`` runs to the end.
``--plan-rounds``: the relay plans its rounds outside SQLite's write lock (``inside-apply`` is then
inside the replay of a plan).

Exit status: 0 when everything is recorded and nothing is pending, 3 when messages are left.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import sys
from collections import Counter

from sqlalchemy import select

from jlis.clock import JST, SystemClock
from jlis.codes import NumberAuthority
from jlis.db import Base, import_all_tables, make_engine, make_session_factory, transaction
from jlis.juki import build_relay
from jlis.masters import load_geography
from jlis.registry import MoveOutCertificate, PersonName, Placement, RegistryService, Sex
from jlis.registry.tables import ResidentRow

SECRET = b"juki-crash-secret-0123456789abcdef"
LG_CODES = ["131016", "131041", "141011"]  # 千代田区, 新宿区, 横浜市鶴見区 (two prefectures)
FROM_LG = "132012"  # 八王子市, where the paper certificates come from
HONSEKI_LG = "141011"
DIGITS = "アイウエオカキクケコ"


def given_kana(i: int) -> str:
    """A unique name per person of the plan, by which a restarted worker finds them again."""
    return "".join(DIGITS[int(d)] for d in str(i))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--people", type=int, default=9)
    ap.add_argument("--changes", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--point", default="none")
    ap.add_argument("--after", type=int, default=1, help="die at the N-th call of the point")
    ap.add_argument("--p", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plan-rounds", action="store_true", help="SQLite: planned relay rounds")
    args = ap.parse_args()

    import_all_tables()
    engine = make_engine(args.db)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    clock = SystemClock()
    geo = load_geography()
    calls: Counter[str] = Counter()
    dice = random.Random(args.seed)

    def hook(point: str) -> None:
        calls[point] += 1
        if (point == args.point and calls[point] == args.after) or (
            args.point == "random" and dice.random() < args.p
        ):
            print(f"crash at {point} #{calls[point]}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    relay = build_relay(factory, clock, geo, crash_hook=hook, plan_rounds=args.plan_rounds)
    rng = random.Random()
    for i in range(args.people):
        lg = LG_CODES[i % len(LG_CODES)]
        towns = geo.towns(lg)
        while True:
            with factory() as s:
                found = s.execute(
                    select(ResidentRow.id, ResidentRow.version).where(
                        ResidentRow.lg_code == lg, ResidentRow.given_kana == given_kana(i)
                    )
                ).first()
            done = found.version if found else 0
            if done >= args.changes:
                break
            with transaction(factory) as s:
                numbers = NumberAuthority(s, SECRET, clock)
                reg = RegistryService(
                    s, lg_code=lg, clock=clock, geography=geo, numbers=numbers, rng=rng, staff="crash-test"
                )
                today = clock.today()
                if found is None:
                    code = numbers.new_resident_code(rng, FROM_LG)
                    honseki = HONSEKI_LG if i % 2 == 0 else None
                    cert = MoveOutCertificate(
                        certificate_no=f"P-{code}",
                        from_lg_code=FROM_LG,
                        resident_code=code,
                        my_number=numbers.my_number_for(code),
                        name=PersonName("試験", f"{i}号", "シケン", given_kana(i)),
                        birth_date=dt.date(1970, 1, 1) + dt.timedelta(days=i),
                        sex=Sex.FEMALE,
                        previous_address="東京都八王子市元本郷町三丁目24番1号",
                        planned_date=today,
                        honseki=geo.address_text(geo.towns(HONSEKI_LG)[0].town_id, "1番地")
                        if honseki
                        else None,
                        honseki_lg_code=honseki,
                    )
                    reg.record_move_in(cert, Placement(towns[0].town_id, "1番1号"), moved_on=today)
                else:
                    reg.record_relocation(
                        found.id,
                        Placement(towns[done % 2].town_id, f"{done + 1}番{done + 1}号"),
                        moved_on=today,
                    )
                hook("register")
        if relay.run_once(args.batch):  # what a run killed later has done so far
            print(f"rounds planned {relay.stats.planned}, unplanned {relay.stats.unplanned}", flush=True)
    relay.drain(args.batch)
    left = relay.pending(10)
    for m in left:
        print(f"pending: {m.destination} {m.topic}", file=sys.stderr)
    engine.dispose()
    stats = relay.stats
    print(f"done at {dt.datetime.now(JST).isoformat()}: {dict(calls)}", flush=True)
    print(f"rounds planned {stats.planned}, unplanned {stats.unplanned}", flush=True)
    return 3 if left else 0


if __name__ == "__main__":
    sys.exit(main())
