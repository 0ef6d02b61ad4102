"""Replicas from the register: 住民票関係情報 kept in step with the 住民票, and the deterministic
synthetic replicas of the demo population."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from sqlalchemy import func, select

from jlis.audit import AuditLog
from jlis.db import transaction
from jlis.juki.network import build_relay
from jlis.linkage.hub.codes import acquire_code
from jlis.linkage.hub.members import ensure_standard_members, get_member
from jlis.linkage.middle.models import synthetic_medical_insurance, synthetic_pension, synthetic_replicas
from jlis.linkage.middle.service import MiddleServer
from jlis.linkage.middle.sync import (
    person_facts,
    prepare_demo_replicas,
    read_register,
    seed_replicas,
    sync_juminhyo,
)
from jlis.linkage.middle.tables import ReplicaRow

from .conftest import CHIYODA, LG, SECRET, World


def test_sync_copies_the_register_and_is_idempotent(populated: World) -> None:
    people = populated.residents()
    with populated.registry() as reg:
        written = sync_juminhyo(reg.s, populated.clock, reg)
    assert written == len(people) == 40
    with populated.registry() as reg:
        assert sync_juminhyo(reg.s, populated.clock, reg) == 0
    with populated.registry() as reg:
        view = reg.find_by_code(people[0])
        household = [v for v in read_register(reg) if v.household_id == view.household_id]
    with populated.middle() as m:
        data = m.replica(m.local_id_for(people[0]), "juminhyo").data
    head = next(v for v in household if v.is_head)
    assert data["name"] == view.name.full and data["name_kana"] == view.name.full_kana
    assert data["birth_date"] == view.birth_date.isoformat() and data["sex"] == view.sex.value
    assert data["address"] == view.address.text and data["status"] == "resident"
    assert data["householder_name"] == head.name.full and data["household_size"] == len(household)
    assert data["relationship"] == view.relationship


def test_the_register_reads_are_audited_by_the_register(populated: World) -> None:
    with populated.registry(staff="middle-sync") as reg:
        sync_juminhyo(reg.s, populated.clock, reg)
    with populated.factory() as s:
        reads = [e for e in AuditLog("access").entries(s) if e.actor == "middle-sync"]
    assert len(reads) == 40 and {e.details["purpose"] for e in reads} == {"照会"}


def test_a_death_reaches_the_replica(populated: World) -> None:
    people = populated.residents()
    with populated.registry() as reg:
        sync_juminhyo(reg.s, populated.clock, reg)
        view = reg.find_by_code(people[3])
    populated.clock.advance(days=1)
    with populated.registry() as reg:
        reg.record_death(view.id, died_on=populated.clock.today() - dt.timedelta(days=1))
    with populated.registry() as reg:
        written = sync_juminhyo(reg.s, populated.clock, reg)
    # the deceased, and the household members whose 世帯員数 (and maybe 世帯主) changed
    household = sum(1 for v in _views(populated) if v.household_id == view.household_id)
    assert written == 1 + household
    with populated.middle() as m:
        lid = m.local_id_for(people[3])
        replica = m.replica(lid, "juminhyo")
    assert replica.version == 2 and replica.data["status"] == "deceased"
    assert "household_size" not in replica.data


def _views(world: World) -> list:  # type: ignore[type-arg]
    with world.registry() as reg:
        return [v for v in read_register(reg)]


def test_seed_is_deterministic_and_fits_the_schemas(populated: World) -> None:
    with populated.registry() as reg:
        report = seed_replicas(reg.s, populated.clock, reg, seed=11)
    assert report.residents == 40
    assert report.written.get("local_tax", 0) > 0 and report.written.get("nhi", 0) > 0
    total = sum(report.written.values())
    with populated.factory() as s:
        assert s.execute(select(func.count()).select_from(ReplicaRow)).scalar_one() == total
    with populated.registry() as reg:
        again = seed_replicas(reg.s, populated.clock, reg, seed=11)
    assert again.written == {}
    # each person's replicas are the pure generator's, from seed and 住民票コード
    views = _views(populated)
    households: dict[int, list] = {}  # type: ignore[type-arg]
    for v in views:
        households.setdefault(v.household_id, []).append(v)
    with populated.middle() as m:
        agency = MiddleServer(m.s, populated.clock, "nenkin", actor="staff-test")
        kyokai = MiddleServer(m.s, populated.clock, "kyokai", actor="staff-test")
        for view in views[:15]:
            facts = person_facts(view, households[view.household_id])
            rng = random.Random(f"11:{view.resident_code}")
            expected = synthetic_replicas(facts, rng, populated.clock.today())
            lid = m.local_id_for(view.resident_code)
            got = {r.category: dict(r.data) for r in m.replicas(lid)}
            assert got == {c: m.schemas[c].validate(d) for c, d in expected.items()}
            pension = synthetic_pension(facts, rng, populated.clock.today())
            alid = agency.find_local_id(view.resident_code)
            if pension is None:
                assert alid is None or agency.current_version(alid, "pension") == 0
            else:
                assert alid is not None
                assert agency.replica(alid, "pension").data == agency.schemas["pension"].validate(pension)
            medical = synthetic_medical_insurance(
                facts, rng, populated.clock.today(), in_nhi="nhi" in expected
            )
            klid = kyokai.find_local_id(view.resident_code)
            if medical is None:
                assert klid is None
            else:
                assert klid is not None
                assert kyokai.replica(klid, "medical_insurance").data == kyokai.schemas[
                    "medical_insurance"
                ].validate(medical)
    assert report.written.get("medical_insurance", 0) > 0 and report.written.get("pension", 0) > 0


def test_another_seed_gives_new_versions(populated: World) -> None:
    with populated.registry() as reg:
        seed_replicas(reg.s, populated.clock, reg, seed=1, agencies=False)
    with populated.registry() as reg:
        report = seed_replicas(reg.s, populated.clock, reg, seed=2, agencies=False)
    assert report.written.get("local_tax", 0) > 0
    assert "pension" not in report.written and "medical_insurance" not in report.written
    with populated.middle() as m:
        assert m.member_id == LG


def test_a_resident_code_change_keeps_the_local_id_and_the_code(populated: World) -> None:
    populated.register_members()
    people = populated.residents()
    with populated.registry() as reg:
        sync_juminhyo(reg.s, populated.clock, reg)
        view = reg.find_by_code(people[5])
    with populated.middle() as m:
        lid = m.local_id_for(people[5])
        code = m.link(lid, secret=SECRET)
    with populated.registry() as reg:
        changed = reg.change_resident_code(view.id)
    assert changed.resident_code != people[5]
    # the national copy learns of the change (as the relay would deliver it)
    build_relay(populated.factory, populated.clock, populated.geo).drain()
    with populated.registry() as reg:
        assert sync_juminhyo(reg.s, populated.clock, reg) == 0  # the 住民票 items did not change
    with populated.middle() as m:
        assert m.find_local_id(changed.resident_code) == lid
        assert m.find_local_id(people[5]) is None
        assert m.link(lid, secret=SECRET) == code
        assert m.replica(lid, "juminhyo").version == 1
        # and J-LIS and the hub agree: the new 住民票コード gives the same 符号
        assert acquire_code(m.s, populated.clock, SECRET, get_member(m.s, LG), changed.resident_code) == code


def test_prepare_demo_replicas(populated: World, tmp_path: Path) -> None:
    from ...web.support import make_container

    container = make_container(populated.factory, populated.clock, tmp_path)
    with transaction(populated.factory) as s:
        ensure_standard_members(
            s, populated.clock, key_dir=container.settings.resolved_key_dir, lg_codes=[CHIYODA]
        )
    steps: list[str] = []
    report = prepare_demo_replicas(container, [CHIYODA], seed=5, progress=steps.append)
    assert report.juminhyo == 40 and report.seeded["local_tax"] > 0
    assert report.linked[LG] == 40
    assert report.linked["nenkin"] == report.seeded["pension"]
    assert report.linked["kyokai"] == report.seeded["medical_insurance"]
    assert steps[0] == "lg-131016: replicas" and len(steps) == 4
    again = prepare_demo_replicas(container, [CHIYODA], seed=5)
    assert again.juminhyo == 0 and again.seeded == {} and set(again.linked.values()) == {0}
