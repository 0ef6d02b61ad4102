from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from jlis.jpki.rp.errors import (
    CertificateNotValid,
    MalformedMessage,
    UntrustedCertificate,
    WrongTrustStore,
)
from jlis.jpki.rp.trust import Purpose, TrustStore, purpose_of

from .conftest import NOW, Pki, rsa_key


def test_purpose_is_read_from_the_policy(pki: Pki) -> None:
    assert purpose_of(pki.leaf(pki.root("sign")).cert) is Purpose.SIGN
    assert purpose_of(pki.leaf(pki.root("auth")).cert) is Purpose.AUTH
    assert purpose_of(pki.leaf(pki.root("sign"), policy="1.2.3.4").cert) is None


def test_export_and_load_round_trip(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore("sign", [("g1", pki.root("sign", 1).cert), ("g2", pki.root("sign", 2).cert)])
    files = store.export(tmp_path)
    assert sorted(f.name for f in files) == ["g1.cer", "g2.cer"]
    again = TrustStore.from_directory("sign", tmp_path)
    assert [a.label for a in again.anchors] == ["g1", "g2"]
    # The purpose's subdirectory is used when present: the auth store finds nothing there.
    with pytest.raises(UntrustedCertificate, match="directory"):
        TrustStore.from_directory("auth", tmp_path / "missing")


def test_pem_files_load_and_garbage_is_named(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "g1.pem").write_bytes(pki.root("auth").cert.public_bytes(serialization.Encoding.PEM))
    assert len(TrustStore.from_directory("auth", tmp_path)) == 1
    (tmp_path / "bad.cer").write_bytes(b"nope")
    with pytest.raises(MalformedMessage, match="certificate"):
        TrustStore.from_directory("auth", tmp_path)


def test_a_leaf_is_not_a_root(pki: Pki) -> None:
    with pytest.raises(UntrustedCertificate, match="self-signed"):
        TrustStore("sign", [pki.leaf(pki.root("sign")).cert])


def test_a_self_signed_non_ca_is_refused() -> None:
    key = rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(UntrustedCertificate, match="cA=TRUE"):
        TrustStore("sign", [cert])


def test_auth_store_refuses_signing_certificates(pki: Pki) -> None:
    store = TrustStore("auth", [pki.root("auth").cert])
    store.validate(pki.leaf(pki.root("auth")).cert, NOW)
    with pytest.raises(WrongTrustStore, match="署名用"):
        store.validate(pki.leaf(pki.root("sign")).cert, NOW)
    # A certificate with the auth policy that allows nonRepudiation is not a plain auth certificate.
    odd = pki.leaf(pki.root("auth"), purpose="sign", policy="1.2.392.200149.8.5.1.3.30")
    with pytest.raises(WrongTrustStore, match="nonRepudiation"):
        store.validate(odd.cert, NOW)


def test_unknown_issuer_dn(pki: Pki) -> None:
    store = TrustStore("sign", [pki.root("sign").cert])
    leaf = pki.leaf(pki.root("sign"))
    other = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other CA")])
    with pytest.raises(UntrustedCertificate, match="no root named"):
        store.anchor_for(_with_issuer(leaf.cert, other, pki))


def _with_issuer(cert: x509.Certificate, issuer: x509.Name, pki: Pki) -> x509.Certificate:
    key = pki.root("sign").key
    b = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(issuer)
        .public_key(cert.public_key())  # type: ignore[arg-type]
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    return b.sign(key, hashes.SHA256())  # type: ignore[arg-type]


def test_root_validity_is_checked(pki: Pki) -> None:
    store = TrustStore("sign", [("g1", pki.root("sign").cert)])
    leaf = pki.leaf(pki.root("sign"))
    with pytest.raises(CertificateNotValid, match=r"issuer\[g1\]"):
        store.validate(leaf.cert, NOW + dt.timedelta(days=365 * 25))
