"""J-LIS's reading of its national copy: which 住民票コード it holds, and code-change chains."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.linkage.hub.national import first_code, is_known, known_codes, person_codes
from jlis.masters import load_geography

from ...juki.factories import CHIYODA, World
from .conftest import load_national, resident_codes


def test_known_codes_and_chains(factory: sessionmaker[Session], clock: FixedClock) -> None:
    world = World(factory, clock, load_geography())
    view = world.person(CHIYODA)
    world.drain()
    with world.register(CHIYODA) as reg:
        changed = reg.change_resident_code(view.id)
    clock.advance(seconds=1)
    world.drain()
    plain, stranger = resident_codes(2, seed=61)
    load_national(factory, clock, [plain])
    with factory() as s:
        known = known_codes(s, [view.resident_code, changed.resident_code, plain, stranger])
        assert known == {view.resident_code: True, changed.resident_code: True, plain: False}
        assert is_known(s, view.resident_code) and is_known(s, plain) and not is_known(s, stranger)
        assert person_codes(s, changed.resident_code) == {view.resident_code, changed.resident_code}
        assert person_codes(s, plain) == {plain}


def test_first_code_of_a_chain(factory: sessionmaker[Session], clock: FixedClock) -> None:
    world = World(factory, clock, load_geography())
    view = world.person(CHIYODA)
    world.drain()
    codes = [view.resident_code]
    for _ in range(2):
        clock.advance(days=1)
        with world.register(CHIYODA) as reg:
            codes.append(reg.change_resident_code(view.id).resident_code)
        world.drain()
    with factory() as s:
        assert person_codes(s, codes[1]) == set(codes)
        assert first_code(s, set(codes)) == codes[0]
        stranger = resident_codes(1, seed=62)[0]
        assert first_code(s, {stranger}) == stranger  # not in the copy: itself
