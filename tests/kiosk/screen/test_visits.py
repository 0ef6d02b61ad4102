"""The kiosk's memory of a visit: tokens, idle expiry, the cap, and the card given back at the end."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from jlis.clock import FixedClock
from jlis.errors import RuleViolation
from jlis.kiosk.screen import visits as visits_mod
from jlis.kiosk.screen.visits import IDLE_TIMEOUT, Step, Visit, Visits, csrf_for


def _visits(clock: FixedClock, ended: list[Visit] | None = None) -> Visits:
    counter = itertools.count(1)
    return Visits(
        clock,
        new_token=lambda: f"token-{next(counter):04d}",
        on_end=(lambda v: ended.append(v)) if ended is not None else None,
    )


def test_a_visit_is_found_by_its_token_and_starts_at_the_card(clock: FixedClock) -> None:
    visits = _visits(clock)
    visit = visits.start()
    assert visit.step is Step.CARD and visit.started_at == clock.now()
    assert visits.get(visit.token) is visit
    assert visits.get("token-9999") is None and visits.get(None) is None and visits.get("") is None
    assert visits.start().token != visit.token and len(visits) == 2


def test_an_idle_visit_expires_and_is_ended(clock: FixedClock) -> None:
    ended: list[Visit] = []
    visits = _visits(clock, ended)
    visit = visits.start()
    clock.advance(seconds=int(IDLE_TIMEOUT.total_seconds()) - 1)
    assert visits.get(visit.token) is visit  # looking restarts the idle time
    clock.advance(seconds=int(IDLE_TIMEOUT.total_seconds()) - 1)
    assert visits.get(visit.token) is visit
    clock.advance(seconds=int(IDLE_TIMEOUT.total_seconds()) + 1)
    assert visits.get(visit.token) is None
    assert ended == [visit] and len(visits) == 0


def test_ending_a_visit_gives_the_card_back_and_drops_the_document(clock: FixedClock, tmp_path: Path) -> None:
    ended: list[Visit] = []
    visits = _visits(clock, ended)
    visit = visits.start()

    class Slot:
        ejected = 0

        def eject(self) -> None:
            Slot.ejected += 1

    visit.slot = Slot()  # type: ignore[assignment]
    visit.printout = object()  # type: ignore[assignment]
    visits.end(visit)
    assert Slot.ejected == 1 and visit.slot is None and visit.printout is None
    assert ended == [visit] and visits.get(visit.token) is None
    visits.end(visit)  # twice is harmless
    assert Slot.ejected == 1


def test_the_number_of_visits_is_capped(clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visits_mod, "MAX_VISITS", 3)
    visits = _visits(clock)
    for _ in range(3):
        visits.start()
    with pytest.raises(RuleViolation) as info:
        visits.start()
    assert info.value.field == "端末"
    clock.advance(seconds=IDLE_TIMEOUT.total_seconds() + 1)
    visits.start()  # the idle ones were swept


def test_the_csrf_token_is_bound_to_the_visit() -> None:
    assert csrf_for("a") == csrf_for("a") and csrf_for("a") != csrf_for("b")
    assert len(csrf_for("a")) == 64
