"""DV 支援措置 on the database: in force between its dates until lifted, kept per municipality."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound
from jlis.kiosk.issuer.dv import SupportMeasures

from .conftest import CENTER, CHIYODA, SHINJUKU, IssuerWorld, staff


def test_in_force_between_dates_until_lifted(world: IssuerWorld) -> None:
    a, b = world.person(), world.person(given="次郎", given_kana="ジロウ", banchi="2番2号")
    today = world.clock.today()
    with transaction(world.factory) as s:
        measure = SupportMeasures(s, world.clock, CHIYODA, staff()).start(a.resident_code)
    with transaction(world.factory) as s:
        dv = SupportMeasures(s, world.clock, CHIYODA, CENTER)
        assert dv.flagged([a.resident_code, b.resident_code], today) == {a.resident_code}
        assert dv.flagged([a.resident_code], today + dt.timedelta(days=366)) == {a.resident_code}
        assert dv.flagged([a.resident_code], today + dt.timedelta(days=367)) == set()
        assert dv.flagged([a.resident_code], today - dt.timedelta(days=1)) == set()
        assert (
            SupportMeasures(s, world.clock, SHINJUKU, staff(SHINJUKU)).flagged([a.resident_code], today)
            == set()
        )
    with transaction(world.factory) as s:
        SupportMeasures(s, world.clock, CHIYODA, staff()).lift(measure)
    with transaction(world.factory) as s:
        assert SupportMeasures(s, world.clock, CHIYODA, CENTER).flagged([a.resident_code], today) == set()
        with pytest.raises(NotFound):
            SupportMeasures(s, world.clock, CHIYODA, staff()).lift(measure)


def test_refusals(world: IssuerWorld) -> None:
    a = world.person()
    today = world.clock.today()
    with pytest.raises(Forbidden), transaction(world.factory) as s:
        SupportMeasures(s, world.clock, CHIYODA, CENTER).start(a.resident_code)
    with pytest.raises(Forbidden), transaction(world.factory) as s:
        SupportMeasures(s, world.clock, CHIYODA, staff(SHINJUKU)).flagged([a.resident_code], today)
    with pytest.raises(InvalidInput), transaction(world.factory) as s:
        SupportMeasures(s, world.clock, CHIYODA, staff()).start(a.resident_code, until=today)
    with transaction(world.factory) as s:
        measure = SupportMeasures(s, world.clock, CHIYODA, staff()).start(a.resident_code)
    with pytest.raises(NotFound), transaction(world.factory) as s:
        SupportMeasures(s, world.clock, SHINJUKU, staff(SHINJUKU)).lift(measure)
