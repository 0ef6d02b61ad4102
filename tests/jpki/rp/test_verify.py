from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from jlis.clock import FixedClock
from jlis.jpki.rp import cms
from jlis.jpki.rp.errors import (
    BadSignature,
    CertificateNotValid,
    CertificateRevoked,
    MalformedMessage,
    UnknownGeneration,
    WrongTrustStore,
)
from jlis.jpki.rp.identity import Era
from jlis.jpki.rp.status import CrlChecker, OcspChecker
from jlis.jpki.rp.trust import Purpose, TrustStore
from jlis.jpki.rp.verify import verify_signature

from .conftest import NOW, FakeFetcher, Leaf, Pki, crl_uri, sign_bytes


def signed(leaf: Leaf, content: bytes = b"document", **kw: object) -> bytes:
    return cms.build(content, leaf.cert, lambda d, h: sign_bytes(leaf.key, d, h), signing_time=NOW, **kw)  # type: ignore[arg-type]


def store(pki: Pki, purpose: str = "sign", *generations: int) -> TrustStore:
    return TrustStore(purpose, [(f"g{g}", pki.root(purpose, g).cert) for g in generations or (1,)])


@pytest.mark.parametrize("alg", ["rsa", "ec"])
def test_round_trip_returns_the_verified_basic4(pki: Pki, rp_clock: FixedClock, alg: str) -> None:
    root = pki.root("sign", 3 if alg == "ec" else 1, alg)
    leaf = pki.leaf(root, alg=alg)
    trust = TrustStore("sign", [("g", root.cert)])
    result = verify_signature(signed(leaf), content=b"document", trust=trust, revocation=None, clock=rp_clock)
    assert result.certificate == leaf.cert
    assert result.hash_name == ("sha256" if alg == "rsa" else "sha384")
    assert result.basic4.name == "山田　太郎"
    assert result.basic4.birth_date == dt.date(1990, 1, 2)
    assert result.basic4.birth_era is Era.HEISEI
    assert result.basic4.sex == "male"
    assert result.basic4.address == "東京都千代田区千代田１－１"
    assert result.revocation is None
    assert result.serial == format(leaf.cert.serial_number, "x")


def test_attached_content_needs_no_separate_content(pki: Pki, rp_clock: FixedClock) -> None:
    leaf = pki.leaf(pki.root("sign"))
    result = verify_signature(signed(leaf, detached=False), trust=store(pki), revocation=None, clock=rp_clock)
    assert result.content == b"document"
    with pytest.raises(BadSignature, match="encapsulated"):
        verify_signature(
            signed(leaf, detached=False), content=b"other", trust=store(pki), revocation=None, clock=rp_clock
        )


def test_detached_without_content_is_refused(pki: Pki, rp_clock: FixedClock) -> None:
    leaf = pki.leaf(pki.root("sign"))
    with pytest.raises(MalformedMessage, match="detached"):
        verify_signature(signed(leaf), trust=store(pki), revocation=None, clock=rp_clock)


def test_tampered_content_fails(pki: Pki, rp_clock: FixedClock) -> None:
    leaf = pki.leaf(pki.root("sign"))
    with pytest.raises(BadSignature) as err:
        verify_signature(signed(leaf), content=b"documenT", trust=store(pki), revocation=None, clock=rp_clock)
    assert err.value.field == "content"


def test_tampered_signature_fails(pki: Pki, rp_clock: FixedClock) -> None:
    leaf = pki.leaf(pki.root("sign"))
    der = bytearray(signed(leaf))
    der[-5] ^= 1  # the signature value is the last element of the SignerInfo
    with pytest.raises(BadSignature) as err:
        verify_signature(bytes(der), content=b"document", trust=store(pki), revocation=None, clock=rp_clock)
    assert err.value.field == "cms.signature"


def test_a_certificate_signed_by_an_untrusted_key_fails(pki: Pki, rp_clock: FixedClock) -> None:
    """Same DN and same key identifier as a trusted root, but another key: the signature decides."""
    from cryptography.hazmat.primitives import hashes

    leaf = pki.leaf(pki.root("sign"))
    impostor_key = pki.leaf(pki.root("sign"), key=None).key
    forged = (
        x509.CertificateBuilder()
        .subject_name(leaf.cert.subject)
        .issuer_name(leaf.cert.issuer)
        .public_key(leaf.key.public_key())
        .serial_number(leaf.cert.serial_number)
        .not_valid_before(leaf.cert.not_valid_before_utc)
        .not_valid_after(leaf.cert.not_valid_after_utc)
    )
    for ext in leaf.cert.extensions:
        forged = forged.add_extension(ext.value, ext.critical)
    forged_cert = forged.sign(impostor_key, hashes.SHA256())  # type: ignore[arg-type]
    der = cms.build(b"d", forged_cert, lambda d, h: sign_bytes(leaf.key, d, h), signing_time=NOW)
    with pytest.raises(BadSignature, match="generation"):
        verify_signature(der, content=b"d", trust=store(pki), revocation=None, clock=rp_clock)


def test_an_authentication_certificate_never_verifies_as_a_signature(pki: Pki, rp_clock: FixedClock) -> None:
    auth_leaf = pki.leaf(pki.root("auth"))
    der = signed(auth_leaf)
    # against the signing store: its policy says authentication
    with pytest.raises(WrongTrustStore, match="authentication"):
        verify_signature(der, content=b"document", trust=store(pki), revocation=None, clock=rp_clock)
    # and an authentication store is refused for signatures outright
    with pytest.raises(WrongTrustStore):
        verify_signature(der, content=b"document", trust=store(pki, "auth"), revocation=None, clock=rp_clock)


def test_a_signing_certificate_with_the_auth_policy_but_no_nonrepudiation_is_refused(
    pki: Pki, rp_clock: FixedClock
) -> None:
    # A signing-CA certificate whose policy is the signing one but that lacks nonRepudiation.
    leaf = pki.leaf(pki.root("sign"), purpose="auth", policy="1.2.392.200149.8.5.1.1.20")
    with pytest.raises(WrongTrustStore, match="nonRepudiation"):
        verify_signature(signed(leaf), content=b"document", trust=store(pki), revocation=None, clock=rp_clock)


def test_verification_picks_the_right_generation_after_a_rollover(pki: Pki, rp_clock: FixedClock) -> None:
    old = pki.leaf(pki.root("sign", 1))
    new = pki.leaf(pki.root("sign", 2))
    both = store(pki, "sign", 1, 2)
    assert (
        verify_signature(
            signed(old), content=b"document", trust=both, revocation=None, clock=rp_clock
        ).anchor.label
        == "g1"
    )
    assert (
        verify_signature(
            signed(new), content=b"document", trust=both, revocation=None, clock=rp_clock
        ).anchor.label
        == "g2"
    )
    with pytest.raises(UnknownGeneration, match="authorityKeyIdentifier"):
        verify_signature(
            signed(new), content=b"document", trust=store(pki, "sign", 1), revocation=None, clock=rp_clock
        )


def test_without_aki_the_generation_is_found_by_signature(pki: Pki, rp_clock: FixedClock) -> None:
    leaf = pki.leaf(pki.root("sign", 2), aki=False)
    result = verify_signature(
        signed(leaf), content=b"document", trust=store(pki, "sign", 1, 2), revocation=None, clock=rp_clock
    )
    assert result.anchor.label == "g2"


def test_expired_certificate_fails(pki: Pki, rp_clock: FixedClock) -> None:
    leaf = pki.leaf(
        pki.root("sign"), not_before=NOW - dt.timedelta(days=400), not_after=NOW + dt.timedelta(days=1)
    )
    der = signed(leaf)
    rp_clock.advance(days=2)
    with pytest.raises(CertificateNotValid, match="expired"):
        verify_signature(der, content=b"document", trust=store(pki), revocation=None, clock=rp_clock)


def test_signing_time_in_the_future_fails(pki: Pki, rp_clock: FixedClock) -> None:
    leaf = pki.leaf(pki.root("sign"))
    der = cms.build(
        b"d", leaf.cert, lambda d, h: sign_bytes(leaf.key, d, h), signing_time=NOW + dt.timedelta(hours=1)
    )
    with pytest.raises(CertificateNotValid, match="future"):
        verify_signature(der, content=b"d", trust=store(pki), revocation=None, clock=rp_clock)


def test_revoked_by_ocsp_fails(pki: Pki, rp_clock: FixedClock, fetcher: FakeFetcher) -> None:
    leaf = pki.leaf(pki.root("sign"))
    fetcher.serve(
        "http://jlis.test/jpki/ocsp/sign",
        pki.ocsp_answer(
            leaf, status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.affiliation_changed
        ),
    )
    checker = OcspChecker(fetcher, token="tok")
    with pytest.raises(CertificateRevoked, match="affiliationChanged") as err:
        verify_signature(
            signed(leaf), content=b"document", trust=store(pki), revocation=checker, clock=rp_clock
        )
    assert err.value.reason == "affiliationChanged"
    assert fetcher.calls[0][3]["Authorization"] == "Bearer tok"


def test_good_by_ocsp_is_reported(pki: Pki, rp_clock: FixedClock, fetcher: FakeFetcher) -> None:
    leaf = pki.leaf(pki.root("sign"))
    fetcher.serve("http://jlis.test/jpki/ocsp/sign", pki.ocsp_answer(leaf))
    result = verify_signature(
        signed(leaf), content=b"document", trust=store(pki), revocation=OcspChecker(fetcher), clock=rp_clock
    )
    assert result.revocation is not None and result.revocation.method == "ocsp"


def test_revoked_by_crl_fails(pki: Pki, rp_clock: FixedClock, fetcher: FakeFetcher) -> None:
    root = pki.root("sign")
    leaf = pki.leaf(root)
    crl = pki.crl(root, [(leaf.cert, x509.ReasonFlags.key_compromise)], lg_code="131016")
    from cryptography.hazmat.primitives import serialization

    fetcher.serve(crl_uri(root, "131016"), crl.public_bytes(serialization.Encoding.DER))
    with pytest.raises(CertificateRevoked, match="keyCompromise"):
        verify_signature(
            signed(leaf),
            content=b"document",
            trust=store(pki),
            revocation=CrlChecker(fetcher),
            clock=rp_clock,
        )


def test_a_store_refuses_a_root_of_the_other_hierarchy(pki: Pki) -> None:
    with pytest.raises(WrongTrustStore, match="authentication"):
        TrustStore(Purpose.SIGN, [pki.root("auth").cert])
