"""What an append costs: it sits on the hot path of every provision. The time is measured by
``bench/lookup_bench.py`` (the whole provision query, p99); here the structural cost is pinned: an
append is a fixed, small number of statements, however long the chain already is."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import JST

DETAILS = {
    "affair": "国民年金法による年金である給付の支給",
    "items": ["氏名", "生年月日", "性別", "住所", "個人番号"],
    "recipient": "日本年金機構",
    "function": "照会",
    "reason": "現況確認",
}


def test_an_append_costs_the_same_few_statements_however_long_the_chain(
    factory: sessionmaker[Session],
) -> None:
    log = AuditLog("juki.provision")
    at = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
    engine = factory.kw["bind"]
    counts: list[int] = []
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    for _ in range(60):
        with factory() as s:
            s.execute(text("SELECT 1"))  # the caller's transaction is already open
            event.listen(engine, "before_cursor_execute", count)
            try:
                log.append(s, at=at, actor="agency:nenkin", action="provide", subject=None, details=DETAILS)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            s.commit()
        counts.append(len(seen))
        seen.clear()
    # The first append creates the chain's head; every later one reads and moves it, and inserts.
    assert len(set(counts[1:])) == 1, counts
    assert counts[-1] <= 3, counts
