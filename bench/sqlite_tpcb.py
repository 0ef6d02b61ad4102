"""pgbench's TPC-B script on SQLite: the same-run yardstick of the propagation bench on SQLite, as
pgbench itself is on PostgreSQL.

pgbench's four tables at scale 1 (1 branch, 10 tellers, 100,000 accounts) and its default
transaction (three UPDATEs, a SELECT and an INSERT into the history) run back to back on one
connection with jlis's own settings (WAL, ``synchronous=NORMAL``, ``BEGIN IMMEDIATE``), from a
Python loop over the standard ``sqlite3`` module. SQLite writes one transaction at a time, so one
connection is its best case. The rate says what this machine's SQLite and Python give a minimal
transaction at the moment of the run: a propagation figure divided by it can be compared between
runs on machines of different speed, where the absolute figure cannot.

    .venv/bin/python -m bench.sqlite_tpcb [--seconds 10]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

ACCOUNTS = 100_000  # per branch, as pgbench
TELLERS = 10
FILLER = " " * 84  # pgbench's accounts filler
_HISTORY = "INSERT INTO history (tid, bid, aid, delta, mtime) VALUES (?, 1, ?, ?, CURRENT_TIMESTAMP)"


def sqlite_tpcb(seconds: float = 10.0, seed: int = 1) -> float:
    """Transactions per second of pgbench's TPC-B script on a fresh SQLite database at scale 1."""
    where = Path(tempfile.mkdtemp(prefix="jlis-bench-tpcb-"))
    try:
        db = tpcb_database(where / "tpcb.sqlite3")
        rng = random.Random(seed)
        done = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            tpcb_transactions(db, rng, 100)
            done += 100
        elapsed = time.perf_counter() - started
        db.close()
        return done / elapsed
    finally:
        shutil.rmtree(where, ignore_errors=True)


def tpcb_database(path: Path) -> sqlite3.Connection:
    """pgbench's tables at scale 1 in a new SQLite file, on a connection with jlis's settings."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(
        """
        CREATE TABLE branches (bid INTEGER PRIMARY KEY, bbalance INTEGER, filler TEXT);
        CREATE TABLE tellers (tid INTEGER PRIMARY KEY, bid INTEGER, tbalance INTEGER, filler TEXT);
        CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER, filler TEXT);
        CREATE TABLE history (tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime TEXT,
                              filler TEXT);
        BEGIN;
        INSERT INTO branches VALUES (1, 0, NULL);
        """
    )
    db.executemany("INSERT INTO tellers VALUES (?, 1, 0, NULL)", [(t,) for t in range(1, TELLERS + 1)])
    db.executemany("INSERT INTO accounts VALUES (?, 1, 0, ?)", [(a, FILLER) for a in range(1, ACCOUNTS + 1)])
    db.execute("COMMIT")
    return db


def tpcb_transactions(db: sqlite3.Connection, rng: random.Random, count: int) -> None:
    """``count`` transactions of pgbench's default script."""
    for _ in range(count):
        aid, tid, delta = rng.randint(1, ACCOUNTS), rng.randint(1, TELLERS), rng.randint(-5000, 5000)
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE accounts SET abalance = abalance + ? WHERE aid = ?", (delta, aid))
        db.execute("SELECT abalance FROM accounts WHERE aid = ?", (aid,)).fetchone()
        db.execute("UPDATE tellers SET tbalance = tbalance + ? WHERE tid = ?", (delta, tid))
        db.execute("UPDATE branches SET bbalance = bbalance + ? WHERE bid = 1", (delta,))
        db.execute(_HISTORY, (tid, aid, delta))
        db.execute("COMMIT")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    print(f"sqlite TPC-B (pgbench's script, scale 1, 1 connection): {sqlite_tpcb(args.seconds):,.0f} tps")


if __name__ == "__main__":
    main()
