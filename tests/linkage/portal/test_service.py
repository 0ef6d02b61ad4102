"""The portal's use cases on SQLite and PostgreSQL: sign-in with the card, identification through
J-LIS and the hub, the views, お知らせ, the online 転出届 and consents."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.audit import AuditLog
from jlis.card.chip.errors import WrongPin
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.linkage.hub.codes import Hub
from jlis.linkage.hub.errors import UnknownCode
from jlis.linkage.portal.service import SESSION_TTL

from ...card.conftest import staff
from .conftest import CHIYODA, SHINJUKU, SIGN_PASSWORD, TAX, PortalWorld


def test_sign_in_identifies_the_holder_by_the_portals_own_code(portal_world: PortalWorld) -> None:
    w = portal_world
    holder = w.holder()
    token, user = w.sign_in(holder)
    with w.factory() as s:
        again = w.portal(s).user_for(token)
    assert again == user
    # The portal's code is the hub's code of the portal member for this person: the nenkin code
    # translates to it, and it differs from the agency's.
    nenkin_code = w.code_of("nenkin", holder)
    with w.factory() as s:
        assert Hub(s, w.container.secret, w.clock).translate("nenkin", nenkin_code, "myna-portal") == (
            user.portal_code
        )
    assert nenkin_code != user.portal_code
    # A second sign-in finds the same person.
    _token2, user2 = w.sign_in(holder)
    assert user2.portal_code == user.portal_code and _token2 != token


def test_a_session_ends_after_its_lifetime_and_on_sign_out(portal_world: PortalWorld) -> None:
    w = portal_world
    holder = w.holder()
    token, _user = w.sign_in(holder)
    w.clock.advance(seconds=SESSION_TTL.total_seconds() + 1)
    with w.factory() as s:
        assert w.portal(s).user_for(token) is None
    token, _user = w.sign_in(holder)
    with w.factory() as s, s.begin():
        w.portal(s).sign_out(token)
    with w.factory() as s:
        assert w.portal(s).user_for(token) is None
        assert w.portal(s).user_for("x" * 300) is None
        assert w.portal(s).user_for(None) is None


def test_a_wrong_pin_signs_nobody_in_and_costs_a_try(portal_world: PortalWorld) -> None:
    w = portal_world
    holder = w.holder()
    with pytest.raises(WrongPin):
        w.sign_in(holder, pin="9999")
    assert holder.reader.retries("auth") == 2


def test_a_card_on_hold_is_refused(portal_world: PortalWorld) -> None:
    from jlis.jpki.rp.errors import CertificateRevoked

    w = portal_world
    holder = w.holder()
    from jlis.card.hotline import Caller, SuspensionReason

    with w.service() as svc:
        r = holder.resident
        caller = Caller(r.lg_code, r.name.family, r.name.given, r.birth_date, holder.card_id)
        svc.hotline.suspend(caller, SuspensionReason.LOST)
    with pytest.raises(CertificateRevoked):
        w.sign_in(holder)


def test_the_portal_keeps_no_resident_code_or_my_number(portal_world: PortalWorld) -> None:
    """Issue §8: outside J-LIS and the hub, nothing holds a 住民票コード or a 個人番号."""
    from jlis.linkage.portal.tables import PortalMoveOutRow, PortalNoticeRow, PortalSessionRow

    w = portal_world
    holder = w.holder()
    _token, user = w.sign_in(holder)
    nenkin, code = w.member("nenkin"), w.code_of("nenkin", holder)
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        svc.post_notice(nenkin, code, "年金のお知らせ", "本文")
        svc.file_move_out(
            user,
            destination="東京都新宿区西新宿1番1号",
            destination_lg_code=SHINJUKU,
            planned_date=w.clock.today() + dt.timedelta(days=5),
        )
    secrets = {holder.resident.resident_code, holder.resident.my_number}
    for table in (PortalSessionRow, PortalNoticeRow, PortalMoveOutRow):
        for row in w.rows(table):
            assert not any(v in str(tuple(row[0].__dict__.values())) for v in secrets)
    with w.factory() as s:
        for entry in AuditLog("linkage.portal").entries(s):
            assert not any(v in repr(entry) for v in secrets)


def test_identity_and_provision_log_are_the_holders_own(portal_world: PortalWorld) -> None:
    from jlis.juki.provision import ProvisionService

    w = portal_world
    holder = w.holder(family="佐藤", given="花子", family_kana="サトウ", given_kana="ハナコ")
    _token, user = w.sign_in(holder)
    with w.factory() as s, s.begin():
        ProvisionService(s, w.clock, w.container.provision_table).query(
            "nenkin", "national_pension_benefit", resident_code=holder.resident.resident_code
        )
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        identity = svc.identity(user)
        log = svc.provision_log(user)
    assert identity.name == "佐藤\u3000花子" and identity.lg_code == CHIYODA
    assert [(e.recipient, e.affair, e.outcome) for e in log] == [
        ("nenkin", "national_pension_benefit", "provided")
    ]
    assert "my_number" in log[0].items
    assert not hasattr(log[0], "resident_code")


def test_holder_lookup_is_scoped(portal_world: PortalWorld) -> None:
    from jlis.jpki.holders import HolderLookup, resident_principal

    w = portal_world
    a, b = w.holder(), w.holder(SHINJUKU)
    _t, user_a = w.sign_in(a)
    _t, user_b = w.sign_in(b)
    with w.factory() as s:
        with pytest.raises(Forbidden):
            HolderLookup(s, w.clock, user_a.principal).holder(user_b.certificate, purpose="x")
        with pytest.raises(Forbidden):  # staff of 千代田区 do not see a 新宿区 resident
            HolderLookup(s, w.clock, staff(CHIYODA)).holder(user_b.certificate, purpose="x")
        found = HolderLookup(s, w.clock, staff(SHINJUKU)).holder(user_b.certificate, purpose="x")
        assert found.resident_code == b.resident.resident_code
        with pytest.raises(Forbidden):
            HolderLookup(s, w.clock, resident_principal(user_a.certificate)).identity(user_b.certificate)


def test_notices_are_addressed_by_the_senders_own_code(portal_world: PortalWorld) -> None:
    w = portal_world
    a, b = w.holder(), w.holder()
    _t, user_a = w.sign_in(a)
    _t, user_b = w.sign_in(b)
    nenkin, nenkin_code, chiyoda_code = w.member("nenkin"), w.code_of("nenkin", a), w.code_of("lg-131016", a)
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        notice = svc.post_notice(nenkin, nenkin_code, "年金額改定通知", "1行目\n2行目")
        # The chiyoda member's code for a is not nenkin's: the hub refuses, nothing is posted.
        with pytest.raises(UnknownCode):
            svc.post_notice(nenkin, chiyoda_code, "x", "y")
        with pytest.raises(InvalidInput):
            svc.post_notice(nenkin, nenkin_code, " ", "y")
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        assert [n.title for n in svc.notices(user_a)] == ["年金額改定通知"]
        assert svc.notices(user_b) == [] and svc.unread_count(user_a) == 1
        with pytest.raises(NotFound):
            svc.mark_read(user_b, notice.id)
        assert svc.mark_read(user_a, notice.id).read_at is not None
        assert svc.unread_count(user_a) == 0


def test_history_shows_an_agencys_query_about_the_person(portal_world: PortalWorld) -> None:
    w = portal_world
    holder, other = w.holder(), w.holder()
    w.replica(holder, "local_tax", TAX)
    _t, user = w.sign_in(holder)
    _t, other_user = w.sign_in(other)
    answer = w.agency_query(holder)
    assert answer.outcome.value == "provided"
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        history = svc.history(user)
        assert svc.history(other_user) == []
    assert [(h.exchange_no, h.requester_id, h.provider_id, h.category) for h in history] == [
        (answer.exchange_no, "nenkin", "lg-131016", "local_tax")
    ]


def test_self_information_is_a_lawful_query_recorded_like_any_other(portal_world: PortalWorld) -> None:
    w = portal_world
    holder = w.holder()
    w.replica(holder, "local_tax", TAX)
    _t, user = w.sign_in(holder)
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        topics = {t.category for t in svc.self_information_topics()}
        assert {"juminhyo", "local_tax", "pension"} <= topics
        result = svc.self_information(user, "local_tax")
        missing = svc.self_information(user, "ltc")
        with pytest.raises(InvalidInput):
            svc.self_information(user, "nothing")
    assert result.answer.outcome.value == "provided" and result.provider_id == "lg-131016"
    assert ("合計所得金額", "3,200,000") in result.rows
    assert missing.answer.outcome.value == "no_match" and missing.rows == []
    with w.factory() as s, s.begin():
        seen = [(h.requester_id, h.category) for h in w.portal(s).history(user)]
    assert ("myna-portal", "local_tax") in seen


def test_online_move_out_is_accepted_by_the_municipality(portal_world: PortalWorld) -> None:
    w = portal_world
    holder = w.holder()
    _t, user = w.sign_in(holder)
    planned = w.clock.today() + dt.timedelta(days=7)
    with w.factory() as s, s.begin():
        filed = w.portal(s).file_move_out(
            user,
            destination="東京都新宿区西新宿2丁目8番1号",
            destination_lg_code=SHINJUKU,
            planned_date=planned,
        )
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        with pytest.raises(Forbidden):
            svc.requests_for(staff(SHINJUKU), CHIYODA)
        assert [r.id for r in svc.requests_for(staff(CHIYODA), CHIYODA)] == [filed.id]
        with pytest.raises(NotFound):  # another 団体's request is not theirs to decide
            svc.accept_move_out(staff(SHINJUKU), SHINJUKU, filed.id)
        accepted = svc.accept_move_out(staff(CHIYODA), CHIYODA, filed.id)
    assert accepted.status == "accepted" and accepted.certificate_no
    with w.register(CHIYODA) as reg:
        assert reg.get(holder.resident.id).status.value == "moving_out"
    # The 転出証明書情報 travels to 新宿区, where the holder makes the 特例転入 with the card.
    w.relay().drain()
    with w.register(SHINJUKU) as reg:
        assert [c.certificate_no for c in reg.received_certificates()] == [accepted.certificate_no]
    with w.factory() as s:
        notices = w.portal(s).notices(user)
    assert notices[0].title == "転出届を受理しました" and notices[0].sender_id == "lg-131016"
    with w.factory() as s, s.begin(), pytest.raises(RuleViolation):
        w.portal(s).accept_move_out(staff(CHIYODA), CHIYODA, filed.id)


def test_move_out_rules(portal_world: PortalWorld) -> None:
    w = portal_world
    holder = w.holder()
    _t, user = w.sign_in(holder)
    today = w.clock.today()

    def file(**kw: object) -> object:
        args: dict[str, object] = {
            "destination": "東京都新宿区西新宿1番1号",
            "destination_lg_code": SHINJUKU,
            "planned_date": today,
        }
        with w.factory() as s, s.begin():
            return w.portal(s).file_move_out(user, **(args | kw))  # type: ignore[arg-type]

    with pytest.raises(RuleViolation):
        file(destination_lg_code=CHIYODA)  # a 転居, not a 転出
    with pytest.raises(InvalidInput):
        file(planned_date=today + dt.timedelta(days=31))
    with pytest.raises(InvalidInput):
        file(planned_date=today - dt.timedelta(days=15))
    with pytest.raises(InvalidInput):
        file(destination_lg_code="131017")  # bad check digit
    with pytest.raises(InvalidInput):
        file(destination="")
    first = file()
    with pytest.raises(RuleViolation):
        file()
    with w.factory() as s, s.begin():
        svc = w.portal(s)
        withdrawn = svc.withdraw_move_out(user, first.id)  # type: ignore[attr-defined]
        assert withdrawn.status == "withdrawn"
    second = file()
    with w.factory() as s, s.begin():
        rejected = w.portal(s).reject_move_out(staff(CHIYODA), CHIYODA, second.id, "転出先の住所が不明")  # type: ignore[attr-defined]
        assert rejected.status == "rejected"
    with w.register(CHIYODA) as reg:
        assert reg.get(holder.resident.id).status.value == "active"


def test_a_consent_signed_on_the_card_lets_the_verifier_get_the_latest_basic4(
    portal_world: PortalWorld,
) -> None:
    from jlis.jpki.basic4 import Basic4Service
    from jlis.linkage.portal import client

    w = portal_world
    holder, other = w.holder(), w.holder()
    verifier = w.verifier()
    _t, user = w.sign_in(holder)
    _t, other_user = w.sign_in(other)
    with w.factory() as s:
        assert [v.id for v in w.portal(s).consent_verifiers()] == [verifier.id]
        terms = w.portal(s).consent_request(verifier.id, "住所変更の確認", days=30)
    document = client.sign_consent(holder.reader, terms, SIGN_PASSWORD, clock=w.clock)
    # Signed on another person's card: not this user's consent.
    with w.factory() as s, s.begin(), pytest.raises(RuleViolation):
        w.portal(s).record_consent(other_user, document)
    with w.factory() as s, s.begin():
        consent = w.portal(s).record_consent(user, document)
    with w.factory() as s, s.begin(), pytest.raises(RuleViolation):
        w.portal(s).record_consent(user, document)  # the same document twice
    with w.factory() as s:
        ((view, collected),) = w.portal(s).consents_for_verifier(verifier)
    assert view.id == consent.id and collected == document
    # The verifier holds the signing certificate it got when the user signed up with it, and sends
    # the collected consent to J-LIS.
    signing_der = holder.reader.read_certificate("sign", pin=SIGN_PASSWORD)
    with w.factory() as s, s.begin():
        result = Basic4Service(s, w.clock).query(verifier, certificate=signing_der, consent=collected)
    assert result.refusal is None and result.basic4 is not None
    assert result.basic4.name == f"{holder.resident.name.family}\u3000{holder.resident.name.given}"
    with w.factory() as s, s.begin():
        w.portal(s).withdraw_consent(user, consent.id)
        assert w.portal(s).consents_for_verifier(verifier) == []
        with pytest.raises(NotFound):
            w.portal(s).withdraw_consent(other_user, consent.id)


def test_consent_terms_are_checked(portal_world: PortalWorld) -> None:
    w = portal_world
    w.verifier()
    with w.factory() as s:
        svc = w.portal(s)
        with pytest.raises(InvalidInput):
            svc.consent_request("nobody", "目的")
        with pytest.raises(InvalidInput):
            svc.consent_request("bank-a", "")
        with pytest.raises(InvalidInput):
            svc.consent_request("bank-a", "目的", days=400)


def test_each_person_sees_exactly_the_exchanges_about_them(portal_world: PortalWorld) -> None:
    """Issue §8: a resident sees only their own records — including a refused query about them."""
    w = portal_world
    people = [w.holder() for _ in range(3)]
    for p in people:
        w.replica(p, "local_tax", TAX)
    users = [w.sign_in(p)[1] for p in people]
    expected: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for n, who in enumerate([0, 2, 0]):
        answer = w.agency_query(people[who], request_id=f"nenkin-{n}")
        assert answer.outcome.value == "provided"
        expected[who].append(answer.exchange_no)
    # Outside the table: 日本年金機構 may not ask for 児童手当関係情報 for a pension affair.
    refused = w.agency_query(
        people[1], category="child_allowance", items=("eligible",), request_id="nenkin-x"
    )
    assert refused.outcome.value == "refused" and refused.reason.value == "not_in_table"
    expected[1].append(refused.exchange_no)
    with w.factory() as s, s.begin():
        seen = {i: sorted(h.exchange_no for h in w.portal(s).history(u)) for i, u in enumerate(users)}
    assert seen == {i: sorted(v) for i, v in expected.items()}
