from __future__ import annotations

import datetime as dt
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.keystore import FileKeyStore
from jlis.lgwan.ca import CA_LOG, OrganisationCA, crl_url, default_title
from jlis.lgwan.tables import OrganisationCaRow, RoleCertificateRow

from .conftest import BASE_URL, CHIYODA, CHIYODA_TITLE, SHINJUKU, PooledKeyStore


def test_ensure_is_idempotent_and_makes_a_self_signed_root(
    factory: sessionmaker[Session], clock: FixedClock, pooled_keystore: PooledKeyStore
) -> None:
    with transaction(factory) as s:
        ca = OrganisationCA(s, clock, pooled_keystore, BASE_URL)
        first = ca.ensure(actor="op")
        again = ca.ensure(actor="op")
        assert first.id == again.id
        root = ca.ca_certificate()
        root.verify_directly_issued_by(root)
        assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert s.scalar(select(func.count()).select_from(OrganisationCaRow)) == 1


def test_role_certificate_chains_to_the_root_and_names_the_office(
    factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA]
) -> None:
    with transaction(factory) as s:
        role = org_ca(s).role_for(CHIYODA)
    cert = role.certificate
    cert.verify_directly_issued_by(role.ca_certificate)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == CHIYODA_TITLE
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment and not ku.key_cert_sign
    dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dps[0].full_name[0].value == crl_url(BASE_URL)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 3 * 365


def test_role_signer_signs_with_the_certified_key(
    factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA]
) -> None:
    with transaction(factory) as s:
        ca = org_ca(s)
        role = ca.role_for(CHIYODA)
        signature = ca.role_signer(role).sign_bytes(b"document")
    role.certificate.public_key().verify(
        signature, b"document", padding.PKCS1v15(), role.certificate.signature_hash_algorithm
    )  # type: ignore[union-attr,call-arg,arg-type]


def test_role_for_unknown_municipality_is_not_found_and_bad_input_refused(
    factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA]
) -> None:
    with transaction(factory) as s:
        ca = org_ca(s)
        with pytest.raises(NotFound):
            ca.role_for(SHINJUKU)
        with pytest.raises(InvalidInput) as bad_code:
            ca.issue_role("131015", "x", actor="op")  # wrong check digit
        assert bad_code.value.field == "lg_code"
        with pytest.raises(InvalidInput) as empty:
            ca.issue_role(SHINJUKU, "  ", actor="op")
        assert empty.value.field == "title"
        assert s.scalar(select(func.count()).select_from(RoleCertificateRow)) == 1


def test_ensure_role_reuses_the_current_certificate_and_newest_wins(
    factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA], clock: FixedClock
) -> None:
    with transaction(factory) as s:
        ca = org_ca(s)
        current = ca.ensure_role(CHIYODA, CHIYODA_TITLE, actor="op")
        assert current.serial == ca.role_for(CHIYODA).serial
        clock.advance(seconds=1)
        newer = ca.issue_role(CHIYODA, CHIYODA_TITLE, actor="op")
        assert ca.role_for(CHIYODA).serial == newer.serial != current.serial
        assert len(ca.roles(CHIYODA)) == 2


def test_revocation_appears_on_the_crl_and_is_audited(
    factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA]
) -> None:
    with transaction(factory) as s:
        ca = org_ca(s)
        role = ca.role_for(CHIYODA)
        ca.revoke(role.serial, "keyCompromise", actor="op")
        with pytest.raises(RuleViolation):
            ca.revoke(role.serial, "keyCompromise", actor="op")
        with pytest.raises(InvalidInput):
            ca.revoke(role.serial, "because", actor="op")
        with pytest.raises(NotFound):
            ca.role_for(CHIYODA)
        crl = ca.crl()
        assert crl.is_signature_valid(ca.ca_certificate().public_key())  # type: ignore[arg-type]
        entry = crl.get_revoked_certificate_by_serial_number(int(role.serial, 16))
        assert entry is not None
        assert (
            entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            is x509.ReasonFlags.key_compromise
        )
        actions = [e.action for e in CA_LOG.entries(s)]
        assert actions == ["ca.generation", "role.issue", "role.revoke"]
        assert AuditLog(CA_LOG.chain).verify(s).ok


def test_rollover_keeps_old_roots_trusted(
    factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA], clock: FixedClock
) -> None:
    with transaction(factory) as s:
        ca = org_ca(s)
        old = ca.role_for(CHIYODA)
        clock.advance(seconds=1)
        gen2 = ca.rollover(actor="op")
        assert gen2.generation == 2 and ca.active().id == gen2.id
        assert len(ca.trust_anchors()) == 2
        new = ca.issue_role(CHIYODA, CHIYODA_TITLE, actor="op")
        new.certificate.verify_directly_issued_by(ca.ca_certificate(gen2))
        old.certificate.verify_directly_issued_by(ca.trust_anchors()[0])


def test_file_keystore_and_openssl_verify_the_chain(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """The real encrypted-file key store, and openssl as an independent checker of the chain."""
    store = FileKeyStore(tmp_path / "keys")
    with transaction(factory) as s:
        ca = OrganisationCA(s, clock, store, BASE_URL, rng=random.Random(1))
        ca.ensure(actor="op")
        role = ca.issue_role(SHINJUKU, default_title(SHINJUKU), actor="op")
    assert role.title == "東京都新宿区長"
    assert store.signer(role.key_ref).public_key() == role.certificate.public_key()
    (tmp_path / "root.pem").write_bytes(role.ca_certificate.public_bytes(Encoding.PEM))
    (tmp_path / "role.pem").write_bytes(role.certificate.public_bytes(Encoding.PEM))
    at = int(dt.datetime(2026, 11, 27, tzinfo=dt.UTC).timestamp())
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(at),
            "-CAfile",
            str(tmp_path / "root.pem"),
            str(tmp_path / "role.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
