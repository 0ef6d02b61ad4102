"""The kiosk's memory of a visit, in the database: tokens (stored hashed), idle expiry, the cap, the
card given back and the center's session closed at the end, the state saved as plain data, and one
step of a visit at a time across several stores (processes) on the same database."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker, undefer

from jlis.clock import FixedClock
from jlis.errors import InvalidInput, RuleViolation
from jlis.kiosk.screen import visits as visits_mod
from jlis.kiosk.screen.port import CenterVisit, Menu, Offer, Option, Printout, Quote
from jlis.kiosk.screen.reader import UPLOAD, CardRef
from jlis.kiosk.screen.tables import VisitRow
from jlis.kiosk.screen.visits import IDLE_TIMEOUT, Outcome, Step, Visit, Visits, csrf_for

_counter = itertools.count(1)


def _visits(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, closed: list[CenterVisit] | None = None
) -> Visits:
    return Visits(
        factory,
        clock,
        uploads_dir=tmp_path / "uploads",
        new_token=lambda: f"token-{next(_counter):06d}",
        close_center=closed.append if closed is not None else None,
    )


def _rows(factory: sessionmaker[Session]) -> list[VisitRow]:
    with factory() as s:
        return list(s.scalars(select(VisitRow).options(undefer(VisitRow.pdf))))


def test_a_visit_is_found_by_its_token_and_starts_at_the_card(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    visits = _visits(factory, clock, tmp_path)
    visit = visits.start()
    assert visit.step is Step.CARD and visit.started_at == clock.now()
    found = visits.get(visit.token)
    assert found is not None and found.token == visit.token and found.step is Step.CARD
    assert found.started_at == clock.now()
    assert visits.get("token-999999") is None and visits.get(None) is None and visits.get("") is None
    assert visits.start().token != visit.token and len(visits) == 2
    # The table keeps the token's SHA-256 only.
    digests = {r.token_sha256 for r in _rows(factory)}
    assert hashlib.sha256(visit.token.encode()).hexdigest() in digests
    assert visit.token not in digests


def test_an_idle_visit_expires_and_is_ended(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    visits, visit, closed = _at_menu(factory, clock, tmp_path)
    clock.advance(seconds=int(IDLE_TIMEOUT.total_seconds()) - 1)
    assert visits.get(visit.token) is not None  # looking restarts the idle time
    clock.advance(seconds=int(IDLE_TIMEOUT.total_seconds()) - 1)
    assert visits.get(visit.token) is not None
    clock.advance(seconds=int(IDLE_TIMEOUT.total_seconds()) + 1)
    assert visits.get(visit.token) is None
    assert closed == [CenterVisit("session-1", None)] and len(visits) == 0
    assert not list((tmp_path / "uploads").iterdir())  # the uploaded card is deleted


def test_idle_visits_of_others_are_swept(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    closed: list[CenterVisit] = []
    visits = _visits(factory, clock, tmp_path, closed)
    other = _visits(factory, clock, tmp_path, closed)  # another worker process
    idle = visits.start()
    _set_up(visits, idle, tmp_path)
    clock.advance(seconds=IDLE_TIMEOUT.total_seconds() + 1)
    other.start()  # any request of any visit sweeps
    assert len(visits) == 1 and visits.get(idle.token) is None
    assert closed == [CenterVisit("session-1", None)]
    assert not list((tmp_path / "uploads").iterdir())


def _at_menu(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> tuple[Visits, Visit, list[CenterVisit]]:
    """A started visit with a card on the reader and a center session (see _set_up), and the list
    its closed center sessions go to."""
    closed: list[CenterVisit] = []
    visits = _visits(factory, clock, tmp_path, closed)
    visit = visits.start()
    _set_up(visits, visit, tmp_path)
    return visits, visit, closed


def _set_up(visits: Visits, visit: Visit, tmp_path: Path) -> None:
    """An uploaded card on the reader and a center session, as the pages set them."""
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    name = f"{next(_counter):032x}.jcard"
    (uploads / name).write_bytes(b"card")

    def work() -> None:
        visit.set_card(CardRef(UPLOAD, name, "持ち込まれたカード"), "pass phrase")
        visit.center = CenterVisit("session-1", None)
        visit.step = Step.MENU

    assert visits.run(visit, Step.CARD, work) is Outcome.DONE


def test_ending_a_visit_gives_the_card_back_closes_the_session_and_drops_the_document(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    visits, visit, closed = _at_menu(factory, clock, tmp_path)

    def printed() -> None:
        visit.printout = _printout()
        visit.step = Step.PRINTED

    assert visits.run(visit, Step.MENU, printed) is Outcome.DONE
    (row,) = _rows(factory)
    assert row.pdf == b"%PDF-1.7 test"
    visits.end(visit)
    assert visit.card is None and visit.printout is None and visit.center is None
    assert closed == [CenterVisit("session-1", None)] and visits.get(visit.token) is None
    assert _rows(factory) == [] and not list((tmp_path / "uploads").iterdir())
    visits.end(visit)  # twice is harmless
    assert len(closed) == 1


def test_the_number_of_visits_is_capped(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visits_mod, "MAX_VISITS", 3)
    visits = _visits(factory, clock, tmp_path)
    for _ in range(3):
        visits.start()
    with pytest.raises(RuleViolation) as info:
        visits.start()
    assert info.value.field == "端末"
    clock.advance(seconds=IDLE_TIMEOUT.total_seconds() + 1)
    visits.start()  # the idle ones were swept
    assert len(visits) == 1


def test_the_csrf_token_is_bound_to_the_visit() -> None:
    assert csrf_for("a") == csrf_for("a") and csrf_for("a") != csrf_for("b")
    assert len(csrf_for("a")) == 64


def _menu() -> Menu:
    scope = Option("scope", "対象となる方", (("self", "本人のみ"), ("household", "世帯全員")), "self")
    honseki = Option("honseki_lg_code", "本籍地", place=True, hint="空欄のまま")
    item = Option("item_name", "氏名", default="1", group="証明する事項")
    return Menu(
        "東京都千代田区",
        (
            Offer("resident", "住民票の写し", 200, (scope, item)),
            Offer("koseki", "戸籍証明書", 450, (honseki,), "本籍地の市区町村が交付します"),
        ),
        10,
    )


def _printout() -> Printout:
    return Printout(
        pdf=b"%PDF-1.7 test",
        certificate_number="C-1",
        verification_code="ABCD",
        verify_url="https://jlis.test/verify?c=1",
        request_id="R-1",
        kind="resident",
        label="住民票の写し",
        copies=2,
        fee=400,
        sha256="0" * 64,
        extra={"note": "x"},
    )


def test_the_state_is_plain_data_read_back_by_another_process(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    visits = _visits(factory, clock, tmp_path)
    other = _visits(factory, clock, tmp_path)
    visit = visits.start()
    expires = dt.datetime(2026, 11, 26, 10, 20, tzinfo=dt.UTC)

    def work() -> None:
        visit.set_card(CardRef("demo", "card-1", "card-1"), "秘密の passphrase")
        visit.challenge_text = "jlis-jpki-login/1\n..."
        visit.center = CenterVisit("session-token", expires)
        visit.menu = _menu()
        visit.quote = Quote("R-1", "resident", "住民票の写し", 2, 400, ("世帯全員", "続柄あり"))
        visit.step = Step.FEE

    assert visits.run(visit, Step.CARD, work) is Outcome.DONE
    seen = other.get(visit.token)
    assert seen is not None
    assert (seen.step, seen.card, seen.challenge_text) == (Step.FEE, visit.card, visit.challenge_text)
    assert (seen.center, seen.menu, seen.quote) == (visit.center, visit.menu, visit.quote)
    assert seen.passphrase() == "秘密の passphrase"
    (row,) = _rows(factory)
    assert row.card_secret is not None and "秘密".encode() not in row.card_secret  # sealed

    def paid() -> None:
        seen.quote, seen.printout, seen.step = None, _printout(), Step.PRINTED

    assert other.run(seen, Step.FEE, paid) is Outcome.DONE
    without = visits.get(visit.token)
    assert without is not None and without.printout is not None and without.printout.pdf == b""
    with_pdf = visits.get(visit.token, pdf=True)
    assert with_pdf is not None and with_pdf.printout == _printout()
    # A later step that leaves the printout alone keeps the PDF.
    assert visits.run(without, Step.PRINTED, lambda: None) is Outcome.DONE
    again = other.get(visit.token, pdf=True)
    assert again is not None and again.printout == _printout()


def test_a_sealed_passphrase_needs_the_visits_token(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    visit = Visit("token-a", clock.now(), clock.now())
    visit.set_card(CardRef("demo", "c", "c"), "pass")
    stolen = Visit("token-b", clock.now(), clock.now(), card=visit.card, card_secret=visit.card_secret)
    with pytest.raises(InvalidInput):
        stolen.passphrase()


def test_one_step_at_a_time_across_processes(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """Two submissions of the same step through two stores (two worker processes): the second waits
    for the first, then finds the visit moved on; the work runs once."""
    first_store = _visits(factory, clock, tmp_path)
    second_store = _visits(factory, clock, tmp_path)
    token = first_store.start().token
    a, b = first_store.get(token), second_store.get(token)
    assert a is not None and b is not None
    inside = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def slow() -> None:
        inside.set()
        assert release.wait(10)
        ran.append("first")
        a.step = Step.PIN

    def fast() -> None:
        ran.append("second")
        b.step = Step.PIN

    results: dict[str, Outcome] = {}
    thread = threading.Thread(target=lambda: results.setdefault("first", first_store.run(a, Step.CARD, slow)))
    thread.start()
    assert inside.wait(10)
    waiter = threading.Thread(
        target=lambda: results.setdefault("second", second_store.run(b, Step.CARD, fast))
    )
    waiter.start()
    time.sleep(0.3)
    assert "second" not in results  # waiting for the first
    release.set()
    thread.join(10)
    waiter.join(10)
    assert results == {"first": Outcome.DONE, "second": Outcome.MOVED}
    assert ran == ["first"] and b.step is Step.PIN


def test_a_busy_visit_makes_the_next_step_wait_and_then_give_up(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    visits = _visits(factory, clock, tmp_path)
    impatient = Visits(factory, clock, uploads_dir=tmp_path / "uploads", wait=0.2)
    visit = visits.start()
    twin = impatient.get(visit.token)
    assert twin is not None

    def nested() -> None:
        with pytest.raises(InvalidInput) as info:
            impatient.run(twin, Step.CARD, lambda: None)
        assert info.value.field == "操作"

    assert visits.run(visit, Step.CARD, nested) is Outcome.DONE
    # A claim left behind by a crashed process lapses.
    with factory() as s, s.begin():
        row = s.get(VisitRow, hashlib.sha256(visit.token.encode()).hexdigest())
        assert row is not None
        row.claim, row.busy_until = "crashed", clock.now() + dt.timedelta(minutes=2)
    with pytest.raises(InvalidInput):
        impatient.run(twin, Step.CARD, lambda: None)
    clock.advance(minutes=3)
    assert impatient.run(twin, Step.CARD, lambda: None) is Outcome.DONE


def test_a_step_of_an_ended_visit_does_not_run_and_what_it_set_up_is_given_back(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    closed: list[CenterVisit] = []
    visits = _visits(factory, clock, tmp_path, closed)
    visit = visits.start()
    twin = visits.get(visit.token)
    assert twin is not None
    visits.end(visit)
    assert visits.run(twin, Step.CARD, lambda: pytest.fail("ran")) is Outcome.GONE
    # The visit ends while a step is at the center: what the step opened is closed again.
    visit = visits.start()

    def ended_meanwhile() -> None:
        visits.end(Visit(visit.token, clock.now(), clock.now()))
        visit.center = CenterVisit("session-2", None)

    with pytest.raises(InvalidInput):
        visits.run(visit, Step.CARD, ended_meanwhile)
    assert closed == [CenterVisit("session-2", None)]


def test_an_uploaded_card_file_no_visit_names_is_deleted_when_old(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """A process killed between deleting a visit's row and its card file leaves the file: the sweep
    deletes it once it is older than any step could keep one unsaved."""
    visits = _visits(factory, clock, tmp_path)
    visit = visits.start()
    _set_up(visits, visit, tmp_path)  # a card file the visit names
    uploads = tmp_path / "uploads"
    (named,) = uploads.iterdir()
    orphan, fresh = uploads / f"{'a' * 32}.jcard", uploads / f"{'b' * 32}.jcard"
    orphan.write_bytes(b"card")
    fresh.write_bytes(b"card")
    old = time.time() - 3600
    for path in (named, orphan):
        os.utime(path, (old, old))
    visits.start()  # sweeps (the first sweep of this store)
    clock.advance(seconds=30)
    assert visits.get(visit.token) is not None  # sweeps again
    assert sorted(p.name for p in uploads.iterdir()) == sorted([named.name, fresh.name])
