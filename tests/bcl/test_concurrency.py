"""Rules that must hold when requests race: one shelter at a time per person, one open 罹災証明書
application per person, running numbers that do not clash. Several threads, each with its own
session, act at once; the outcome must be the same as one after the other."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import func, select

from jlis.bcl.disasters import DisasterService, ResidentDesk
from jlis.bcl.identity import CardHolder
from jlis.bcl.shelters import Shelters
from jlis.bcl.tables import DamageApplicationRow, ShelterStayRow
from jlis.db import transaction
from jlis.errors import RuleViolation

from .conftest import CHIYODA, BclPki, BclWorld, staff

THREADS = 6


def race(n: int, work: Callable[[int], object]) -> tuple[int, int, list[BaseException]]:
    """Run ``work(i)`` in ``n`` threads released together: (successes, refusals, other errors)."""
    barrier = threading.Barrier(n)
    ok, refused, errors = [0], [0], []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
            with lock:
                ok[0] += 1
        except RuleViolation:
            with lock:
                refused[0] += 1
        except BaseException as exc:  # reported by the test
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return ok[0], refused[0], errors


def test_one_card_scanned_at_several_shelters_at_once(bcl_world: BclWorld, bcl_pki: BclPki) -> None:
    person = bcl_world.person(CHIYODA)
    cert = bcl_pki.auth_certificate(person)
    ids = []
    with transaction(bcl_world.factory) as s:
        for i in range(THREADS):
            ids.append(
                Shelters(s, bcl_world.clock, staff())
                .open(CHIYODA, name=f"S{i}", address="千代田区", capacity=9)
                .id
            )

    def check_in(i: int) -> object:
        with transaction(bcl_world.factory) as s:
            return Shelters(s, bcl_world.clock, staff()).check_in(ids[i], cert.serial)

    ok, refused, errors = race(THREADS, check_in)
    assert errors == [] and (ok, refused) == (1, THREADS - 1)
    with bcl_world.factory() as s:
        assert s.scalar(select(func.count()).select_from(ShelterStayRow)) == 1


def test_simultaneous_applications_one_per_person_and_distinct_numbers(bcl_world: BclWorld) -> None:
    people = [bcl_world.person(CHIYODA, banchi=f"{i}番1号") for i in range(THREADS // 2)]
    did = bcl_world.declare(CHIYODA)
    with transaction(bcl_world.factory) as s:
        DisasterService(s, bcl_world.clock, bcl_world.geo, staff()).build_victim_register(did, CHIYODA)

    def apply(i: int) -> object:  # every person applies twice at the same moment
        person = people[i // 2]
        with transaction(bcl_world.factory) as s:
            holder = CardHolder(person.resident_code, CHIYODA, f"{i:x}", "card")
            return ResidentDesk(s, bcl_world.clock, holder).apply(did)

    ok, refused, errors = race(THREADS, apply)
    assert errors == []
    with bcl_world.factory() as s:
        rows = s.scalars(select(DamageApplicationRow)).all()
    assert (ok, refused) == (THREADS // 2, THREADS // 2) and ok == len(rows)
    assert len({r.resident_code for r in rows}) == len(rows)  # one per person
    assert sorted(r.id for r in rows) == [f"{did}-{n:06d}" for n in range(1, len(rows) + 1)]
