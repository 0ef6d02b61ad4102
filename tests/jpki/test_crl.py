"""CRLs and ARLs: the hand-made DER against cryptography's parser, the scopes (full, municipality
partition, ARL), caching and re-issue on change, expiry, and a large list."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from jlis.bulk import bulk_insert
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import InvalidInput, NotFound
from jlis.jpki.crl import Entry, build_crl, crl_number, der_integer, der_time, encode_entries
from jlis.jpki.profile import NEXT_GEN, Algorithm
from jlis.jpki.revocation import Reason, Revocations
from jlis.jpki.tables import AUTH, SIGN, CertificateRow

from .revocation_fixtures import CHIYODA, SHINJUKU, Pki, holder

UTC = dt.UTC


@pytest.fixture
def pki(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[Pki]:
    with Pki.start(factory, clock, tmp_path) as p:
        yield p


def _revoke(pki: Pki, kind: str, serial: str, reason: str = "affiliationChanged") -> None:
    with transaction(pki.factory) as s:
        svc = Revocations(s, pki.clock)
        svc.revoke(svc.certificate(kind, serial), reason, f"test:{serial}")


def _hold(pki: Pki, kind: str, serial: str) -> None:
    with transaction(pki.factory) as s:
        svc = Revocations(s, pki.clock)
        svc.hold(svc.certificate(kind, serial), f"hotline:{serial}")


def _serials(der: bytes) -> dict[str, x509.ReasonFlags | None]:
    out = {}
    for r in x509.load_der_x509_crl(der):
        try:
            reason: x509.ReasonFlags | None = r.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reason = None
        out[format(r.serial_number, "x")] = reason
    return out


# ----------------------------------------------------------------------------------- DER


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 2**63, 2**159 + 12345])
def test_der_integer_matches_asn1crypto(value: int) -> None:
    assert der_integer(value) == core.Integer(value).dump()


def test_times_switch_to_generalized_time_in_2050() -> None:
    assert der_time(dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)) == b"\x17\x0d491231235959Z"
    assert der_time(dt.datetime(2050, 1, 1, tzinfo=UTC)) == b"\x18\x0f20500101000000Z"
    jst = dt.timezone(dt.timedelta(hours=9))
    assert der_time(dt.datetime(2026, 11, 26, 10, 0, tzinfo=jst)) == b"\x17\x0d261126010000Z"


def test_raw_database_forms_encode_like_python_values() -> None:
    at = dt.datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
    assert encode_entries([Entry("ff", "2026-11-26 01:02:03.000000", "keyCompromise")]) == encode_entries(
        [Entry(255, at, "keyCompromise")]
    )


def test_build_crl_is_a_valid_signed_crl(pki: Pki) -> None:
    ca = pki.ca_cert()
    signer = pki.signer_for(pki.generation())
    now = dt.datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    der = build_crl(
        issuer=ca,
        signer=signer,
        entries=[
            Entry(0x80FF, now, "keyCompromise"),
            Entry(5, now - dt.timedelta(days=1), "unspecified"),
            Entry(6, now, "certificateHold"),
            Entry(7, now, None),
        ],
        this_update=now,
        next_update=now + dt.timedelta(days=1),
        number=42,
    )
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.subject
    assert crl.last_update_utc == now and crl.next_update_utc == now + dt.timedelta(days=1)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert _serials(der) == {
        "80ff": x509.ReasonFlags.key_compromise,
        "5": None,  # unspecified is left out (RFC 5280 §5.3.1)
        "6": x509.ReasonFlags.certificate_hold,
        "7": None,
    }


def test_an_empty_crl_has_no_revoked_certificates_field(pki: Pki) -> None:
    now = dt.datetime(2026, 11, 26, tzinfo=UTC)
    der = build_crl(
        issuer=pki.ca_cert(),
        signer=pki.signer_for(pki.generation()),
        entries=[],
        this_update=now,
        next_update=now + dt.timedelta(days=1),
        number=1,
    )
    assert len(x509.load_der_x509_crl(der)) == 0
    from asn1crypto import crl as acrl

    assert not acrl.CertificateList.load(der)["tbs_cert_list"]["revoked_certificates"].contents


def test_crl_numbers_grow_with_the_feed_and_the_time() -> None:
    t = dt.datetime(2026, 11, 26, tzinfo=UTC)
    assert crl_number(5, t) < crl_number(5, t + dt.timedelta(seconds=1)) < crl_number(6, t)
    assert crl_number(10**9, t).bit_length() <= 20 * 8


# ----------------------------------------------------------------------------------- publisher


def test_full_crl_and_partitions(pki: Pki) -> None:
    a_sign, a_auth = pki.card(holder(lg_code=CHIYODA), card_id="a")
    b_sign, _ = pki.card(holder(lg_code=SHINJUKU, address="東京都新宿区西新宿2丁目8番1号"), card_id="b")
    c_sign, _ = pki.card(holder(lg_code=SHINJUKU, address="東京都新宿区西新宿1丁目1番1号"), card_id="c")
    _revoke(pki, SIGN, a_sign.serial)
    _hold(pki, SIGN, b_sign.serial)
    _revoke(pki, AUTH, a_auth.serial, "keyCompromise")
    pub = pki.crls()
    full = pub.crl(SIGN, 1)
    assert _serials(full.der) == {
        a_sign.serial: x509.ReasonFlags.affiliation_changed,
        b_sign.serial: x509.ReasonFlags.certificate_hold,
    }
    assert full.entries == 2 and full.scope.label == "g1"
    crl = x509.load_der_x509_crl(full.der)
    with pytest.raises(x509.ExtensionNotFound):
        crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    shinjuku = pub.crl(SIGN, 1, SHINJUKU)
    assert set(_serials(shinjuku.der)) == {b_sign.serial}
    idp = x509.load_der_x509_crl(shinjuku.der).extensions.get_extension_for_class(
        x509.IssuingDistributionPoint
    )
    assert idp.critical and idp.value.only_contains_user_certs
    cert = x509.load_der_x509_certificate(c_sign.der)
    (dp,) = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert idp.value.full_name == dp.full_name  # what a verifier matches (RFC 5280 §6.3.3)
    assert set(_serials(pub.crl(AUTH, 1).der)) == {a_auth.serial}
    assert _serials(pub.crl(AUTH, 1, SHINJUKU).der) == {}


def test_a_cached_list_is_served_until_something_changes(pki: Pki) -> None:
    sign, _ = pki.card()
    pub = pki.crls()
    first = pub.crl(SIGN, 1)
    assert pub.crl(SIGN, 1) is first
    other = pub.crl(SIGN, 1, CHIYODA)
    _revoke(pki, AUTH, pki.card(card_id="x")[1].serial)  # another CA: the signing lists stay
    assert pub.crl(SIGN, 1) is first and pub.crl(SIGN, 1, CHIYODA) is other
    _revoke(pki, SIGN, sign.serial)
    second = pub.crl(SIGN, 1)
    assert second is not first and set(_serials(second.der)) == {sign.serial}
    assert second.number > first.number
    assert set(_serials(pub.crl(SIGN, 1, CHIYODA).der)) == {sign.serial}


def test_a_change_made_by_another_publisher_is_seen(pki: Pki) -> None:
    sign, _ = pki.card()
    ours, theirs = pki.crls(), pki.crls()
    before = ours.crl(SIGN, 1)
    _revoke(pki, SIGN, sign.serial)  # no listener involved: the feed head moved
    assert set(_serials(ours.crl(SIGN, 1).der)) == {sign.serial}
    assert set(_serials(theirs.crl(SIGN, 1).der)) == {sign.serial}
    assert before.entries == 0


def test_a_released_hold_leaves_the_list(pki: Pki) -> None:
    from jlis.auth.models import Principal, PrincipalKind

    sign, _ = pki.card()
    pub = pki.crls()
    _hold(pki, SIGN, sign.serial)
    assert set(_serials(pub.crl(SIGN, 1).der)) == {sign.serial}
    staff = Principal(1, "staff", PrincipalKind.MUNICIPAL_STAFF, "staff", lg_code=CHIYODA)
    with transaction(pki.factory) as s:
        svc = Revocations(s, pki.clock)
        svc.release(svc.certificate(SIGN, sign.serial), staff=staff, cause="counter")
    assert _serials(pub.crl(SIGN, 1).der) == {}


def test_lists_are_reissued_daily_and_expired_entries_drop_off(pki: Pki) -> None:
    sign, _ = pki.card()
    _revoke(pki, SIGN, sign.serial)
    pub = pki.crls()
    first = pub.crl(SIGN, 1)
    assert first.next_update - first.this_update == dt.timedelta(days=1)
    pki.clock.advance(hours=11)
    assert pub.crl(SIGN, 1) is first
    pki.clock.advance(hours=2)
    again = pub.crl(SIGN, 1)
    assert again is not first and again.number > first.number and again.entries == 1
    # The certificate expires; it stays for one more period (RFC 5280 §3.3), then goes.
    with transaction(pki.factory) as s:
        s.execute(
            update(CertificateRow).where(CertificateRow.id == sign.id).values(not_after=pki.clock.now())
        )
    pki.clock.advance(hours=13)
    assert pub.crl(SIGN, 1).entries == 1
    pki.clock.advance(hours=12)
    assert pub.crl(SIGN, 1).entries == 0


def test_arl_lists_revoked_generations(pki: Pki) -> None:
    with transaction(pki.factory) as s:
        pki.ca(s).rollover(SIGN)
    pub = pki.crls()
    assert pub.arl(SIGN).entries == 0
    old = pki.generation(SIGN, 1)
    with transaction(pki.factory) as s:
        Revocations(s, pki.clock).revoke_generation(old, Reason.CA_COMPROMISE, "drill")
    arl = pub.arl(SIGN)
    parsed = x509.load_der_x509_crl(arl.der)
    new_ca = pki.ca_cert(SIGN, 2)
    assert parsed.is_signature_valid(new_ca.public_key())  # type: ignore[arg-type]
    assert _serials(arl.der) == {
        format(pki.ca_cert(SIGN, 1).serial_number, "x"): x509.ReasonFlags.ca_compromise
    }
    idp = parsed.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert idp.only_contains_ca_certs and idp.full_name == [
        x509.UniformResourceIdentifier("http://127.0.0.1:8765/jpki/arl/sign.crl")
    ]
    assert pub.arl(AUTH).entries == 0


def test_a_next_generation_ca_signs_its_lists_with_ecdsa_p384(pki: Pki) -> None:
    with transaction(pki.factory) as s:
        pki.ca(s).rollover(SIGN, Algorithm.P384_SHA384)
    sign = pki.issue(SIGN, holder(), profile=NEXT_GEN)
    _revoke(pki, SIGN, sign.serial)
    doc = pki.crls().crl(SIGN, 2)
    crl = x509.load_der_x509_crl(doc.der)
    ca = pki.ca_cert(SIGN, 2)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384
    assert set(_serials(doc.der)) == {sign.serial}
    assert pki.crls().crl(SIGN, 1).entries == 0


def test_unknown_scopes_are_refused(pki: Pki) -> None:
    pub = pki.crls()
    with pytest.raises(NotFound):
        pub.crl(SIGN, 9)
    with pytest.raises(InvalidInput):
        pub.crl("root", 1)
    with pytest.raises(InvalidInput):
        pub.crl(SIGN, 1, "13101")
    with pytest.raises(NotFound):
        pub.crl(SIGN, 1, "999999")


@pytest.mark.slow
def test_a_list_of_many_entries(pki: Pki) -> None:
    gen = pki.generation()
    now = pki.clock.now()
    rng = random.Random(3)
    n = 20_000
    serials = [format(rng.getrandbits(128) | 1 << 127, "x") for _ in range(n)]
    rows = [
        {
            "ca_kind": SIGN,
            "ca_generation_id": gen.id,
            "serial": serial,
            "holder": "card",
            "card_id": f"c{i}",
            "resident_code": f"{i:011d}",
            "lg_code": CHIYODA if i % 2 else SHINJUKU,
            "subject_cn": "x",
            "not_before": now,
            "not_after": now + dt.timedelta(days=365),
            "issued_at": now,
            "der": b"",
            "status": "revoked",
            "revoked_at": now - dt.timedelta(seconds=i),
            "revocation_reason": "affiliationChanged",
            "revocation_cause": "bulk",
        }
        for i, serial in enumerate(serials)
    ]
    with transaction(pki.factory) as s:
        bulk_insert(s, CertificateRow.__table__, rows)  # type: ignore[arg-type]
    doc = pki.crls().crl(SIGN, 1)
    crl = x509.load_der_x509_crl(doc.der)
    assert len(crl) == n and crl.is_signature_valid(pki.ca_cert().public_key())  # type: ignore[arg-type]
    assert {format(r.serial_number, "x") for r in crl} == set(serials)
    assert doc.build_seconds < 20
