"""Where the CPU of a propagation goes on PostgreSQL: the server, the counters, the relay.

    .venv/bin/python -m bench.propagation_cpu [--changes 50000] [--relays 1] [--postgres ADMIN_URL]

The propagation bench's run (bench.propagation_bench: two counter processes × 32 clerks and a relay
process) on a fresh PostgreSQL database, after its seed. Around the changes only, it reads from
``/proc`` the CPU time of every PostgreSQL process (the server's backends, ended ones included
through the postmaster's children's times) and the machine's busy and idle time. Each line gives,
per change, the milliseconds of CPU of the server, of the counter processes and of the relay
processes, and of the whole machine; beside it the same figures for pgbench (TPC-B, 8 clients, as
the propagation bench runs it): the machine's CPU per transaction, and the share of it the
server took, and what a change may cost the machine to match pgbench's tps with every core busy
(the cores' time divided by pgbench's transactions): the budget of the target, 1.0 × pgbench.
Linux only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from bench.common import DEFAULT_PG, fresh_postgres, machine
from bench.propagation_bench import BATCH, pgbench_init, pgbench_run, processes, run, seed

TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) seconds of every core since boot."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, *_ = (int(x) for x in f.readline().split()[1:])
    return (user + nice + system + irq + softirq) / TICK, (idle + iowait) / TICK


def server_cpu() -> float:
    """CPU seconds of the PostgreSQL processes, and of the ones that ended (their parent's children's
    times: the postmaster reaps its backends)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def measured(work: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """``work()``'s result, and the machine's busy and idle seconds and the server's CPU seconds it took."""
    (busy, idle), server = machine_cpu(), server_cpu()
    result = work()
    (busy2, idle2), server2 = machine_cpu(), server_cpu()
    return result, busy2 - busy, idle2 - idle, server2 - server


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=50_000)
    ap.add_argument("--relays", type=int, choices=(1, 2), default=1)
    ap.add_argument("--postgres", default=DEFAULT_PG, help="admin URL")
    ap.add_argument("--pg-database", default="jlis_bench_cpu")
    ap.add_argument("--pgbench-seconds", type=int, default=15)
    ap.add_argument("--counters", type=int, default=None, help="counter processes (default: the bench's)")
    ap.add_argument("--clerks", type=int, default=None, help="clerks per counter process")
    args = ap.parse_args()
    print(f"propagation CPU on PostgreSQL — {machine()}", flush=True)

    engine = fresh_postgres(args.postgres, args.pg_database)
    pop = seed(engine, 20_000)  # before the measurement: only the changes are measured
    counters, clerks = processes(args, "postgresql")
    r, busy, idle, server = measured(
        lambda: run(engine, args.changes, counters, clerks, 20_000, BATCH, False, relays=args.relays, pop=pop)
    )
    n = r["changes"]
    print(
        f"propagation {n:,} changes, {r['rate']:,.0f} changes/s; CPU per change: server "
        f"{server / n * 1e3:.3f} ms, counters {r['cpu']['counter'] / n * 1e3:.3f} ms, relay "
        f"{r['cpu']['relay'] / n * 1e3:.3f} ms, machine {busy / n * 1e3:.3f} ms "
        f"({busy / (busy + idle):.0%} busy)",
        flush=True,
    )
    database = f"{args.pg_database}_pgbench"
    pgbench_init(args.postgres, database, 1)
    tps, busy, idle, server = measured(lambda: pgbench_run(args.postgres, database, args.pgbench_seconds))
    txns = tps * args.pgbench_seconds
    print(
        f"pgbench     {tps:,.0f} tps; CPU per transaction: server {server / txns * 1e3:.3f} ms, "
        f"machine {busy / txns * 1e3:.3f} ms ({busy / (busy + idle):.0%} busy); at this tps a change "
        f"may cost the machine {(busy + idle) / txns * 1e3:.3f} ms with every core busy",
        flush=True,
    )


if __name__ == "__main__":
    main()
