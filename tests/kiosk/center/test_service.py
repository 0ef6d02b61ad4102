"""The issuance center end to end through its service API: card → OCSP → menu → quote → pay → PDF."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.jpki.revocation import Reason, Revocations
from jlis.jpki.tables import CertificateRow, StatusQueryRow
from jlis.kiosk.center.card import card_answer
from jlis.kiosk.center.errors import CenterReason, CenterRefused
from jlis.kiosk.center.models import KioskChallenge, Server
from jlis.kiosk.center.routes import parse_routes
from jlis.kiosk.center.service import BCL_TITLE, CENTER_ID, PURPOSE, set_kiosk_active
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.koseki import KosekiBook, NewMember
from jlis.kiosk.issuer.models import IssueOptions, KosekiEvent
from jlis.kiosk.issuer.server import CertificateServer
from jlis.kiosk.issuer.tables import IssuanceRow
from jlis.kiosk.pdf import render as render_mod
from jlis.kiosk.pdf.render import read_binding
from jlis.kiosk.pdf.service import documents_for
from jlis.kiosk.pdf.tables import IssuedDocumentRow

from .conftest import AUTH_PIN, CHIYODA, KIOSK, SHINJUKU, YOKOHAMA_TSURUMI, CenterWorld, pdf_text


def test_resident_certificate_end_to_end(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder(CHIYODA, family="佐藤", given="花子")
    session = w.login(holder)
    assert session.lg_code == CHIYODA and session.kiosk_id == KIOSK
    menu = w.center.menu(session)
    assert CertificateKind.RESIDENT in {i.kind for i in menu.items}
    quote = w.center.request(session, CertificateKind.RESIDENT, IssueOptions(), 2)
    assert quote.fee == 400 and quote.copies == 2
    receipt = w.center.pay(quote)
    issued = w.center.issue(session, receipt)
    text = pdf_text(issued.pdf)
    assert "佐藤" in text and "花子" in text
    assert read_binding(issued.pdf).request_id == quote.request_id
    (row,) = w.rows(CenterLogRow)
    assert row.outcome == "issued" and row.charged == 400 and row.request_id == quote.request_id
    assert row.certificate_number == issued.certificate_number and row.document_sha256 == issued.sha256


# ------------------------------------------------------------------------------ authentication


def _refused(fn: Any, code: str) -> CenterRefused:
    with pytest.raises(CenterRefused) as info:
        fn()
    assert info.value.code == code, (info.value.code, info.value.detail)
    assert info.value.message  # the kiosk's Japanese text
    return info.value


def _nothing_issued(w: CenterWorld) -> None:
    assert w.count(IssuedDocumentRow) == 0
    assert w.count(IssuanceRow) == 0
    assert all(r.outcome == "refused" and r.charged == 0 for r in w.rows(CenterLogRow))


def test_status_is_checked_by_ocsp_as_the_registered_verifier(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder()
    w.login(holder)
    w.revocation.log.flush()
    (query,) = w.rows(StatusQueryRow)
    assert (query.verifier_id, query.purpose, query.channel, query.ca_kind, query.result) == (
        CENTER_ID,
        PURPOSE,
        "ocsp",
        "auth",
        "good",
    )
    with w.factory() as s:
        serial = s.scalars(
            select(CertificateRow.serial).where(
                CertificateRow.card_id == holder.card_id, CertificateRow.ca_kind == "auth"
            )
        ).one()
    assert query.serial == serial


def test_wrong_pin_is_counted_on_the_card_and_logged(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder()
    refusal = _refused(lambda: w.login(holder, pin="9999"), CenterReason.WRONG_PIN)
    assert "残り2回" in refusal.message
    _refused(lambda: w.login(holder, pin="9999"), CenterReason.WRONG_PIN)
    _refused(lambda: w.login(holder, pin="9999"), CenterReason.PIN_BLOCKED)
    # blocked on the card: the right PIN no longer works
    _refused(lambda: w.login(holder), CenterReason.PIN_BLOCKED)
    codes = [r.code for r in w.rows(CenterLogRow)]
    assert codes == ["wrong_pin", "wrong_pin", "pin_blocked", "pin_blocked"]
    _nothing_issued(w)


def test_revoked_and_held_cards_are_refused(center_world: CenterWorld) -> None:
    w = center_world
    revoked, held = w.holder(), w.holder(given="次郎")
    with transaction(w.factory) as s:
        Revocations(s, w.clock, actor="test").revoke_card(revoked.card_id, Reason.KEY_COMPROMISE, "test")
        Revocations(s, w.clock, actor="test").hold_card(held.card_id, "hotline")
    _refused(lambda: w.login(revoked), CenterReason.CARD_REVOKED)
    _refused(lambda: w.login(held), CenterReason.CARD_ON_HOLD)
    w.revocation.log.flush()
    results = sorted(q.result for q in w.rows(StatusQueryRow))
    assert results == ["revoked:certificateHold", "revoked:keyCompromise"]
    _nothing_issued(w)


def test_a_challenge_is_for_one_kiosk_and_one_use(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder()
    challenge = w.center.open_session(KIOSK)
    answer = card_answer(w.center, challenge, holder.reader, AUTH_PIN)
    other = KioskChallenge("K-0002", challenge.text, challenge.expires_at)
    _refused(lambda: w.center.authenticate(other, answer), CenterReason.CHALLENGE_UNKNOWN)
    w.center.authenticate(challenge, answer)
    _refused(lambda: w.center.authenticate(challenge, answer), CenterReason.CHALLENGE_UNKNOWN)
    forged = KioskChallenge(KIOSK, challenge.text.replace("Z\n", "Z\n", 1)[:-3] + "00Z", challenge.expires_at)
    _refused(lambda: w.center.authenticate(forged, answer), CenterReason.CHALLENGE_UNKNOWN)


def test_unregistered_or_disabled_kiosk(center_world: CenterWorld) -> None:
    w = center_world
    _refused(lambda: w.center.open_session("K-9999"), CenterReason.UNKNOWN_KIOSK)
    with transaction(w.factory) as s:
        set_kiosk_active(s, w.clock, "K-0002", False, actor="test")
    _refused(lambda: w.center.open_session("K-0002"), CenterReason.UNKNOWN_KIOSK)
    _refused(lambda: w.center.open_session("店舗 1"), CenterReason.UNKNOWN_KIOSK)
    assert [r.code for r in w.rows(CenterLogRow)] == ["unknown_kiosk"] * 3


# ------------------------------------------------------------------------------ requests


def test_menu_lists_the_municipalitys_offer_and_fees(center_world: CenterWorld) -> None:
    w = center_world
    shinjuku = w.login(w.holder(SHINJUKU))
    menu = w.center.menu(shinjuku)
    kinds = {i.kind: i for i in menu.items}
    assert CertificateKind.RESIDENT_ITEMS not in kinds  # 新宿区 does not offer it (policy data)
    assert kinds[CertificateKind.KOSEKI].fee == 450 and kinds[CertificateKind.KOSEKI].honseki
    assert kinds[CertificateKind.RESIDENT].options[0] == "household"
    assert menu.server is Server.OWN and menu.municipality == "東京都新宿区"
    _refused(lambda: w.center.request(shinjuku, CertificateKind.RESIDENT_ITEMS), CenterReason.NOT_OFFERED)
    _refused(
        lambda: w.center.request(shinjuku, CertificateKind.KOSEKI, honseki_lg_code="999999"),
        CenterReason.UNKNOWN_MUNICIPALITY,
    )
    _refused(lambda: w.center.request(shinjuku, "passport"), CenterReason.INVALID_REQUEST)
    _refused(
        lambda: w.center.request(shinjuku, CertificateKind.RESIDENT, copies=0), CenterReason.INVALID_REQUEST
    )
    _nothing_issued(w)


def test_tampered_requests_are_refused_and_charge_nothing(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder()
    session, quote = w.quote(holder)
    _refused(lambda: w.center.pay(replace(quote, request_id="K" + "0" * 30)), CenterReason.QUOTE_UNKNOWN)
    _refused(lambda: w.center.pay(replace(quote, fee=0)), CenterReason.QUOTE_TAMPERED)
    _refused(lambda: w.center.pay(quote, 100), CenterReason.PAYMENT_MISMATCH)
    _refused(lambda: w.center.menu(replace(session, token="x" * 43)), CenterReason.SESSION_UNKNOWN)
    _refused(lambda: w.center.menu(replace(session, lg_code=SHINJUKU)), CenterReason.SESSION_UNKNOWN)
    receipt = w.center.pay(quote)
    other = w.login(w.holder(given="三郎"))
    _refused(lambda: w.center.issue(other, receipt), CenterReason.QUOTE_TAMPERED)
    # the refused issue used the payment up: nothing was charged and the request is gone
    _refused(lambda: w.center.issue(session, receipt), CenterReason.NOT_PAID)
    _nothing_issued(w)


def test_a_certificate_server_refusal_keeps_its_code(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder()
    session, quote = w.quote(holder, CertificateKind.SEAL)  # no 印鑑登録
    receipt = w.center.pay(quote)
    refusal = _refused(lambda: w.center.issue(session, receipt), "no_seal_registration")
    assert refusal.message.startswith("印鑑登録がないため")
    (row,) = w.rows(CenterLogRow)
    assert (row.request_id, row.stage, row.kind, row.fee, row.charged) == (
        quote.request_id,
        "issue",
        "seal",
        200,
        0,
    )
    _nothing_issued(w)


def test_moved_out_resident_is_refused(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder()
    with w.register(CHIYODA) as reg:
        reg.record_move_out(
            holder.resident.id,
            planned_date=w.clock.today() + dt.timedelta(days=7),
            destination="神奈川県横浜市鶴見区",
            destination_lg_code="141011",
        )
    session, quote = w.quote(holder)
    receipt = w.center.pay(quote)
    _refused(lambda: w.center.issue(session, receipt), "moving_out")
    _nothing_issued(w)


# ------------------------------------------------------------------------------ routing


def test_municipality_through_the_bcl_signs_with_the_bcls_role(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder(YOKOHAMA_TSURUMI, family="鈴木", from_lg=SHINJUKU)
    issued = w.issue(holder)
    assert issued.server is Server.BCL and issued.lg_code == YOKOHAMA_TSURUMI
    assert issued.signer_serial == w.setup.bcl_role_serial
    (row,) = w.rows(CenterLogRow)
    assert (row.server, row.signer_serial) == ("bcl", w.setup.bcl_role_serial)
    with w.factory() as s:
        verdict = documents_for(s, w.container).verify_pdf(issued.pdf)
    assert verdict.verdict.value == "valid" and verdict.signer_title == BCL_TITLE
    assert "鈴木" in pdf_text(issued.pdf)


def test_own_route_without_a_role_certificate_is_not_participating(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder(YOKOHAMA_TSURUMI, from_lg=SHINJUKU)
    w.center.routes = parse_routes({"default": {"server": "own"}})
    session = w.login(holder)
    _refused(lambda: w.center.menu(session), CenterReason.NOT_PARTICIPATING)


def test_own_certificate_verifies_with_its_qr_code(center_world: CenterWorld) -> None:
    w = center_world
    issued = w.issue(w.holder(), CertificateKind.RESIDENT, IssueOptions(household=True))
    with w.factory() as s:
        docs = documents_for(s, w.container)
        assert docs.verify_code(issued.certificate_number, issued.verification_code).verdict.value == "valid"
        assert docs.verify_pdf(issued.pdf).signer_title == "東京都千代田区長"
    assert issued.verify_url.endswith(f"n={issued.certificate_number}&c={issued.verification_code}")


# ------------------------------------------------------------------------------ bindings


def test_content_for_another_resident_is_refused(
    center_world: CenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate server that answers with another person's content (the real service's bug):
    verify_binding finds the request was not for this resident: refused, nothing charged."""
    w = center_world
    me, other = w.holder(given="一郎"), w.holder(given="二郎")
    real = CertificateServer.issue_content

    def mixed_up(self: CertificateServer, code: str, *args: Any) -> Any:
        return real(self, other.resident.resident_code, *args)

    monkeypatch.setattr(CertificateServer, "issue_content", mixed_up)
    session, quote = w.quote(me)
    receipt = w.center.pay(quote)
    refusal = _refused(lambda: w.center.issue(session, receipt), CenterReason.BINDING_MISMATCH)
    assert "住民票コード" in refusal.detail
    assert w.count(IssuedDocumentRow) == 0
    assert [(r.outcome, r.charged) for r in w.rows(CenterLogRow)] == [("refused", 0)]


def test_pdf_of_another_request_is_refused(
    center_world: CenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = center_world
    holder = w.holder()
    real = render_mod.render_with_pages

    def wrong_request(content: Any, **kw: Any) -> Any:
        return real(replace(content, request_id="K" + "f" * 30), **kw)

    monkeypatch.setattr(render_mod, "render_with_pages", wrong_request)
    session, quote = w.quote(holder)
    receipt = w.center.pay(quote)
    _refused(lambda: w.center.issue(session, receipt), CenterReason.BINDING_MISMATCH)
    assert w.count(IssuedDocumentRow) == 0
    assert [(r.outcome, r.code, r.charged) for r in w.rows(CenterLogRow)] == [
        ("refused", "binding_mismatch", 0)
    ]


def test_koseki_goes_to_the_honseki_municipality(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder(SHINJUKU, family="井上", given="豊")
    with transaction(w.factory) as s:
        staff = Principal(
            id=1,
            username="staff-131016",
            kind=PrincipalKind.MUNICIPAL_STAFF,
            display_name="窓口",
            lg_code=CHIYODA,
        )
        book = KosekiBook(s, w.clock, CHIYODA, staff)
        r = holder.resident
        member = NewMember(
            r.name.family, r.name.given, r.birth_date, r.sex, "井上\u3000一郎", "井上\u3000花子", "長男",
            r.resident_code, (KosekiEvent(r.birth_date, "出生", "【出生地】東京都千代田区"),),
        )  # fmt: skip
        book.create(
            "東京都千代田区千代田1番地", made_on=dt.date(2005, 5, 5), made_reason="婚姻", members=[member]
        )
    session = w.login(holder)
    # lives in 新宿区, 本籍 in 千代田区: without 本籍地利用登録 the 本籍 server refuses
    quote = w.center.request(session, CertificateKind.KOSEKI, honseki_lg_code=CHIYODA)
    assert (quote.lg_code, quote.fee) == (CHIYODA, 350)
    _refused(lambda: w.center.issue(session, w.center.pay(quote)), "no_honseki_use")
    applied = w.center.apply_honseki_use(session, CHIYODA, "井上", "豊")  # 利用登録申請 at the kiosk
    assert applied.lg_code == CHIYODA
    quote = w.center.request(session, CertificateKind.KOSEKI, honseki_lg_code=CHIYODA)
    _refused(lambda: w.center.issue(session, w.center.pay(quote)), "no_honseki_use")  # not approved yet
    with transaction(w.factory) as s:  # the 本籍 municipality checks it against its 戸籍
        book = KosekiBook(s, w.clock, CHIYODA, staff)
        (pending,) = book.applications("pending")
        book.decide(pending.id, approve=True)
    quote = w.center.request(session, CertificateKind.KOSEKI, honseki_lg_code=CHIYODA)
    issued = w.center.issue(session, w.center.pay(quote))
    assert issued.lg_code == CHIYODA and "井上" in pdf_text(issued.pdf)


def test_expired_challenge_and_session(center_world: CenterWorld) -> None:
    w = center_world
    holder = w.holder()
    challenge = w.center.open_session(KIOSK)
    answer = card_answer(w.center, challenge, holder.reader, AUTH_PIN)
    w.clock.advance(minutes=10)
    _refused(lambda: w.center.authenticate(challenge, answer), CenterReason.CHALLENGE_UNKNOWN)
    session = w.login(holder)
    w.center.menu(session)
    w.clock.advance(minutes=11)
    _refused(lambda: w.center.menu(session), CenterReason.SESSION_UNKNOWN)


def test_a_certificate_of_another_ca_is_refused(center_world: CenterWorld) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.x509.oid import NameOID

    from jlis.jpki.rp.login import Challenge, LoginResponse

    from ...card.conftest import _rsa_keys

    w = center_world
    key = _rsa_keys()[3]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")])
    now = w.clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(12345)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    challenge = w.center.open_session(KIOSK)
    data = Challenge.from_text(challenge.text).to_bytes()
    answer = LoginResponse(
        cert.public_bytes(serialization.Encoding.DER), key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    )
    _refused(lambda: w.center.authenticate(challenge, answer), CenterReason.CARD_INVALID)
    # a genuine card's certificate with a signature that is not over this challenge
    holder = w.holder()
    good = card_answer(w.center, w.center.open_session(KIOSK), holder.reader, AUTH_PIN)
    _refused(lambda: w.center.authenticate(w.center.open_session(KIOSK), good), CenterReason.CARD_INVALID)
    _nothing_issued(w)


def test_a_deactivated_verifier_gets_no_status(center_world: CenterWorld) -> None:
    """Only a registered, active 利用者証明検証者 may ask: the center refuses to log cards in once its
    registration is deactivated (checked when its trust store is loaded)."""
    from jlis.jpki.verifiers import VerifierRegistry
    from jlis.kiosk.center.service import IssuanceCenter

    w = center_world
    holder = w.holder()
    with transaction(w.factory) as s:
        VerifierRegistry(s, w.clock, actor="test").set_active(CENTER_ID, False)
    w.center = IssuanceCenter(w.container, w.revocation)
    _refused(lambda: w.login(holder), CenterReason.CARD_STATUS_UNKNOWN)
