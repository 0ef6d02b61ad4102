"""Verify a JPKI CMS signature and return the signer's verified 基本4情報.

Order of checks (each failure names its rule): the CMS shape; the content against messageDigest; the
ESS signing-certificate binding; the signature over the signed attributes with the signer's key; the
signer certificate's purpose (policy OID, keyUsage) against the trust store's; its chain to the
right root *generation* (DN, then AKI = SKI, then signature); validity of both at the time of the
check; revocation (OCSP or CRL). Only then are the SAN otherNames decoded.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jlis.clock import Clock
from jlis.jpki.rp import cms
from jlis.jpki.rp.errors import BadSignature, CertificateNotValid, MalformedMessage, WrongTrustStore
from jlis.jpki.rp.identity import Basic4, basic4_from_certificate
from jlis.jpki.rp.status import RevocationChecker, RevocationResult, signature_valid
from jlis.jpki.rp.trust import Purpose, TrustAnchor, TrustStore

FUTURE_SKEW = dt.timedelta(minutes=5)  # a signingTime further ahead than this is refused


@dataclass(frozen=True)
class VerifiedCertificate:
    """A certificate checked against a trust store (and, unless skipped, revocation)."""

    certificate: x509.Certificate
    anchor: TrustAnchor
    checked_at: dt.datetime
    revocation: RevocationResult | None  # None: the caller explicitly skipped the check

    @property
    def issuer(self) -> str:
        return self.certificate.issuer.rfc4514_string()

    @property
    def serial(self) -> str:
        """発行番号 as lower-case hex (how the jpki tables store it)."""
        return format(self.certificate.serial_number, "x")


@dataclass(frozen=True)
class VerifiedSignature(VerifiedCertificate):
    content: bytes
    signing_time: dt.datetime | None
    hash_name: str
    basic4: Basic4

    def to_dict(self) -> dict[str, object]:
        return {
            "valid": True,
            "signer": {
                "issuer": self.issuer,
                "serial": self.serial,
                "subject": self.certificate.subject.rfc4514_string(),
                "generation": self.anchor.label,
                "not_after": self.certificate.not_valid_after_utc.isoformat(),
            },
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "checked_at": self.checked_at.isoformat(),
            "hash": self.hash_name,
            "revocation": self.revocation.to_dict() if self.revocation else None,
            "basic4": self.basic4.to_dict(),
        }


def verify_certificate(
    certificate: x509.Certificate,
    *,
    trust: TrustStore,
    revocation: RevocationChecker | None,
    at: dt.datetime,
) -> VerifiedCertificate:
    """Purpose, chain to the right generation, validity and revocation of one certificate.
    ``revocation`` must be given; ``None`` skips the check, and the result says so."""
    anchor = trust.validate(certificate, at)
    result = revocation.check(certificate, anchor, at) if revocation is not None else None
    return VerifiedCertificate(certificate, anchor, at, result)


def verify_signature(
    data: bytes,
    *,
    trust: TrustStore,
    revocation: RevocationChecker | None,
    clock: Clock,
    content: bytes | None = None,
    at: dt.datetime | None = None,
) -> VerifiedSignature:
    """Verify a CMS SignedData (DER or PEM) made with a JPKI signing certificate.

    ``content`` is required for a detached signature, and must equal the encapsulated content when
    both are present. The certificate is checked at ``at`` (default: now), which is also when the
    revocation status must hold: a JPKI signature without a time-stamp is only as good as its
    certificate is today. ``trust`` must be a signing (署名用) trust store."""
    if trust.purpose is not Purpose.SIGN:
        raise WrongTrustStore("trust", f"a signature is verified against a {Purpose.SIGN.label} trust store")
    view = cms.parse(data)
    if (
        view.encapsulated is not None
        and content is not None
        and not hmac.compare_digest(view.encapsulated, content)
    ):
        raise BadSignature("content", "must equal the content encapsulated in the signature")
    signed_content = view.encapsulated if view.encapsulated is not None else content
    if signed_content is None:
        raise MalformedMessage("content", "is required: the signature is detached")
    if not hmac.compare_digest(cms.digest(view.hash_name, signed_content), view.message_digest):
        raise BadSignature("content", "does not match the signed messageDigest (altered after signing?)")
    _check_ess(view)
    cert = view.signer_certificate
    expected_hash = cms.hash_for_key(cert.public_key())
    if view.hash_name != expected_hash:
        raise MalformedMessage("cms.digestAlgorithm", f"must be {expected_hash} for this key")
    if not _signature_algorithm_fits(view.signature_algorithm, view.hash_name):
        raise MalformedMessage(
            "cms.signatureAlgorithm", f"{view.signature_algorithm} does not fit the key and hash"
        )
    hash_alg = cms.HASHES[view.hash_name]()
    if not signature_valid(cert.public_key(), view.signature, view.signed_bytes, hash_alg):
        raise BadSignature("cms.signature", "must verify with the signer certificate's key")
    now = at or clock.now()
    if view.signing_time is not None:
        if view.signing_time > now + FUTURE_SKEW:
            raise CertificateNotValid(
                "cms.signingTime", f"must not be in the future ({view.signing_time.isoformat()})"
            )
        if not (cert.not_valid_before_utc <= view.signing_time <= cert.not_valid_after_utc):
            raise CertificateNotValid("cms.signingTime", "must fall within the signer certificate's validity")
    checked = verify_certificate(cert, trust=trust, revocation=revocation, at=now)
    return VerifiedSignature(
        certificate=cert,
        anchor=checked.anchor,
        checked_at=now,
        revocation=checked.revocation,
        content=signed_content,
        signing_time=view.signing_time,
        hash_name=view.hash_name,
        basic4=basic4_from_certificate(cert),
    )


def _signature_algorithm_fits(name: str, hash_name: str) -> bool:
    return name in ("rsassa_pkcs1v15", f"{hash_name}_rsa", f"{hash_name}_ecdsa")


def _check_ess(view: cms.SignerView) -> None:
    """ESS signing-certificate-v2 (RFC 5035), when present, binds the signature to the certificate:
    a certificate swapped into the bag with the same key would be refused."""
    if not view.ess_cert_hashes:
        return
    der = view.signer_certificate.public_bytes(serialization.Encoding.DER)
    for hash_name, value in view.ess_cert_hashes:
        if hash_name in cms.HASHES and hmac.compare_digest(cms.digest(hash_name, der), value):
            return
    raise BadSignature("cms.signedAttrs.signingCertificateV2", "must name the signer's certificate")
