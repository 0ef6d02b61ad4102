"""The screen served by several worker processes (``jlis serve --workers N``): a visit's requests
reach any of them, so the visit lives in the database (``kiosk_screen_visits``) and an uploaded card
file under the data dir. Two apps on one database stand for two workers; the browser's requests
alternate between them."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jlis.kiosk.center.errors import CenterRefused as CenterSideRefusal
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.pdf.render import read_binding
from jlis.kiosk.pdf.tables import IssuedDocumentRow
from jlis.kiosk.screen.adapter import InProcessCenter
from jlis.kiosk.screen.port import CenterVisit, Printout, Quote
from jlis.kiosk.screen.tables import VisitRow

from .conftest import CARD_PASSPHRASE, KIOSK, KioskScreenWeb, KioskWorkers, pdf_text


def _visits_in_db(k: KioskScreenWeb) -> int:
    with k.world.factory() as s:
        return int(s.scalar(select(func.count()).select_from(VisitRow)) or 0)


def _upload(k: KioskScreenWeb, data: bytes) -> httpx.Response:
    page = k.client.get("/kiosk/card")
    return k.client.post(
        "/kiosk/card",
        data={"csrf_token": k.csrf(page.text), "source": "upload", "passphrase": CARD_PASSPHRASE},
        files={"card_file": ("mine.jcard", data, "application/octet-stream")},
        follow_redirects=False,
    )


def test_a_whole_visit_alternating_between_two_workers(kiosk_workers: KioskWorkers) -> None:
    w = kiosk_workers
    k = w.web
    holder = k.holder(family="高橋", given="健")
    data = k.card_file(holder).read_bytes()
    k.start()
    r = _upload(k, data)  # the uploaded card is kept under the data dir, for every worker
    assert r.status_code == 303 and r.headers["location"] == "/kiosk/pin", r.text
    (card_file,) = w.uploads_dir.iterdir()
    r = k.enter_pin("9999")  # counted on the card file, whichever worker set it
    assert r.status_code == 409 and "残り2回" in r.text
    r = k.enter_pin("0000")
    assert r.status_code == 409 and "残り1回" in r.text
    assert k.enter_pin().headers["location"] == "/kiosk/menu"
    assert "東京都千代田区" in k.client.get("/kiosk/menu").text
    r = k.choose("resident", {"scope": "household", "copies": "2"})
    assert r.headers["location"] == "/kiosk/fee", r.text
    assert "400円" in k.client.get("/kiosk/fee").text
    assert k.pay().headers["location"] == "/kiosk/printed"
    printed = k.client.get("/kiosk/printed")
    pdf = k.client.get("/kiosk/document.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert "高橋" in pdf_text(pdf.content) and "健" in pdf_text(pdf.content)
    assert k.client.get("/kiosk/document.pdf?download=1").content == pdf.content  # the other worker
    (row,) = [r for r in k.world.rows(CenterLogRow) if r.outcome == "issued"]
    assert read_binding(pdf.content).request_id == row.request_id and row.certificate_number in printed.text
    assert min(w.browser.served) >= 8  # both workers served the visit
    assert _visits_in_db(k) == 1 and card_file.exists()
    r = k.post("/kiosk/finish", page="/kiosk/printed", follow_redirects=False)
    assert r.headers["location"] == "/kiosk/bye"
    # Finished: the row (with the PDF) and the uploaded card file are gone, for both workers.
    assert _visits_in_db(k) == 0 and not card_file.exists()
    for client in (w.first, w.second):
        assert client.get("/kiosk/document.pdf", follow_redirects=False).headers["location"] == "/kiosk"


def test_an_idle_visit_is_ended_by_any_worker(kiosk_workers: KioskWorkers) -> None:
    w = kiosk_workers
    k = w.web
    holder = k.holder()
    k.start()
    assert _upload(k, k.card_file(holder).read_bytes()).status_code == 303
    assert k.enter_pin().headers["location"] == "/kiosk/menu"
    (card_file,) = w.uploads_dir.iterdir()
    screen = w.first.app.state.kiosk_screen  # type: ignore[attr-defined]
    visit = screen.visits.get(k.client.cookies.get("jlis_kiosk"))
    token = visit.center.handle
    assert k.world.center.session_by_token(KIOSK, token)
    k.world.clock.advance(minutes=6)
    # Another resident (another browser) starts a visit on the other worker: the idle one is swept.
    w.second.cookies.clear()
    r = w.second.post("/kiosk/start", follow_redirects=False)
    assert r.status_code == 303
    assert _visits_in_db(k) == 1 and not card_file.exists()
    with pytest.raises(CenterSideRefusal):
        k.world.center.session_by_token(KIOSK, token)


class _SlowCenter(InProcessCenter):
    """The in-process center, slow to issue and counting the calls (a double click on 支払う)."""

    def __init__(self, inner: InProcessCenter) -> None:
        super().__init__(inner.center, inner.kiosk_id)
        self.calls = 0
        self.entered = threading.Event()

    def pay_and_issue(self, visit: CenterVisit, quote: Quote, paid: int) -> Printout:
        self.calls += 1
        self.entered.set()
        threading.Event().wait(0.5)
        return super().pay_and_issue(visit, quote, paid)


def test_a_double_submission_through_two_workers_issues_once(kiosk_workers: KioskWorkers) -> None:
    w = kiosk_workers
    k = w.web
    slow = _SlowCenter(w.first.app.state.kiosk_screen_center)  # type: ignore[attr-defined]
    for client in (w.first, w.second):
        client.app.state.kiosk_screen_center = slow  # type: ignore[attr-defined]
        client.app.state.kiosk_screen = None  # type: ignore[attr-defined]
    k.sign_in(k.holder())
    k.choose("resident")
    page = k.client.get("/kiosk/fee")
    form = {
        "csrf_token": k.csrf(page.text),
        "paid": re.search(r'name="paid" value="(\d+)"', page.text).group(1),  # type: ignore[union-attr]
    }
    answers: dict[str, Any] = {}

    def pay(name: str, client: Any) -> None:
        answers[name] = client.post("/kiosk/pay", data=form, follow_redirects=False)

    first = threading.Thread(target=pay, args=("first", w.first))
    first.start()
    assert slow.entered.wait(10)
    second = threading.Thread(target=pay, args=("second", w.second))
    second.start()
    first.join(30)
    second.join(30)
    assert slow.calls == 1
    # Both see the printed certificate: the second waited for the first and found the visit moved on.
    assert [answers[n].status_code for n in ("first", "second")] == [303, 303]
    assert {answers[n].headers["location"] for n in ("first", "second")} == {"/kiosk/printed"}
    assert k.world.count(IssuedDocumentRow) == 1
    assert [r.outcome for r in k.world.rows(CenterLogRow)] == ["issued"]


def test_each_worker_with_its_own_center_object(kiosk_workers: KioskWorkers) -> None:
    """As ``jlis serve --workers 2`` runs it: each worker has its own IssuanceCenter too (the center
    keeps its sessions and quotes in the database)."""
    from jlis.kiosk.center.service import IssuanceCenter

    w = kiosk_workers
    k = w.web
    own = IssuanceCenter(k.world.container, k.world.revocation)
    w.second.app.state.kiosk_screen_center = InProcessCenter(own, KIOSK)  # type: ignore[attr-defined]
    w.second.app.state.kiosk_screen = None  # type: ignore[attr-defined]
    k.sign_in(k.holder(family="渡辺", given="学"))
    k.choose("resident")
    assert k.pay().headers["location"] == "/kiosk/printed"
    assert "渡辺" in pdf_text(k.client.get("/kiosk/document.pdf").content)
    k.post("/kiosk/finish", page="/kiosk/printed")
    assert _visits_in_db(k) == 0
    assert [r.outcome for r in k.world.rows(CenterLogRow)] == ["issued"]
