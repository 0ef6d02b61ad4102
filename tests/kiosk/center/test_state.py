"""The center's sessions, quotes and receipts live in the database: two IssuanceCenter instances on
the same database (each with its own engine and connection pool, as two worker processes of
``jlis serve --workers 2`` are) share them; a quote is paid once and a receipt used once even when
two instances race; expiry and the end of a session drop what belongs to them."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from jlis.db import make_engine, make_session_factory
from jlis.kiosk.center.errors import CenterReason, CenterRefused
from jlis.kiosk.center.models import IssuedCertificate, Receipt
from jlis.kiosk.center.service import IssuanceCenter
from jlis.kiosk.center.tables import CenterLogRow, CenterQuoteRow, CenterSessionRow
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.models import IssueOptions
from jlis.kiosk.pdf.tables import IssuedDocumentRow

from ...web.support import make_container
from .conftest import CHIYODA, KIOSK, CenterWorld, pdf_text

_T = TypeVar("_T")


@pytest.fixture
def second(center_world: CenterWorld, tmp_path: Path) -> Iterator[IssuanceCenter]:
    """Another 'worker process': its own engine on the same database, its own container (same
    instance secret and key store), its own IssuanceCenter."""
    w = center_world
    url = w.container.engine.url.render_as_string(hide_password=False)
    engine = make_engine(url)
    container = make_container(make_session_factory(engine), w.clock, tmp_path)
    container.__dict__["keystore"] = w.container.keystore
    try:
        yield IssuanceCenter(container, w.revocation)
    finally:
        engine.dispose()


def _refused(fn: Callable[[], Any], code: str) -> CenterRefused:
    with pytest.raises(CenterRefused) as info:
        fn()
    assert info.value.code == code, (info.value.code, info.value.detail)
    return info.value


def _race(*calls: Callable[[], _T]) -> list[_T | CenterRefused]:
    """Run ``calls`` at once (a barrier lets them go together); each result or refusal."""
    barrier = threading.Barrier(len(calls))
    out: list[_T | CenterRefused | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], _T]) -> None:
        barrier.wait()
        try:
            out[i] = call()
        except CenterRefused as exc:
            out[i] = exc
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return [r for r in out if r is not None]


def test_a_session_opened_in_one_process_is_used_in_another(
    center_world: CenterWorld, second: IssuanceCenter
) -> None:
    w = center_world
    holder = w.holder(CHIYODA, family="佐藤", given="花子")
    session = w.login(holder)  # card, OCSP, holder look-up: through the first instance
    # the HTTP API's look-ups, through the second
    assert second.session_by_token(KIOSK, session.token) == session
    _refused(lambda: second.session_by_token("K-0002", session.token), CenterReason.SESSION_UNKNOWN)
    menu = second.menu(session)
    assert CertificateKind.RESIDENT in {i.kind for i in menu.items}
    quote = second.request(session, CertificateKind.RESIDENT, IssueOptions(household=True), 2)
    assert w.center.quote_by_id(session, quote.request_id) == quote
    receipt = w.center.pay(quote)
    assert second.receipt_by_id(session, quote.request_id) == receipt
    issued = second.issue(session, receipt)
    assert "佐藤" in pdf_text(issued.pdf) and issued.request_id == quote.request_id
    (row,) = [r for r in w.rows(CenterLogRow) if r.outcome == "issued"]
    assert (row.charged, row.request_id) == (400, quote.request_id)
    # the session ends through the second: the first no longer knows it
    second.close(session)
    _refused(lambda: w.center.menu(session), CenterReason.SESSION_UNKNOWN)


def test_the_token_is_kept_only_as_its_sha256(center_world: CenterWorld) -> None:
    w = center_world
    session = w.login(w.holder())
    quote = w.center.request(session, CertificateKind.RESIDENT)
    (row,) = w.rows_of(CenterSessionRow)
    assert row.token_sha256 == hashlib.sha256(session.token.encode()).hexdigest()
    (q,) = w.rows_of(CenterQuoteRow)
    assert q.token_sha256 == row.token_sha256 and q.state == "quoted" and q.request_id == quote.request_id
    for table_row in (row, q):
        values = [str(getattr(table_row, c.key)) for c in table_row.__table__.columns]
        assert not [v for v in values if session.token in v]


def test_a_quote_is_paid_once_across_processes(center_world: CenterWorld, second: IssuanceCenter) -> None:
    w = center_world
    session = w.login(w.holder())
    for _ in range(4):
        quote = w.center.request(session, CertificateKind.RESIDENT)
        results = _race(lambda: w.center.pay(quote), lambda: second.pay(quote))  # noqa: B023
        receipts = [r for r in results if isinstance(r, Receipt)]
        refusals = [r for r in results if isinstance(r, CenterRefused)]
        assert len(receipts) == 1 and len(refusals) == 1, results
        assert refusals[0].code == CenterReason.QUOTE_UNKNOWN
        # and after the race, neither instance takes it again
        _refused(lambda: second.pay(quote), CenterReason.QUOTE_UNKNOWN)  # noqa: B023
        _refused(lambda: w.center.pay(quote), CenterReason.QUOTE_UNKNOWN)  # noqa: B023


def test_a_receipt_issues_once_across_processes(center_world: CenterWorld, second: IssuanceCenter) -> None:
    w = center_world
    session = w.login(w.holder())
    issued_numbers = []
    for _ in range(2):
        receipt = w.center.pay(w.center.request(session, CertificateKind.RESIDENT))
        results = _race(lambda: w.center.issue(session, receipt), lambda: second.issue(session, receipt))  # noqa: B023
        issued = [r for r in results if isinstance(r, IssuedCertificate)]
        refusals = [r for r in results if isinstance(r, CenterRefused)]
        assert len(issued) == 1 and len(refusals) == 1, results
        assert refusals[0].code == CenterReason.NOT_PAID
        issued_numbers.append(issued[0].certificate_number)
        _refused(lambda: second.issue(session, receipt), CenterReason.NOT_PAID)  # noqa: B023
    assert w.count(IssuedDocumentRow) == 2 and len(set(issued_numbers)) == 2
    log = w.rows(CenterLogRow)
    assert sorted((r.outcome, r.code, r.charged) for r in log) == sorted(
        [("issued", None, 200)] * 2 + [("refused", "not_paid", 0)] * 4
    )


def test_expiry(center_world: CenterWorld, second: IssuanceCenter) -> None:
    w = center_world
    holder, later = w.holder(), w.holder(given="次郎")  # (each holder() is a day later)
    session = w.login(holder)
    quote = w.center.request(session, CertificateKind.RESIDENT)
    paid = w.center.pay(w.center.request(session, CertificateKind.RESIDENT))
    w.clock.advance(minutes=11)
    _refused(lambda: second.menu(session), CenterReason.SESSION_UNKNOWN)
    _refused(lambda: second.pay(quote), CenterReason.QUOTE_UNKNOWN)
    _refused(lambda: second.issue(session, paid), CenterReason.SESSION_UNKNOWN)
    # a login sweeps: the expired session and unpaid quote go; used receipts stay a day
    w.login(later)
    assert len(w.rows_of(CenterSessionRow)) == 1
    assert [(q.request_id, q.state) for q in w.rows_of(CenterQuoteRow)] == [(paid.request_id, "used")]
    w.clock.advance(days=1)
    second.sweep()
    assert w.rows_of(CenterSessionRow) == [] and w.rows_of(CenterQuoteRow) == []


def test_ending_a_session_drops_its_quotes_and_receipts(
    center_world: CenterWorld, second: IssuanceCenter
) -> None:
    w = center_world
    me, you = w.holder(), w.holder(given="三郎")
    session, other = w.login(me), w.login(you)
    quote = w.center.request(session, CertificateKind.RESIDENT)
    receipt = w.center.pay(w.center.request(session, CertificateKind.RESIDENT))
    kept = w.center.request(other, CertificateKind.RESIDENT)
    second.close(session)
    _refused(lambda: w.center.quote_by_id(session, quote.request_id), CenterReason.QUOTE_UNKNOWN)
    _refused(lambda: w.center.receipt_by_id(session, receipt.request_id), CenterReason.NOT_PAID)
    _refused(lambda: w.center.pay(quote), CenterReason.QUOTE_UNKNOWN)
    _refused(lambda: w.center.issue(session, receipt), CenterReason.NOT_PAID)
    assert [q.request_id for q in w.rows_of(CenterQuoteRow)] == [kept.request_id]
    assert w.center.quote_by_id(other, kept.request_id) == kept
    # a quote whose session ended while it was shown cannot be paid
    w.center.close(other)
    assert w.rows_of(CenterSessionRow) == [] and w.rows_of(CenterQuoteRow) == []
    with w.factory() as s:
        assert s.scalars(select(CenterLogRow.code).where(CenterLogRow.outcome == "issued")).all() == []
