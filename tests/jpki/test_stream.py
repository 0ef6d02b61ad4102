"""JPKI's handler of the national change stream: which record revokes which certificate, once, and
the whole path from a counter change through the relay."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki import holder as holder_mod
from jlis.jpki.holder import HolderInfo
from jlis.jpki.revocation import REVOCATION_CHAIN, Reason
from jlis.jpki.stream import CertFacts, JpkiStreamNode, decide, differs
from jlis.jpki.tables import AUTH, GOOD, PHONE, REVOKED, SIGN
from jlis.juki import build_relay
from jlis.juki.errors import MessageRefused
from jlis.masters import load_geography
from jlis.messaging import Message
from jlis.registry import PersonName, Placement
from jlis.registry.events import TOPIC_IDENTITY, IdentityRecord
from jlis.registry.models import ChangeReason

from ..juki.factories import CHIYODA, World
from .revocation_fixtures import Pki, holder

UTC = dt.UTC


@pytest.fixture
def pki(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[Pki]:
    with Pki.start(factory, clock, tmp_path) as p:
        yield p


def record_for(h: HolderInfo, reason: ChangeReason, at: dt.datetime, **changes: object) -> IdentityRecord:
    base = IdentityRecord(
        resident_code=h.resident_code,
        my_number="123456789018",
        lg_code=h.lg_code,
        family_name=h.family_name,
        given_name=h.given_name,
        family_kana="ヤマダ",
        given_kana="タロウ",
        alias=None,
        former_surname=None,
        birth_date=h.birth_date,
        sex=h.sex,
        address=h.address,
        status="active",
        reason=reason,
        change_date=at.date(),
        recorded_at=at,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def sign_facts(h: HolderInfo, issued_at: dt.datetime) -> CertFacts:
    return CertFacts(SIGN, issued_at, holder_mod.san_values(h))


T0 = dt.datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
LATER = T0 + dt.timedelta(hours=1)


# ----------------------------------------------------------------------------------- pure decisions


@pytest.mark.parametrize(
    ("reason", "changes", "sign", "auth"),
    [
        (ChangeReason.INITIAL, {}, None, None),
        (ChangeReason.NAME_CHANGE, {"family_kana": "ヤマタ"}, None, None),  # kana only: not 基本4情報
        (ChangeReason.NAME_CHANGE, {"family_name": "佐藤"}, Reason.AFFILIATION_CHANGED, None),
        (ChangeReason.RELOCATION, {"address": "東京都千代田区丸の内1丁目"}, Reason.AFFILIATION_CHANGED, None),
        (ChangeReason.CORRECTION, {"birth_date": dt.date(1980, 4, 2)}, Reason.AFFILIATION_CHANGED, None),
        (ChangeReason.CORRECTION, {"sex": "female"}, Reason.AFFILIATION_CHANGED, None),
        (ChangeReason.CODE_CHANGE, {"resident_code": "99999999999"}, None, None),  # the card helper's
        (ChangeReason.MOVE_OUT, {"status": "moving_out"}, Reason.AFFILIATION_CHANGED, None),
        (ChangeReason.MOVE_ABROAD, {"status": "removed"}, Reason.CESSATION_OF_OPERATION, None),
        (
            ChangeReason.DEATH,
            {"status": "removed"},
            Reason.CESSATION_OF_OPERATION,
            Reason.CESSATION_OF_OPERATION,
        ),
        (ChangeReason.MOVE_IN, {}, None, None),  # moved back in with the same data: nothing changed
    ],
)
def test_decide(
    reason: ChangeReason, changes: dict[str, object], sign: Reason | None, auth: Reason | None
) -> None:
    h = holder()
    record = record_for(h, reason, LATER, **changes)
    assert decide(record, sign_facts(h, T0)) is sign
    assert decide(record, CertFacts(AUTH, T0, {})) is auth


def test_a_record_older_than_the_certificate_revokes_nothing() -> None:
    h = holder()
    record = record_for(h, ChangeReason.DEATH, T0, status="removed")
    assert decide(record, sign_facts(h, LATER)) is None
    assert decide(record, sign_facts(h, T0)) is Reason.CESSATION_OF_OPERATION  # the same instant counts


def test_comparison_uses_the_certificates_own_rendering() -> None:
    # 髙 is outside JIS X 0208: the certificate carries a substitute and a map; the register keeps 髙.
    h = holder(family="髙橋")
    san = holder_mod.san_values(h)
    assert san[holder_mod.OID_NAME] != h.name
    assert not differs(record_for(h, ChangeReason.CORRECTION, LATER), san)
    assert differs(record_for(h, ChangeReason.CORRECTION, LATER, family_name="高田"), san)


def test_a_record_that_cannot_be_put_in_a_certificate_is_a_change() -> None:
    h = holder()
    assert differs(
        record_for(h, ChangeReason.RELOCATION, LATER, address="長" * 201), holder_mod.san_values(h)
    )
    assert not differs(record_for(h, ChangeReason.RELOCATION, LATER), {})


# ----------------------------------------------------------------------------------- the handler


def _message(record: IdentityRecord, message_id: str, source: str = "national") -> Message:
    return Message(message_id, source, "jpki", TOPIC_IDENTITY, record.resident_code, record.to_payload())


def _apply(pki: Pki, *messages: Message) -> None:
    with transaction(pki.factory) as s:
        JpkiStreamNode(pki.clock).apply_groups(s, [("jpki", list(messages))])


def test_a_name_change_revokes_the_signing_certificates_once(pki: Pki) -> None:
    h = holder()
    sign, auth = pki.card(h, card_id="card-1")
    phone_sign = pki.issue(SIGN, h, card_id="card-1", holder_kind=PHONE)
    other_sign, _ = pki.card(holder(), card_id="card-2")
    pki.clock.advance(minutes=5)
    record = record_for(h, ChangeReason.NAME_CHANGE, pki.clock.now(), family_name="佐藤")
    _apply(pki, _message(record, "m-1"))
    _apply(pki, _message(record, "m-1"))  # redelivered
    _apply(pki, _message(dataclasses.replace(record, address="東京都港区1"), "m-2"))  # a later change
    assert pki.row(sign.id).status == REVOKED and pki.row(phone_sign.id).status == REVOKED
    assert (pki.row(sign.id).revocation_reason, pki.row(sign.id).revocation_cause) == (
        "affiliationChanged",
        "identity:m-1",
    )
    assert pki.row(auth.id).status == GOOD and pki.row(other_sign.id).status == GOOD
    with pki.factory() as s:
        entries = AuditLog(REVOCATION_CHAIN).entries(s)
    assert sorted(e.details["serial"] for e in entries) == sorted([sign.serial, phone_sign.serial])
    assert {e.actor for e in entries} == {"jpki-stream"}


def test_a_death_revokes_both_certificates(pki: Pki) -> None:
    h = holder()
    sign, auth = pki.card(h)
    pki.clock.advance(minutes=5)
    _apply(pki, _message(record_for(h, ChangeReason.DEATH, pki.clock.now(), status="removed"), "m-9"))
    assert {pki.row(sign.id).status, pki.row(auth.id).status} == {REVOKED}
    assert pki.row(auth.id).revocation_reason == "cessationOfOperation"


def test_an_initial_load_revokes_nothing(pki: Pki) -> None:
    h = holder()
    sign, auth = pki.card(h)
    pki.clock.advance(minutes=5)
    _apply(pki, _message(record_for(h, ChangeReason.INITIAL, pki.clock.now()), "m-0"))
    assert {pki.row(sign.id).status, pki.row(auth.id).status} == {GOOD}


def test_records_of_people_without_certificates_are_ignored(pki: Pki) -> None:
    _apply(pki, _message(record_for(holder(), ChangeReason.DEATH, pki.clock.now()), "m-x"))
    with pki.factory() as s:
        assert AuditLog(REVOCATION_CHAIN).entries(s) == []


def test_messages_from_elsewhere_are_refused(pki: Pki) -> None:
    record = record_for(holder(), ChangeReason.DEATH, pki.clock.now())
    with pytest.raises(MessageRefused):
        _apply(pki, _message(record, "m-1", source="pref:13"))
    bad = Message("m-2", "national", "jpki", "fuhyo.address", "k", {})
    with pytest.raises(MessageRefused):
        _apply(pki, bad)


# ----------------------------------------------------------------------------------- end to end


def test_a_counter_change_reaches_jpki_through_the_relay(pki: Pki) -> None:
    world = World(pki.factory, pki.clock, load_geography())
    relay = build_relay(
        pki.factory,
        pki.clock,
        world.geo,
        subscribers=["jpki"],
        extra_handlers={"jpki": JpkiStreamNode(pki.clock)},
    )
    mover = world.person(CHIYODA, family="山田", given="太郎")
    stayer = world.person(CHIYODA, family="鈴木", given="花子", family_kana="スズキ", given_kana="ハナコ")
    relay.drain()
    pki.clock.advance(minutes=1)
    m_sign, m_auth = pki.card(holder_mod.from_resident(mover), card_id="mover")
    s_sign, s_auth = pki.card(holder_mod.from_resident(stayer), card_id="stayer")
    pki.clock.advance(minutes=1)
    with world.register(CHIYODA) as reg:
        reg.record_relocation(
            mover.id, Placement(world.town(CHIYODA, 1), "2番2号"), moved_on=pki.clock.today()
        )
        # furigana only: the name in the certificate stays true
        reg.record_name_change(
            stayer.id,
            PersonName("鈴木", "花子", "スズキ", "ハナコー"),
            changed_on=pki.clock.today(),
            cause="振り仮名の訂正",
        )
    relay.drain()
    assert (pki.row(m_sign.id).status, pki.row(m_auth.id).status) == (REVOKED, GOOD)
    assert (pki.row(s_sign.id).status, pki.row(s_auth.id).status) == (GOOD, GOOD)
    assert relay.drain() == 0
