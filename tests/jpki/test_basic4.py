"""最新の基本4情報 with the user's consent: the happy path from the national copy, and every refusal
recorded before it is raised."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki import holder as holder_mod
from jlis.jpki.basic4 import (
    CONSENT_TYPE,
    Basic4Service,
    ConsentRefused,
    consent_content,
    parse_consent,
    provide_basic4,
)
from jlis.jpki.profile import Algorithm
from jlis.jpki.revocation import Reason, Revocations
from jlis.jpki.tables import AUTH, SIGN, CertificateRow, ConsentRow, StatusQueryRow
from jlis.jpki.verifiers import Verifier, VerifierRegistry
from jlis.juki import build_relay
from jlis.masters import load_geography
from jlis.registry import Placement

from ..juki.factories import CHIYODA, World
from ..web.support import FAST_HASHER
from .revocation_fixtures import Pki, key_pool

UTC = dt.UTC
RSA = Algorithm.RSA2048_SHA256


@dataclass
class Scene:
    pki: Pki
    world: World
    verifier: Verifier
    old: CertificateRow  # the certificate the bank holds (revoked after the move)
    new: CertificateRow  # the user's current signing certificate
    new_key: Any
    resident_id: int


@pytest.fixture
def scene(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[Scene]:
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        with Pki.start(factory, clock, tmp_path) as pki:
            world = World(factory, clock, load_geography())
            relay = build_relay(factory, clock, world.geo)
            view = world.person(CHIYODA)
            relay.drain()
            old = pki.issue(SIGN, holder_mod.from_resident(view), card_id="old", key_index=0)
            clock.advance(days=30)
            with world.register(CHIYODA) as reg:
                [moved] = reg.record_relocation(
                    view.id, Placement(world.town(CHIYODA, 1), "9番9号"), moved_on=clock.today()
                )
            relay.drain()
            with transaction(factory) as s:
                svc = Revocations(s, clock)
                svc.revoke(svc.certificate(SIGN, old.serial), Reason.AFFILIATION_CHANGED, "identity:move")
            new = pki.issue(SIGN, holder_mod.from_resident(moved), card_id="new", key_index=1)
            with transaction(factory) as s:
                verifier = VerifierRegistry(s, clock, actor="op").register(
                    verifier_id="bank-a",
                    name="A銀行",
                    signature_verifier=True,
                    user_verifier=False,
                    basis="主務大臣認定事業者",
                    agreement_no="1",
                    agreement_date=dt.date(2026, 1, 1),
                    username="bank-a-api",
                    password="correct horse battery",
                )
            yield Scene(pki, world, verifier, old, new, key_pool(RSA)[1], view.id)
    finally:
        passwords.use_hasher(previous)


def sign_consent(cert: CertificateRow, key: Any, content: bytes, *, detached: bool = False) -> bytes:
    options = [pkcs7.PKCS7Options.Binary]
    if detached:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(x509.load_der_x509_certificate(cert.der), key, hashes.SHA256())
        .sign(Encoding.DER, options)
    )


def terms(scene: Scene, **changes: Any) -> bytes:
    now = scene.pki.clock.now()
    values: dict[str, Any] = {
        "verifier_id": scene.verifier.id,
        "purpose": "登録住所の確認",
        "certificate_serial": scene.old.serial,
        "nonce": "n-0123456789",
        "issued_at": now,
        "valid_until": now + dt.timedelta(days=30),
    }
    values.update(changes)
    return consent_content(**values)


def ask(
    scene: Scene, consent: bytes, *, certificate: bytes | None = None, verifier: Verifier | None = None
) -> Any:
    with transaction(scene.pki.factory) as s:
        return Basic4Service(s, scene.pki.clock).query(
            verifier or scene.verifier,
            certificate=scene.old.der if certificate is None else certificate,
            consent=consent,
            purpose="口座の住所更新",
        )


def queries(scene: Scene) -> list[tuple[str | None, str, str | None]]:
    with scene.pki.factory() as s:
        return [
            (r.verifier_id, r.result, r.serial)
            for r in s.scalars(select(StatusQueryRow).order_by(StatusQueryRow.id))
        ]


# ----------------------------------------------------------------------------------- the happy path


def test_the_latest_basic4_with_a_valid_consent(scene: Scene) -> None:
    consent = sign_consent(scene.new, scene.new_key, terms(scene))
    result = ask(scene, consent)
    assert result.refusal is None
    b4 = result.basic4
    assert b4.name == "山田\u3000太郎" and b4.address.endswith("9番9号") and b4.sex == "male"
    assert b4.birth_date == dt.date(1980, 4, 1) and b4.status == "active"
    assert result.certificate_serial == scene.old.serial
    assert queries(scene) == [("bank-a", "provided", scene.old.serial)]
    with scene.pki.factory() as s:
        (entry,) = [e for e in AuditLog("access").entries(s) if e.details.get("system") == "jpki"]
        consents = s.scalars(select(ConsentRow)).all()
    assert (entry.actor, entry.action, entry.subject) == ("bank-a", "provide", scene.new.resident_code)
    assert [(c.verifier_id, c.certificate_id, c.purpose) for c in consents] == [
        ("bank-a", scene.old.id, "登録住所の確認")
    ]
    ask(scene, consent)  # the same consent again: answered, stored once
    with scene.pki.factory() as s:
        assert len(s.scalars(select(ConsentRow)).all()) == 1


def test_the_adapter_returns_the_basic4(scene: Scene) -> None:
    consent = sign_consent(scene.new, scene.new_key, terms(scene))
    b4 = provide_basic4(
        scene.pki.factory, scene.pki.clock, scene.verifier, certificate=scene.old.der, consent=consent
    )
    assert b4.address.endswith("9番9号")


def test_a_code_change_is_still_the_same_person(scene: Scene) -> None:
    with scene.world.register(CHIYODA) as reg:
        changed = reg.change_resident_code(scene.resident_id)
    build_relay(scene.pki.factory, scene.pki.clock, scene.world.geo).drain()
    newest = scene.pki.issue(SIGN, holder_mod.from_resident(changed), card_id="newest", key_index=2)
    key = key_pool(RSA)[2]
    result = ask(scene, sign_consent(newest, key, terms(scene)))
    assert result.refusal is None and result.basic4.address.endswith("9番9号")


# ----------------------------------------------------------------------------------- refusals


def _refused(scene: Scene, consent: bytes, field: str, **kw: Any) -> ConsentRefused:
    result = ask(scene, consent, **kw)
    assert result.basic4 is None and result.refusal is not None
    assert result.refusal.field == field, result.refusal
    (last,) = queries(scene)[-1:]
    assert last[1] == f"refused:{field}"[:32]
    with scene.pki.factory() as s:
        entries = [e for e in AuditLog("access").entries(s) if e.details.get("system") == "jpki"]
    assert entries[-1].action == "refuse" and entries[-1].details["rule"] == result.refusal.rule
    return result.refusal


def test_a_user_verifier_is_not_given_basic4(scene: Scene) -> None:
    with transaction(scene.pki.factory) as s:
        user_only = VerifierRegistry(s, scene.pki.clock, actor="op").register(
            verifier_id="login-co",
            name="Login",
            signature_verifier=False,
            user_verifier=True,
            basis="x",
            agreement_no="2",
            agreement_date=dt.date(2026, 1, 1),
            username="login-co-api",
            password="correct horse battery",
        )
    consent = sign_consent(scene.new, scene.new_key, terms(scene, verifier_id="login-co"))
    _refused(scene, consent, "verifier", verifier=user_only)


def test_a_consent_signed_with_the_revoked_certificate_is_refused(scene: Scene) -> None:
    consent = sign_consent(scene.old, key_pool(RSA)[0], terms(scene))
    assert "current" in _refused(scene, consent, "consent").rule


def test_a_consent_signed_by_someone_else_is_refused(scene: Scene) -> None:
    other_view = scene.world.person(CHIYODA, family="鈴木", given="一郎")
    other = scene.pki.issue(SIGN, holder_mod.from_resident(other_view), card_id="other", key_index=2)
    consent = sign_consent(other, key_pool(RSA)[2], terms(scene))
    assert "holder" in _refused(scene, consent, "consent").rule


def test_a_consent_signed_with_an_authentication_certificate_is_refused(scene: Scene) -> None:
    auth = scene.pki.issue(
        AUTH, holder_mod.from_resident(scene.world.person(CHIYODA)), card_id="a", key_index=2
    )
    consent = sign_consent(auth, key_pool(RSA)[2], terms(scene))
    assert "signing certificate" in _refused(scene, consent, "consent").rule


def test_a_tampered_consent_is_refused(scene: Scene) -> None:
    consent = sign_consent(scene.new, scene.new_key, terms(scene))
    tampered = consent.replace(b"n-0123456789", b"n-0123456780")
    assert "messageDigest" in _refused(scene, tampered, "consent").rule
    signed_with_wrong_key = sign_consent(scene.new, key_pool(RSA)[0], terms(scene))
    assert "signature" in _refused(scene, signed_with_wrong_key, "consent").rule


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"verifier_id": "bank-b"}, "consent.verifier_id"),
        ({"certificate_serial": "abc"}, "consent.certificate_serial"),
        ({"valid_until": dt.datetime(2026, 1, 1, tzinfo=UTC)}, "consent.valid_until"),
        ({"issued_at": dt.datetime(2030, 1, 1, tzinfo=UTC)}, "consent.issued_at"),
        ({"valid_until": dt.datetime(2029, 1, 1, tzinfo=UTC)}, "consent.valid_until"),
        ({"nonce": "short"}, "consent.nonce"),
    ],
)
def test_consent_terms_are_checked(scene: Scene, changes: dict[str, Any], field: str) -> None:
    _refused(scene, sign_consent(scene.new, scene.new_key, terms(scene, **changes)), field)


def test_content_that_is_not_a_consent_is_refused(scene: Scene) -> None:
    for content in (b"not json", json.dumps({"type": "other"}).encode(), json.dumps([1]).encode()):
        _refused(scene, sign_consent(scene.new, scene.new_key, content), "consent.content")
    doc = json.loads(terms(scene))
    doc["issued_at"] = "2026-11-26T10:00:00"  # no offset
    _refused(scene, sign_consent(scene.new, scene.new_key, json.dumps(doc).encode()), "consent.issued_at")
    assert doc["type"] == CONSENT_TYPE


def test_garbage_and_detached_consents_are_refused(scene: Scene) -> None:
    _refused(scene, b"garbage", "consent")
    _refused(scene, b"", "consent")
    _refused(scene, sign_consent(scene.new, scene.new_key, terms(scene), detached=True), "consent")


def test_a_certificate_we_did_not_issue_is_refused(scene: Scene) -> None:
    consent = sign_consent(scene.new, scene.new_key, terms(scene))
    _refused(scene, consent, "certificate", certificate=b"not a certificate")
    forged = x509.load_der_x509_certificate(scene.old.der)  # same serial, other bytes: not ours
    builder = (
        x509.CertificateBuilder()
        .subject_name(forged.subject)
        .issuer_name(forged.issuer)
        .public_key(scene.new_key.public_key())
        .serial_number(forged.serial_number)
        .not_valid_before(forged.not_valid_before_utc)
        .not_valid_after(forged.not_valid_after_utc)
    )
    fake = builder.sign(scene.new_key, hashes.SHA256()).public_bytes(Encoding.DER)
    _refused(scene, consent, "certificate", certificate=fake)


def test_the_adapter_commits_a_refusal_before_raising(scene: Scene) -> None:
    with pytest.raises(ConsentRefused):
        provide_basic4(
            scene.pki.factory, scene.pki.clock, scene.verifier, certificate=scene.old.der, consent=b"garbage"
        )
    assert queries(scene) == [("bank-a", "refused:consent", scene.old.serial)]


def test_parse_consent_on_its_own(scene: Scene) -> None:
    content = terms(scene)
    doc = parse_consent(sign_consent(scene.new, scene.new_key, content))
    assert doc.content == content and doc.signer.serial_number == int(scene.new.serial, 16)
