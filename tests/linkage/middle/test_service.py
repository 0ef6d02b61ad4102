"""The middle server on a database: 宛名番号, 符号, replicas and answers; code acquisition through
J-LIS and the hub; and that nothing it keeps for the network names a person by 住民票コード."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.audit.tables import AuditEntryRow
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.linkage.hub.codes import CODE_RE, acquire_code
from jlis.linkage.hub.members import get_member
from jlis.linkage.middle.errors import NoReplica, UnregisteredCode
from jlis.linkage.middle.service import middle_log
from jlis.linkage.middle.sync import link_all
from jlis.linkage.middle.tables import AddresseeRow, CodeLinkRow, ReplicaRow

from .conftest import LG, SECRET, SHINJUKU, World

TAX = {"tax_year": 2026, "total_income": 3_200_000, "tax_exempt": False, "income_levy": 190_000}
CODE_A = "A" * 26
CODE_B = "B" * 26


def count(world: World, table: Any, *where: Any) -> int:
    with world.factory() as s:
        return int(s.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def audit(world: World, member_id: str = LG) -> list[Any]:
    with world.factory() as s:
        return AuditLog(f"linkage.middle.{member_id}").entries(s)


def test_local_ids_are_numbered_once_per_person(populated: World) -> None:
    people = populated.residents()
    with populated.middle() as m:
        first = m.local_id_for(people[0])
        assert first == m.local_id_for(people[0]) == "131016000000001"
        many = m.local_ids_for(people[:5])
        assert many[people[0]] == first
        assert sorted(many.values()) == [f"1310160000000{n:02d}" for n in range(1, 6)]
    with populated.middle("nenkin") as agency:
        assert agency.local_id_for(people[0]) == "000000000000001"  # each member numbers its own
    with populated.middle() as m:
        assert m.local_id_for(people[0]) == first and m.resident_code_of(first) == people[0]
    assert count(populated, AddresseeRow) == 6


def test_a_bad_resident_code_changes_nothing(populated: World) -> None:
    people = populated.residents()
    bad = people[0][:10] + str((int(people[0][10]) + 1) % 10)
    with pytest.raises(InvalidInput) as err, populated.middle() as m:
        m.local_ids_for([people[1], bad])
    assert err.value.field == "住民票コード"
    assert count(populated, AddresseeRow) == 0


def test_a_code_change_keeps_the_local_id(populated: World) -> None:
    old, new, other = populated.residents()[:3]
    with populated.middle() as m:
        lid = m.local_id_for(old)
        assert m.record_code_change(old, new) == lid
        assert m.record_code_change(old, new) == lid  # idempotent
        assert m.local_id_for(new) == lid
        assert m.record_code_change(other, "12345678903") is None  # unknown here: nothing to do
        other_lid = m.local_id_for(other)
        with pytest.raises(RuleViolation):
            m.record_code_change(other, new)
        assert m.local_id_for(other) == other_lid


def test_store_code(populated: World) -> None:
    a, b = populated.residents()[:2]
    with populated.middle() as m:
        la, lb = m.local_id_for(a), m.local_id_for(b)
        m.store_code(la, CODE_A)
        m.store_code(la, CODE_A)  # the same pair again: nothing to do
        assert m.code_for(la) == CODE_A and m.code_for(lb) is None
        with pytest.raises(RuleViolation, match="already has another"):
            m.store_code(la, CODE_B)
        with pytest.raises(RuleViolation, match="another 宛名番号"):
            m.store_code(lb, CODE_A)
        with pytest.raises(NotFound):
            m.store_code("131016999999999", CODE_B)
        with pytest.raises(InvalidInput):
            m.store_code(lb, "")
    assert count(populated, CodeLinkRow) == 1


def test_replicas_are_versioned_and_validated(populated: World) -> None:
    person = populated.residents()[0]
    with populated.middle() as m:
        lid = m.local_id_for(person)
        assert m.register_replica(lid, "local_tax", TAX) == 1
        assert m.register_replica(lid, "local_tax", dict(TAX)) == 1  # unchanged: no new version
        populated.clock.advance(days=1)
        assert m.register_replica(lid, "local_tax", TAX | {"total_income": 3_300_000}) == 2
        assert m.current_version(lid, "local_tax") == 2 and m.current_version(lid, "nhi") == 0
    with pytest.raises(InvalidInput) as err, populated.middle() as m:
        m.register_replica(lid, "local_tax", TAX | {"total_income": -1})
    assert err.value.field == "items.total_income"
    with pytest.raises(RuleViolation) as refused, populated.middle() as m:
        m.register_replica(lid, "pension", {"pension_kind": "old_age_basic", "receiving": True})
    assert refused.value.field == "category"
    with pytest.raises(NotFound), populated.middle() as m:
        m.register_replica("131016000000099", "local_tax", TAX)
    with pytest.raises(InvalidInput) as unknown, populated.middle() as m:
        m.register_replica(lid, "passport", {"x": 1})
    assert unknown.value.field == "category"
    assert count(populated, ReplicaRow) == 2
    with populated.middle() as m:
        versions = m.history(lid, "local_tax")
        assert [(r.version, r.data["total_income"]) for r in versions] == [(1, 3_200_000), (2, 3_300_000)]
        assert versions[1].registered_at > versions[0].registered_at
        assert versions[0].registered_by == "staff-test"


def test_an_agency_keeps_its_own_categories(populated: World) -> None:
    person = populated.residents()[0]
    with populated.middle("nenkin") as agency:
        lid = agency.local_id_for(person)
        assert (
            agency.register_replica(lid, "pension", {"pension_kind": "old_age_basic", "receiving": True}) == 1
        )
        assert [s.id for s in agency.categories()] == ["pension"]
        with pytest.raises(RuleViolation):
            agency.register_replica(lid, "local_tax", TAX)
    with populated.middle() as m:
        assert "pension" not in [s.id for s in m.categories()]


def test_answer_gives_the_asked_items_and_is_audited(populated: World) -> None:
    person = populated.residents()[0]
    with populated.middle() as m:
        lid = m.local_id_for(person)
        m.store_code(lid, CODE_A)
        m.register_replica(lid, "local_tax", TAX)
    with populated.middle() as m:
        answer = m.answer(CODE_A, "local_tax", ["total_income", "tax_exempt", "dependents"])
    assert answer == {"total_income": 3_200_000, "tax_exempt": False, "dependents": None}
    (entry,) = audit(populated)
    assert entry.action == "answer" and entry.subject == lid
    assert entry.details["items"] == ["total_income", "tax_exempt", "dependents"]
    assert entry.details["version"] == 1
    # the exchange hub, whose provider record covers the act, may skip the second record
    with populated.middle(audit_answers=False) as m:
        assert m.answer(CODE_A, "local_tax", ["tax_year"]) == {"tax_year": 2026}
    assert len(audit(populated)) == 1


def test_answer_refusals_disclose_nothing(populated: World) -> None:
    a, b = populated.residents()[:2]
    with populated.middle() as m:
        la, lb = m.local_id_for(a), m.local_id_for(b)
        m.store_code(la, CODE_A)
        m.store_code(lb, CODE_B)
        m.register_replica(la, "local_tax", TAX)
    cases: list[tuple[str, str, Any, type[Exception], str]] = [
        ("C" * 26, "local_tax", ["tax_year"], UnregisteredCode, "符号"),
        (CODE_B, "local_tax", ["tax_year"], NoReplica, "category"),
        (CODE_A, "local_tax", ["my_number"], InvalidInput, "items"),
        (CODE_A, "local_tax", [], InvalidInput, "items"),
        (CODE_A, "pension", ["receiving"], RuleViolation, "category"),
        (CODE_A, "unknown", ["x"], InvalidInput, "category"),
    ]
    for code, category, items, error, field in cases:
        with pytest.raises(error) as err, populated.middle() as m:
            m.answer(code, category, items)
        assert err.value.field == field  # type: ignore[attr-defined]
        text = json.dumps(err.value.to_dict(), ensure_ascii=False)  # type: ignore[attr-defined]
        assert code not in text and la not in text and lb not in text and a not in text
    assert audit(populated) == []  # a refused answer reads nothing
    # the code of another member is not this member's: the same refusal as an unknown one
    with populated.middle("nenkin") as agency, pytest.raises(UnregisteredCode):
        agency.answer(CODE_A, "pension", ["receiving"])


def test_staff_reads_are_audited(populated: World) -> None:
    person = populated.residents()[0]
    with populated.middle() as m:
        lid = m.local_id_for(person)
        m.register_replica(lid, "local_tax", TAX)
        m.register_replica(lid, "nhi", {"insured": True, "copayment": "30"})
    with populated.middle() as m:
        assert [r.category for r in m.replicas(lid)] == ["local_tax", "nhi"]  # the schema file's order
        assert m.replica(lid, "nhi").data == {"insured": True, "copayment": "30"}
        with pytest.raises(NoReplica):
            m.replica(lid, "ltc")
    entries = audit(populated)
    assert [(e.action, e.subject, e.details["categories"]) for e in entries] == [
        ("read", lid, ["local_tax", "nhi"]),
        ("read", lid, ["nhi"]),
    ]


def test_link_acquires_through_jlis_and_the_hub_once(populated: World) -> None:
    populated.register_members()
    a, b = populated.residents()[:2]
    with populated.middle() as m:
        la = m.local_id_for(a)
        code = m.link(la, secret=SECRET)
        assert CODE_RE.match(code) and m.link(la, secret=SECRET) == code
        m.register_replica(la, "local_tax", TAX)
        # the hub gives the same code to the same member and person
        assert acquire_code(m.s, populated.clock, SECRET, get_member(m.s, LG), a) == code
    with populated.middle() as m:
        assert m.answer(code, "local_tax", ["total_income"]) == {"total_income": 3_200_000}
    # another municipality's code for the same person is not ours
    with populated.middle(f"lg-{SHINJUKU}") as other:
        their = other.link(other.local_id_for(a), secret=SECRET)
    assert their != code
    with pytest.raises(UnregisteredCode), populated.middle() as m:
        m.answer(their, "local_tax", ["total_income"])
    # a person J-LIS does not know gets no code, and nothing is stored
    with pytest.raises(NotFound), populated.middle() as m:
        m.link(m.local_id_for("12345678903"), secret=SECRET)
    with populated.middle() as m:
        assert m.code_for(m.local_id_for(b)) is None


def test_link_all_is_a_bulk_acquisition(populated: World) -> None:
    populated.register_members()
    people = populated.residents()
    with populated.middle() as m:
        ids = m.local_ids_for(people)
        first = m.link(ids[people[0]], secret=SECRET)
    seen: list[int] = []
    report: Any = link_all(populated.factory, populated.clock, SECRET, LG, progress=seen.append, batch=7)
    assert report.issued == len(people) - 1 and sum(seen) == len(people) - 1
    with populated.middle() as m:
        assert m.unlinked() == []
        assert m.code_for(ids[people[0]]) == first
        for person in people[:5]:
            assert m.code_for(ids[person]) == acquire_code(
                m.s, populated.clock, SECRET, get_member(m.s, LG), person
            )
    again: Any = link_all(populated.factory, populated.clock, SECRET, LG)
    assert again.issued == 0


def _texts(s: Session) -> list[str]:
    out: list[str] = []
    for table in (CodeLinkRow, ReplicaRow):
        for row in s.execute(select(table)).scalars():
            out.append(json.dumps({c.name: str(getattr(row, c.name)) for c in table.__table__.columns}))
    for entry in s.execute(
        select(AuditEntryRow).where(AuditEntryRow.chain.like("linkage.middle.%"))
    ).scalars():
        out.append(f"{entry.subject} {entry.details}")
    return out


def test_nothing_kept_for_the_network_holds_a_resident_code(populated: World) -> None:
    populated.register_members()
    people = populated.residents()[:6]
    with populated.middle() as m:
        for person in people:
            lid = m.local_id_for(person)
            code = m.link(lid, secret=SECRET)
            m.register_replica(lid, "local_tax", TAX)
            m.replica(lid, "local_tax")
            m.answer(code, "local_tax", ["tax_year"])
    with populated.factory() as s:
        texts = _texts(s)
        my_numbers = [str(n) for n in s.execute(select(func.count()).select_from(AddresseeRow)).scalars()]
    assert len(texts) > 12 and my_numbers == ["6"]
    for text in texts:
        for person in people:
            assert person not in text
    assert middle_log(LG).chain == "linkage.middle.lg-131016"


def test_answer_many_matches_answer_one_by_one(populated: World) -> None:
    people = populated.residents()[:5]
    codes = [chr(ord("A") + i) * 26 for i in range(5)]
    with populated.middle() as m:
        for i, (person, code) in enumerate(zip(people, codes, strict=True)):
            lid = m.local_id_for(person)
            m.store_code(lid, code)
            if i != 2:  # the third person has no replica
                m.register_replica(lid, "local_tax", TAX | {"total_income": 1000 * i})
        m.register_replica(m.local_id_for(people[0]), "local_tax", TAX | {"total_income": 5})  # version 2
    asked = [*codes, "Z" * 26, codes[0]]  # an unknown code and a repeat
    with populated.middle() as m:
        batch = m.answer_many(asked, "local_tax", ["total_income", "tax_exempt"])
    assert set(batch) == {codes[0], codes[1], codes[3], codes[4]}
    assert batch[codes[0]] == {"total_income": 5, "tax_exempt": False}
    with populated.middle(audit_answers=False) as m:
        for code in batch:
            assert m.answer(code, "local_tax", ["total_income", "tax_exempt"]) == batch[code]
    entries = audit(populated)
    assert len(entries) == 4 and {e.details["version"] for e in entries} == {1, 2}
    with pytest.raises(InvalidInput), populated.middle() as m:
        m.answer_many(codes, "local_tax", ["my_number"])
    with pytest.raises(RuleViolation), populated.middle() as m:
        m.answer_many(codes, "pension", ["receiving"])
    with populated.middle() as m:
        assert m.answer_many([], "local_tax", ["tax_year"]) == {}


def test_a_lost_race_for_a_version_is_refused_not_a_server_error(
    populated: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = populated.residents()[0]
    with populated.middle() as m:
        lid = m.local_id_for(person)
        m.register_replica(lid, "local_tax", TAX)
    # as if a concurrent writer had stored version 1 after this one read "no replica yet"
    monkeypatch.setattr(type(m), "_current", lambda self, lid, category: None)
    with pytest.raises(RuleViolation) as err, populated.middle() as m:
        m.register_replica(lid, "local_tax", TAX | {"total_income": 1})
    assert err.value.field == "version"
    monkeypatch.undo()
    with populated.middle() as m:
        assert [r.data["total_income"] for r in m.history(lid, "local_tax")] == [3_200_000]
