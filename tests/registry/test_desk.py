"""The counter's group commit: actions of one group write their history rows, messages and audited
reads in bulk at the group's end, in the order the actions made them, and a refused action leaves
none."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.errors import RuleViolation
from jlis.messaging.tables import OutboxRow
from jlis.registry import Placement
from jlis.registry.desk import counter_group_commit
from jlis.registry.events import TOPIC_IDENTITY
from jlis.registry.service import ACCESS_LOG
from jlis.registry.tables import HistoryRow

from .conftest import Counter


def test_a_group_writes_history_and_messages_in_action_order(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    people = [counter.move_in(given=f"太郎{'一二三四五六'[i]}") for i in range(6)]
    with counter.service() as svc:
        svc.record_death(people[3].id, died_on=counter.clock.today())
    desk = counter_group_commit(factory).start()
    started, gate = threading.Event(), threading.Event()

    def hold_the_desk(s: Session) -> None:
        started.set()
        gate.wait(5)

    def relocate(i: int) -> object:
        placement = Placement(counter.town(index=i + 1), f"{i + 1}番")
        today = counter.clock.today()
        return desk.run(
            lambda s: counter.service_on(s).record_relocation(people[i].id, placement, moved_on=today)
        )

    try:
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(desk.run, hold_the_desk)
            assert started.wait(5)
            futures = []
            for i in range(6):  # queued in this order behind the held desk: one group
                futures.append(pool.submit(relocate, i))
                while desk._queue.qsize() < i + 1:
                    threading.Event().wait(0.001)
            gate.set()
            first.result(10)
            for i, f in enumerate(futures):
                if i == 3:
                    with pytest.raises(RuleViolation):
                        f.result(10)
                else:
                    f.result(10)
    finally:
        desk.stop()
    with factory() as s:
        h = HistoryRow
        relocated = (
            s.execute(select(h.resident_id).where(h.reason == "relocation").order_by(h.id)).scalars().all()
        )
        assert relocated == [people[i].id for i in (0, 1, 2, 4, 5)]  # in order; the deceased: none
        keys = (
            s.execute(
                select(OutboxRow.key)
                .where(
                    OutboxRow.topic == TOPIC_IDENTITY, OutboxRow.key.in_([p.resident_code for p in people])
                )
                .order_by(OutboxRow.seq)
            )
            .scalars()
            .all()
        )
    codes = [people[i].resident_code for i in (0, 1, 2, 4, 5)]
    assert [k for k in keys if k in codes][-5:] == codes  # the relocations' messages, in order


def test_a_groups_audited_reads_reach_the_access_log_at_its_end(
    counter: Counter, factory: sessionmaker[Session]
) -> None:
    people = [counter.move_in(given=f"花子{'一二'[i]}") for i in range(2)]
    codes = [p.resident_code for p in people]
    desk = counter_group_commit(factory).start()
    seen_inside: list[int] = []

    def read_both(s: Session) -> None:
        svc = counter.service_on(s)
        for p in people:
            svc.get(p.id, purpose="異動処理")
        seen_inside.append(len([e for e in ACCESS_LOG.entries(s) if e.subject in codes]))

    try:
        desk.run(read_both)
    finally:
        desk.stop()
    assert seen_inside == [0]  # held while the group ran: the head was not locked yet
    with factory() as s:
        entries = [e for e in ACCESS_LOG.entries(s) if e.subject in codes]
        assert [e.subject for e in entries] == codes
        assert all(e.details["purpose"] == "異動処理" for e in entries)
        assert ACCESS_LOG.verify(s).ok
