"""CA keys in a SoftHSM2 token: generated there, never extractable, and signing through the token
produces certificates, CRLs and OCSP responses that cryptography and openssl accept."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.errors import NotFound, RuleViolation
from jlis.jpki.ca import CertificationAuthority, load_certificate
from jlis.jpki.holder import HolderInfo
from jlis.jpki.keystore import keystore_from_settings
from jlis.jpki.pkcs11 import Pkcs11KeyStore
from jlis.jpki.profile import CURRENT, NEXT_GEN, Algorithm, generate_private_key, profile_for
from jlis.jpki.tables import AUTH, SIGN
from jlis.jpki.validity import card_expiry
from jlis.settings import Settings

from .conftest import BASE_URL, SoftHsm

_labels = iter(range(10**6))


def label(prefix: str) -> str:
    # One token for the whole session: every test uses fresh labels.
    return f"{prefix}-{next(_labels)}-{random.getrandbits(32):08x}"


@pytest.fixture
def jpki_token(jpki_softhsm: SoftHsm) -> Iterator[Pkcs11KeyStore]:
    store = Pkcs11KeyStore(jpki_softhsm.module, jpki_softhsm.token, jpki_softhsm.pin)
    yield store
    store.close()


@pytest.mark.parametrize("alg", list(Algorithm))
def test_key_generated_in_the_token_signs_and_never_leaves(
    jpki_token: Pkcs11KeyStore, alg: Algorithm
) -> None:
    ref = jpki_token.create(alg, label("k"))
    assert ref.startswith("pkcs11:jlis-test-ca/k-")
    assert jpki_token.is_extractable(ref) is False
    signer = jpki_token.signer(ref)
    assert signer.algorithm is alg
    sig = signer.sign_bytes(b"payload")
    public = signer.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        assert public.key_size == 2048 and public.public_numbers().e == 65537
        public.verify(sig, b"payload", padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP384R1)
        public.verify(sig, b"payload", ec.ECDSA(hashes.SHA384()))


def test_labels_are_unique_and_unknown_keys_not_found(jpki_token: Pkcs11KeyStore) -> None:
    name = label("dup")
    jpki_token.create(Algorithm.P384_SHA384, name)
    with pytest.raises(RuleViolation):
        jpki_token.create(Algorithm.P384_SHA384, name)
    with pytest.raises(NotFound):
        jpki_token.signer("pkcs11:jlis-test-ca/absent")


def test_a_second_store_finds_the_key(jpki_softhsm: SoftHsm, jpki_token: Pkcs11KeyStore) -> None:
    ref = jpki_token.create(Algorithm.RSA2048_SHA256, label("again"))
    other = keystore_from_settings(
        Settings(
            pkcs11_module=jpki_softhsm.module, pkcs11_token=jpki_softhsm.token, pkcs11_pin=jpki_softhsm.pin
        )
    )
    assert isinstance(other, Pkcs11KeyStore)
    assert other.signer(ref).public_key() == jpki_token.signer(ref).public_key()


def test_wrong_token_is_not_found(jpki_softhsm: SoftHsm) -> None:
    with pytest.raises(NotFound):
        Pkcs11KeyStore(jpki_softhsm.module, "no-such-token", "1").create(Algorithm.P384_SHA384, "x")


@pytest.mark.parametrize("alg", list(Algorithm))
def test_ca_in_the_token_issues_verifiable_certificates(
    factory: sessionmaker[Session],
    clock: FixedClock,
    jpki_token: Pkcs11KeyStore,
    jpki_holder: HolderInfo,
    tmp_path: Path,
    alg: Algorithm,
) -> None:
    profile = profile_for(alg)
    key = generate_private_key(alg)
    with factory() as s:
        ca = CertificationAuthority(s, clock, jpki_token, BASE_URL, rng=random.Random(3))
        ca.ensure(alg)
        for kind in (SIGN, AUTH):
            gen = ca.active(kind)
            assert gen.key_ref.startswith("pkcs11:jlis-test-ca/jpki-" + kind)
            root = ca.ca_certificate(gen)
            root.verify_directly_issued_by(root)
            row = ca.issue(
                kind,
                key.public_key(),
                jpki_holder,
                card_id="C",
                profile=profile,
                card_expires_on=card_expiry(jpki_holder.birth_date, clock.today(), profile),
            )
            cert = load_certificate(row)
            cert.verify_directly_issued_by(root)
            (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
            (tmp_path / "ee.pem").write_bytes(cert.public_bytes(Encoding.PEM))
            out = subprocess.run(
                ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "ee.pem")],
                capture_output=True,
                text=True,
            )
            assert out.returncode == 0, out.stdout + out.stderr
        s.commit()
    # A new CA object (a restart) finds the generation's key in the token again.
    with factory() as s:
        ca = CertificationAuthority(
            s, clock, Pkcs11KeyStore(jpki_token.module, jpki_token.token_label, "123456"), BASE_URL
        )
        gen = ca.active(SIGN)
        assert ca.signer_for(gen).public_key() == ca.ca_certificate(gen).public_key()


def public_of(signer: object) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    public = signer.public_key()  # type: ignore[attr-defined]
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return public


@pytest.mark.parametrize("alg", list(Algorithm))
def test_crl_and_ocsp_signed_in_the_token(
    jpki_token: Pkcs11KeyStore, clock: FixedClock, alg: Algorithm
) -> None:
    signer = jpki_token.signer(jpki_token.create(alg, label("crl")))
    issuer = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test issuer")])
    now = clock.now()
    crl = signer.sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(7).revocation_date(now).build()
        )
    )
    assert crl.is_signature_valid(signer.public_key())
    assert crl.get_revoked_certificate_by_serial_number(7) is not None
    # OCSP: a responder certificate issued by the token key, then a response signed by the token.
    self_cert = signer.sign_certificate(
        x509.CertificateBuilder()
        .subject_name(issuer)
        .issuer_name(issuer)
        .public_key(signer.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
    )
    leaf_key = generate_private_key(
        CURRENT.algorithm if alg is Algorithm.RSA2048_SHA256 else NEXT_GEN.algorithm
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(issuer)
        .issuer_name(issuer)
        .public_key(leaf_key.public_key())
        .serial_number(9)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
    )
    leaf_cert = signer.sign_certificate(leaf)
    response = signer.sign_ocsp_response(
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf_cert,
            issuer=self_cert,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now,
            next_update=now + dt.timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, self_cert)
        .certificates([self_cert])
    )
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == 9 and response.certificates == [self_cert]
    # The responder is named by the real key's hash, not by the throwaway key used for the draft.
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(public_of(signer)).digest
    public = signer.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA384()))


def test_ocsp_responder_by_name(jpki_token: Pkcs11KeyStore, clock: FixedClock) -> None:
    signer = jpki_token.signer(jpki_token.create(Algorithm.P384_SHA384, label("ocsp")))
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "responder")])
    now = clock.now()
    cert = signer.sign_certificate(
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_of(signer))
        .serial_number(5)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    response = signer.sign_ocsp_response(
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=now,
            next_update=None,
            revocation_time=now,
            revocation_reason=x509.ReasonFlags.key_compromise,
        )
        .responder_id(ocsp.OCSPResponderEncoding.NAME, cert)
    )
    assert response.responder_name == name and response.certificates == []
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    public_of(signer).verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA384()))  # type: ignore[call-arg,arg-type]
