from __future__ import annotations

import pytest

from jlis.audit import AuditLog
from jlis.bcl.certificate import ATTESTATION, damage_certificate_content, issuable_disasters, issuer_title
from jlis.bcl.identity import CardHolder
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, RuleViolation
from jlis.kiosk.content import CertificateContent, CertificateKind

from .conftest import AGENCY, CHIYODA, OPERATOR, SHINJUKU, BclWorld, geography, staff


def holder_of(resident_code: str) -> CardHolder:
    return CardHolder(resident_code, CHIYODA, "5e1a1", "card-9")


def approved_household(world: BclWorld) -> tuple[str, list[str], str]:
    """A household of two listed for a disaster, its dwelling surveyed 大規模半壊 and the head's
    application approved; and a neighbour who has not applied."""
    head = world.person(CHIYODA, banchi="1番1号")
    wife = world.person(
        CHIYODA, household_id=head.household_id, relationship="妻", given="花子", given_kana="ハナコ"
    )
    neighbour = world.person(CHIYODA, banchi="2番2号", given="次郎", given_kana="ジロウ")
    did = world.declare(CHIYODA)
    with world.disasters() as svc:
        svc.build_victim_register(did, CHIYODA)
        dwellings = {d.address: d.id for d in svc.dwellings(did, CHIYODA)}
        svc.record_survey(dwellings[head.address.text], damage_ratio=45, surveyed_on=world.clock.today())
        app = svc.apply_at_counter(did, CHIYODA, head.resident_code)
        svc.decide(app.id, approve=True)
    return did, [head.resident_code, wife.resident_code], neighbour.resident_code


def content(world: BclWorld, caller: object, resident_code: str, **kw: object) -> CertificateContent:
    with transaction(world.factory) as s:
        return damage_certificate_content(
            s,
            world.clock,
            world.geo,
            caller=caller,  # type: ignore[arg-type]
            lg_code=kw.pop("lg_code", CHIYODA),  # type: ignore[arg-type]
            resident_code=resident_code,
            request_id=kw.pop("request_id", "req-0001"),  # type: ignore[arg-type]
            certificate_number=kw.pop("certificate_number", "R-2026-000001"),  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )


def test_the_certificate_of_an_approved_application(bcl_world: BclWorld) -> None:
    did, (head, wife), _ = approved_household(bcl_world)
    c = content(bcl_world, holder_of(head), head, disaster_id=did)
    assert c.kind is CertificateKind.DAMAGE and c.title == "罹災証明書"
    assert c.lg_code == CHIYODA and c.issuer_title == "東京都千代田区長"
    assert c.request_id == "req-0001" and c.certificate_number == "R-2026-000001"
    assert c.issued_on == bcl_world.clock.today() and c.attestation == ATTESTATION
    sections = {s.heading: {r.label: r.value for r in s.rows} for s in c.sections}
    assert sections["被災者"]["氏名"] == c.subject_name
    assert sections["被害の状況"]["住家の被害の程度"] == "大規模半壊"
    assert sections["被害の状況"]["受付番号"] == f"{did}-000001"
    assert sections["災害"]["災害名"] == "令和8年11月豪雨" and sections["災害"]["災害の原因"] == "豪雨"
    assert set(sections["世帯構成員"]) == {"世帯主", "妻"}
    # the household's other member gets it too, under her own name
    other = content(bcl_world, holder_of(wife), wife)
    assert other.subject_name == sections["世帯構成員"]["妻"] != c.subject_name
    # staff at the counter
    assert content(bcl_world, staff(CHIYODA), head).subject_name == c.subject_name
    # audited: one entry per person printed, with the request id
    with bcl_world.factory() as s:
        printed = [e for e in AuditLog("access").entries(s) if e.details.get("purpose") == "罹災証明書"]
    assert {e.subject for e in printed} == {head, wife} and len(printed) == 6
    assert {e.details["request_id"] for e in printed} == {"req-0001"}


def test_no_certificate_without_an_approved_application(bcl_world: BclWorld) -> None:
    _did, (head, _), neighbour = approved_household(bcl_world)
    with pytest.raises(RuleViolation) as err:
        content(bcl_world, holder_of(neighbour), neighbour)
    assert err.value.field == "罹災証明書"
    stranger = bcl_world.person(CHIYODA, banchi="8番8号", days_ago=1)
    with pytest.raises(RuleViolation) as err:
        content(bcl_world, holder_of(stranger.resident_code), stranger.resident_code)
    assert err.value.field == "被災者台帳"
    with pytest.raises(RuleViolation):  # listed by Chiyoda, not by Shinjuku
        content(bcl_world, staff(SHINJUKU), head, lg_code=SHINJUKU)


def test_only_the_person_or_their_municipality_gets_it(bcl_world: BclWorld) -> None:
    _, (head, wife), _ = approved_household(bcl_world)
    with pytest.raises(Forbidden):
        content(bcl_world, holder_of(wife), head)  # another person's card
    with pytest.raises(Forbidden):
        content(bcl_world, staff(SHINJUKU), head)
    with pytest.raises(Forbidden):
        content(bcl_world, AGENCY, head)
    with pytest.raises(InvalidInput):
        content(bcl_world, holder_of(head), head, request_id="")
    with pytest.raises(InvalidInput):
        content(bcl_world, holder_of(head), head, certificate_number="x" * 65)
    with bcl_world.factory() as s:
        assert [e for e in AuditLog("access").entries(s) if e.details.get("purpose") == "罹災証明書"] == []


def test_the_issuance_center_gets_it_for_the_card_holder_it_authenticated(bcl_world: BclWorld) -> None:
    """The 証明書交付センター acts as J-LIS (it has checked the card); it gets the same certificate,
    and the read is audited under its name."""
    _, (head, _wife), _ = approved_household(bcl_world)
    c = content(bcl_world, OPERATOR, head)
    assert c.kind is CertificateKind.DAMAGE
    with bcl_world.factory() as s:
        reads = [e for e in AuditLog("access").entries(s) if e.details.get("purpose") == "罹災証明書"]
    assert reads and {e.actor for e in reads} == {OPERATOR.actor}


def test_a_ward_of_a_designated_city_issues_in_the_mayors_name() -> None:
    geo = geography()
    assert issuer_title(geo, "141011") == "神奈川県横浜市長"  # 横浜市鶴見区
    assert issuer_title(geo, CHIYODA) == "東京都千代田区長"  # a special ward has its own 区長


def test_the_kiosk_menu_lists_the_disasters_with_an_approved_application(bcl_world: BclWorld) -> None:
    did, (head, wife), neighbour = approved_household(bcl_world)
    with bcl_world.factory() as s:
        assert issuable_disasters(s, caller=holder_of(wife), lg_code=CHIYODA, resident_code=wife) == [
            (did, "令和8年11月豪雨")
        ]
        assert (
            issuable_disasters(s, caller=holder_of(neighbour), lg_code=CHIYODA, resident_code=neighbour) == []
        )
        with pytest.raises(Forbidden):
            issuable_disasters(s, caller=holder_of(wife), lg_code=CHIYODA, resident_code=head)
