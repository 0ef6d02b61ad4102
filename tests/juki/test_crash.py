"""Crash safety, for real: a worker process is killed with SIGKILL at chosen points (inside a register
transaction, inside a delivery before its commit, after a delivery before its ack, after the ack) and at
random ones, then restarted until it finishes. Afterwards every change must have reached every tier
exactly once: the history of each tier holds one row per change, every outbox message was applied once
(each a register published has one inbox row, a forward delivered in the round that made it none)
and nothing waits."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.db import Base, import_all_tables, make_engine, make_session_factory
from jlis.juki.models import CS, HONSEKI
from jlis.juki.tables import (
    cs_history,
    fuhyo_national_history,
    national_history,
    national_identities,
    pref_history,
)
from jlis.messaging.tables import InboxRow, OutboxRow
from jlis.registry.models import NOTIFIED_REASONS
from jlis.registry.tables import HistoryRow, ResidentRow

WORKER = Path(__file__).with_name("crash_worker.py")
PEOPLE, CHANGES = 9, 3
# Points counted from each worker run's start: a clean run makes 27 register transactions and 13
# relay rounds (rounds follow their forwards even when full), and each restart has less left to do.
SQLITE_PLAN = [
    ("register", 2),
    ("inside-apply", 1),
    ("after-apply-before-ack", 1),
    ("after-ack", 1),
    ("register", 6),
    ("inside-apply", 3),
    ("after-apply-before-ack", 2),
    ("after-ack", 3),
    ("random", 1),
    ("random", 2),
    ("random", 3),
]
# The relay's rounds planned outside the write lock and replayed under it (jlis.planned).
SQLITE_PLANNED_PLAN = [
    ("inside-apply", 1),
    ("after-apply-before-ack", 1),
    ("inside-apply", 2),
    ("after-ack", 2),
    ("random", 4),
    ("random", 5),
]
POSTGRES_PLAN = [
    ("register", 3),
    ("inside-apply", 2),
    ("after-apply-before-ack", 3),
    ("after-ack", 2),
    ("random", 7),
]


def worker_run(url: str, point: str, n: int, *, planned: bool) -> subprocess.CompletedProcess[str]:
    """Run the worker once: ``point`` "random" with seed ``n``, otherwise dying at its ``n``-th call."""
    args = [sys.executable, str(WORKER), "--db", url, "--people", str(PEOPLE), "--changes", str(CHANGES)]
    if planned:
        args.append("--plan-rounds")
    if point == "random":
        args += ["--point", "random", "--seed", str(n), "--p", "0.04"]
    else:
        args += ["--point", point, "--after", str(n)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"worker failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


@pytest.mark.slow
def test_killed_at_any_point_nothing_is_lost_and_nothing_is_applied_twice(
    factory: sessionmaker[Session],
) -> None:
    engine = factory.kw["bind"]
    plan = SQLITE_PLAN if engine.dialect.name == "sqlite" else POSTGRES_PLAN
    crash_and_check(factory, plan, planned=False)


@pytest.mark.slow
def test_killed_with_planned_relay_rounds(tmp_path: Path) -> None:
    """SQLite only: planned rounds are a SQLite mechanism (PostgreSQL's relay ignores the option)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'planned.sqlite3'}")
    import_all_tables()
    Base.metadata.create_all(engine)
    try:
        crash_and_check(make_session_factory(engine), SQLITE_PLANNED_PLAN, planned=True)
    finally:
        engine.dispose()


def crash_and_check(factory: sessionmaker[Session], plan: list[tuple[str, int]], *, planned: bool) -> None:
    url = factory.kw["bind"].url.render_as_string(hide_password=False)
    runs = [worker_run(url, point, n, planned=planned) for point, n in plan]
    kills = sum(run.returncode == -signal.SIGKILL for run in runs)
    assert kills >= len(plan) - 2  # the plan's points are reached (a random run may finish unharmed)
    for _ in range(10):  # then without crashes, until it completes
        runs.append(last := worker_run(url, "none", 0, planned=planned))
        if last.returncode == 0:
            break
    else:
        pytest.fail("the worker never completed")
    if planned:  # rounds were planned (not all refused), in the runs that were killed too
        said = [int(n) for run in runs for n in re.findall(r"rounds planned (\d+),", run.stdout)]
        assert said and max(said) > 0, [run.stdout for run in runs]

    with factory() as s:
        people = s.execute(
            select(
                ResidentRow.id,
                ResidentRow.resident_code,
                ResidentRow.lg_code,
                ResidentRow.address_text,
                ResidentRow.honseki_lg_code,
                ResidentRow.version,
            )
        ).all()
        assert len(people) == PEOPLE and all(p.version == CHANGES for p in people)

        def count(table: Table, **where: Any) -> int:
            stmt = select(func.count()).select_from(table)
            for col, value in where.items():
                stmt = stmt.where(table.c[col] == value)
            return s.execute(stmt).scalar_one()

        for p in people:
            notified = s.execute(
                select(func.count()).where(
                    HistoryRow.resident_id == p.id, HistoryRow.reason.in_(NOTIFIED_REASONS)
                )
            ).scalar_one()
            assert notified == CHANGES
            assert count(cs_history, node=f"cs:{p.lg_code}", resident_code=p.resident_code) == CHANGES
            assert count(pref_history, node=f"pref:{p.lg_code[:2]}", resident_code=p.resident_code) == CHANGES
            assert count(national_history, resident_code=p.resident_code) == CHANGES
            expected_fuhyo = CHANGES if p.honseki_lg_code else 0
            assert count(fuhyo_national_history, resident_code=p.resident_code) == expected_fuhyo
            current = s.execute(
                select(national_identities.c.address).where(
                    national_identities.c.resident_code == p.resident_code
                )
            ).scalar_one()
            assert current == p.address_text
        assert count(OutboxRow.__table__) == 0  # nothing waits (a delivered message leaves the outbox)
        # Each message a register published was applied once, by its one node: the first hops'
        # inboxes hold one row per change (keyed by the message's id), a forward delivered in the
        # round that made it none.
        inbox = InboxRow.__table__

        def applied(node_prefix: str) -> int:
            return s.execute(select(func.count()).where(inbox.c.node.like(node_prefix))).scalar_one()

        # Each person moved in once (a 転入通知 to the CS of the old municipality) and made CHANGES
        # changes of 本人確認情報 (the move-in one of them).
        assert applied(f"{CS}:%") == PEOPLE * CHANGES + PEOPLE
        assert applied(f"{HONSEKI}:%") == CHANGES * sum(1 for p in people if p.honseki_lg_code)
