"""Propagation cost in instructions: what one change costs the counters and the relay, counted by
valgrind's callgrind, beside one transaction of pgbench's script on SQLite counted the same way.

    .venv/bin/python -m bench.propagation_cost [--changes 3000]

Instruction counts are the same on every run of the same code over the same data, where times on
these machines move by tens of percent within an hour (bench/RESULTS.md, Propagation): this is the
figure to judge a change to the hot paths by. The propagation bench remains the figure the targets
are about. Needs valgrind (on every machine kind here); takes ~2 minutes on 2 cores.

It seeds 20,000 residents into SQLite and records the changes without a relay (a warm-up set, then
``--changes``), natively. Then three processes run under callgrind, counting only the measured part
(``callgrind_control -i on|off``):

- relay: a warm-up round, then one planned round (as ``jlis juki relay`` runs it) that carries every
  change through the 住基ネット and the 附票 system (~6 deliveries each);
- counters: a warm-up, then 800 changes by 32 clerks through the counter's group commit;
- yardstick: 3,000 transactions of pgbench's script on SQLite (bench.sqlite_tpcb).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sqlalchemy import text

from bench.common import machine, schema
from bench.propagation_bench import clerk_changes, seed
from bench.sqlite_tpcb import tpcb_database, tpcb_transactions
from jlis.db import make_engine, make_session_factory
from jlis.juki import build_relay
from jlis.registry.desk import counter_group_commit

RESIDENTS = 20_000
WARM_UP = 200  # changes before the measured ones, delivered by the relay's warm-up round
COUNTER_CHANGES, CLERKS = 800, 32
TPCB_TRANSACTIONS = 3_000
_PENDING = text("SELECT count(*) FROM outbox")  # a delivered message leaves the outbox


def prepare(where: Path, changes: int) -> None:
    """The seeded database with the warm-up and the measured changes recorded, nothing delivered."""
    engine = schema(make_engine(f"sqlite:///{where / 'prepared.sqlite3'}"))
    pop = seed(engine, RESIDENTS)
    desk = counter_group_commit(pop.factory)
    clerk_changes(pop, desk, WARM_UP, random.Random(7))
    with pop.factory() as s:
        (warm,) = s.execute(_PENDING).one()
    clerk_changes(pop, desk, changes, random.Random(8))
    engine.dispose()
    db = sqlite3.connect(where / "prepared.sqlite3")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    # Without its session factory (an engine does not pickle): each measuring process makes its own.
    bare = dataclasses.replace(pop, factory=None)  # type: ignore[arg-type]
    (where / "population.pickle").write_bytes(pickle.dumps((bare, warm)))


def _count(on: bool) -> None:
    if os.environ.get("JLIS_CALLGRIND"):
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], check=True)


def _copy(where: Path, name: str) -> str:
    shutil.copy(where / "prepared.sqlite3", where / name)
    return f"sqlite:///{where / name}"


def measure(what: str, where: Path, planned: bool = True) -> None:
    """One measured part (run under callgrind by :func:`main`)."""
    if what == "tpcb":
        db = tpcb_database(where / "tpcb.sqlite3")
        rng = random.Random(1)
        tpcb_transactions(db, rng, 100)
        _count(True)
        tpcb_transactions(db, rng, TPCB_TRANSACTIONS)
        _count(False)
        return
    pop, warm = pickle.loads((where / "population.pickle").read_bytes())
    engine = make_engine(_copy(where, f"{what}.sqlite3"))
    pop = dataclasses.replace(pop, factory=make_session_factory(engine))
    if what == "relay":
        relay = build_relay(pop.factory, pop.clock, pop.geo, plan_rounds=True)
        relay.run_once(warm)  # the warm-up changes' messages, exactly
        _count(True)
        relay.run_once(10**7)
        _count(False)
        assert relay.run_once(10**7) == 0 and relay.stats.planned == 2, relay.stats
    else:
        desk = counter_group_commit(pop.factory, planned=planned)
        desk.start()
        clerk_changes(pop, desk, 64, random.Random(99))
        _count(True)
        clerks = [
            threading.Thread(
                target=clerk_changes, args=(pop, desk, COUNTER_CHANGES // CLERKS, random.Random(i))
            )
            for i in range(CLERKS)
        ]
        for t in clerks:
            t.start()
        for t in clerks:
            t.join()
        _count(False)
        desk.stop()
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=3000, help="changes the measured relay round carries")
    ap.add_argument("--measure", choices=("relay", "counters", "tpcb"), help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument(
        "--unplanned-counters",
        action="store_true",
        help="the counters' groups run under the write lock, not planned (jlis.groupcommit)",
    )
    args = ap.parse_args()
    if args.measure:
        measure(args.measure, args.dir, planned=not args.unplanned_counters)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    where = Path(tempfile.mkdtemp(prefix="jlis-bench-cost-"))
    try:
        prepare(where, args.changes)
        runs = {
            what: subprocess.Popen(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--instr-atstart=no",
                    f"--callgrind-out-file={where / what}.callgrind",
                    sys.executable,
                    "-m",
                    "bench.propagation_cost",
                    "--measure",
                    what,
                    "--dir",
                    str(where),
                    *(["--unplanned-counters"] if args.unplanned_counters else []),
                ],
                env=os.environ | {"JLIS_CALLGRIND": "1", "PYTHONHASHSEED": "0"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for what in ("relay", "counters", "tpcb")
        }
        counted = {}
        for what, run in runs.items():
            out, err = run.communicate()
            found = re.search(r"Collected : (\d+)", err)
            if run.returncode != 0 or found is None:
                sys.exit(f"{what} failed ({run.returncode}):\n{out}\n{err[-3000:]}")
            counted[what] = int(found.group(1))
    finally:
        shutil.rmtree(where, ignore_errors=True)
    relay = counted["relay"] / args.changes
    counters = counted["counters"] / COUNTER_CHANGES
    tpcb = counted["tpcb"] / TPCB_TRANSACTIONS
    print(f"propagation cost in instructions (callgrind) — {machine()}")
    print(
        f"per change: relay {relay / 1e6:.3f} M ({args.changes:,} changes in one planned round), "
        f"counters {counters / 1e6:.3f} M ({COUNTER_CHANGES} changes, {CLERKS} clerks, "
        f"{'group commit' if args.unplanned_counters else 'planned group commit'}), "
        f"together {(relay + counters) / 1e6:.3f} M; sqlite TPC-B {tpcb / 1e3:.0f} k per transaction: "
        f"a change costs {(relay + counters) / tpcb:.1f} TPC-B transactions"
    )


if __name__ == "__main__":
    main()
