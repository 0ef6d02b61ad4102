"""Trust stores, one per purpose, and the path from an end-entity certificate to its root generation.

JPKI has two single-tier hierarchies (facts §3.1): the signing CA and the authentication CA, each a
series of self-signed roots with the same DN and different keys. A relying party therefore:

- keeps a :class:`TrustStore` per :class:`Purpose`, so that an authentication certificate can never
  pass as a signature and vice versa; the store refuses a root of the other hierarchy, and every
  end-entity certificate must carry the purpose's policy OID and keyUsage before its chain is built;
- selects the issuer by DN *and then* by authorityKeyIdentifier = subjectKeyIdentifier (several
  generations share the DN), and only then checks the signature.

Fails closed: a certificate that does not positively match every rule is refused with the rule named.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from jlis.jpki import profile
from jlis.jpki.rp.errors import (
    BadSignature,
    CertificateNotValid,
    MalformedMessage,
    UnknownGeneration,
    UntrustedCertificate,
    WrongTrustStore,
)


class Purpose(enum.StrEnum):
    SIGN = "sign"  # 署名用: documents, consents (署名検証者)
    AUTH = "auth"  # 利用者証明用: logins (利用者証明検証者)

    @property
    def label(self) -> str:
        return "署名用 (signing)" if self is Purpose.SIGN else "利用者証明用 (authentication)"

    @property
    def other(self) -> Purpose:
        return Purpose.AUTH if self is Purpose.SIGN else Purpose.SIGN


# Policy OIDs per purpose: the card's and the smartphone's (facts §3.2, §3.7), and the real test
# hierarchy's signing OID so that certificates from J-LIS's test environment are classified too.
POLICIES: dict[Purpose, frozenset[str]] = {
    Purpose.SIGN: frozenset(
        o.dotted_string for o in (profile.POLICY_SIGN, profile.POLICY_SIGN_TEST, profile.POLICY_PHONE_SIGN)
    ),
    Purpose.AUTH: frozenset(o.dotted_string for o in (profile.POLICY_AUTH, profile.POLICY_PHONE_AUTH)),
}
CA_UNITS: dict[Purpose, str] = {Purpose.SIGN: profile.CA_UNIT["sign"], Purpose.AUTH: profile.CA_UNIT["auth"]}


def load_certificate(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise MalformedMessage("certificate", f"must be a DER or PEM X.509 certificate ({exc})") from None


def key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def authority_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def policies_of(certificate: x509.Certificate) -> set[str]:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return set()
    return {p.policy_identifier.dotted_string for p in ext}


def purpose_of(certificate: x509.Certificate) -> Purpose | None:
    """The purpose an end-entity certificate's policy OIDs claim; None when they claim neither."""
    found = policies_of(certificate)
    claims = [p for p in Purpose if found & POLICIES[p]]
    return claims[0] if len(claims) == 1 else None


def _ca_purpose(certificate: x509.Certificate) -> Purpose | None:
    units = {a.value for a in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
    claims = [p for p in Purpose if CA_UNITS[p] in units]
    return claims[0] if len(claims) == 1 else None


def _aware(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at


def check_validity(certificate: x509.Certificate, at: dt.datetime, what: str) -> None:
    at = _aware(at)
    if at < certificate.not_valid_before_utc:
        raise CertificateNotValid(
            what,
            f"is not valid before {certificate.not_valid_before_utc.isoformat()} "
            f"(checked at {at.isoformat()})",
        )
    if at > certificate.not_valid_after_utc:
        raise CertificateNotValid(
            what, f"expired at {certificate.not_valid_after_utc.isoformat()} (checked at {at.isoformat()})"
        )


@dataclass(frozen=True)
class TrustAnchor:
    """One trusted root generation. ``label`` is where it came from (a file name such as ``g2``)."""

    certificate: x509.Certificate
    purpose: Purpose
    label: str

    @property
    def key_id(self) -> bytes:
        ski = key_id(self.certificate)
        assert ski is not None  # TrustStore refuses a root without one
        return ski

    @property
    def name(self) -> str:
        return self.certificate.subject.rfc4514_string()


class TrustStore:
    """The roots trusted for one purpose. Built from certificates; refuses anything but a self-signed
    CA root of that purpose's hierarchy."""

    def __init__(
        self, purpose: Purpose | str, roots: Iterable[x509.Certificate | tuple[str, x509.Certificate]]
    ):
        self.purpose = Purpose(purpose)
        self._anchors: list[TrustAnchor] = []
        for i, item in enumerate(roots):
            label, cert = item if isinstance(item, tuple) else (f"root{i + 1}", item)
            self._add(label, cert)

    def _add(self, label: str, cert: x509.Certificate) -> None:
        field = f"trust[{self.purpose}].{label}"
        if cert.issuer != cert.subject:
            raise UntrustedCertificate(field, "must be a self-signed root (JPKI has no intermediate CA)")
        try:
            cert.verify_directly_issued_by(cert)
        except (ValueError, TypeError, Exception) as exc:  # InvalidSignature is not a ValueError
            raise BadSignature(field, f"a root must verify with its own key ({type(exc).__name__})") from None
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise UntrustedCertificate(field, "must have basicConstraints cA=TRUE")
        if key_id(cert) is None:
            raise UntrustedCertificate(
                field, "must have a subjectKeyIdentifier (generations are told apart by it)"
            )
        ca_purpose = _ca_purpose(cert)
        if ca_purpose is not None and ca_purpose is not self.purpose:
            raise WrongTrustStore(
                field,
                f"is a {ca_purpose.label} CA root and cannot be trusted for {self.purpose.label}",
            )
        if any(a.certificate == cert for a in self._anchors):
            return
        self._anchors.append(TrustAnchor(cert, self.purpose, label))

    @property
    def anchors(self) -> tuple[TrustAnchor, ...]:
        return tuple(self._anchors)

    def __len__(self) -> int:
        return len(self._anchors)

    # --- loading and saving -----------------------------------------------------------------------

    @classmethod
    def from_directory(cls, purpose: Purpose | str, path: Path) -> TrustStore:
        """Every ``*.cer/*.der/*.crt/*.pem`` of ``path/<purpose>/`` (the layout :meth:`export` writes)
        or, when that subdirectory does not exist, of ``path`` itself."""
        purpose = Purpose(purpose)
        folder = path / purpose.value if (path / purpose.value).is_dir() else path
        if not folder.is_dir():
            raise UntrustedCertificate("trust", f"{folder} must be a directory of root certificates")
        roots: list[tuple[str, x509.Certificate]] = []
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in (".cer", ".der", ".crt", ".pem") and file.is_file():
                roots.append((file.stem, load_certificate(file.read_bytes())))
        store = cls(purpose, roots)
        if not store:
            raise UntrustedCertificate("trust", f"{folder} holds no root certificate for {purpose.label}")
        return store

    def export(self, path: Path) -> list[Path]:
        """Write each root as DER to ``path/<purpose>/<label>.cer``; returns the files written."""
        folder = path / self.purpose.value
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for anchor in self._anchors:
            target = folder / f"{anchor.label}.cer"
            target.write_bytes(anchor.certificate.public_bytes(serialization.Encoding.DER))
            written.append(target)
        return written

    # --- path building ----------------------------------------------------------------------------

    def check_purpose(self, certificate: x509.Certificate, field: str = "certificate") -> None:
        """Policy OID and keyUsage must be those of this store's purpose (facts §3.2)."""
        claimed = purpose_of(certificate)
        if claimed is None:
            raise UntrustedCertificate(
                f"{field}.certificatePolicies",
                f"must carry a JPKI {self.purpose.label} policy OID "
                f"({', '.join(sorted(POLICIES[self.purpose]))})",
            )
        if claimed is not self.purpose:
            raise WrongTrustStore(
                field,
                f"is a {claimed.label} certificate; this trust store is for {self.purpose.label} only",
            )
        try:
            ku = certificate.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
        except x509.ExtensionNotFound:
            raise UntrustedCertificate(f"{field}.keyUsage", "must be present") from None
        assert isinstance(ku, x509.KeyUsage)
        if not ku.digital_signature:
            raise UntrustedCertificate(f"{field}.keyUsage", "must allow digitalSignature")
        if self.purpose is Purpose.SIGN and not ku.content_commitment:
            raise WrongTrustStore(f"{field}.keyUsage", "a signing certificate must allow nonRepudiation")
        if self.purpose is Purpose.AUTH and ku.content_commitment:
            raise WrongTrustStore(
                f"{field}.keyUsage", "an authentication certificate must not allow nonRepudiation"
            )

    def anchor_for(self, certificate: x509.Certificate, field: str = "certificate") -> TrustAnchor:
        """The generation that issued ``certificate``: same DN, then AKI = SKI, then the signature."""
        same_dn = [a for a in self._anchors if a.certificate.subject == certificate.issuer]
        if not same_dn:
            raise UntrustedCertificate(
                f"{field}.issuer",
                f"must be a trusted {self.purpose.label} CA; "
                f"no root named {certificate.issuer.rfc4514_string()}",
            )
        aki = authority_key_id(certificate)
        if aki is not None:
            candidates = [a for a in same_dn if a.key_id == aki]
            if not candidates:
                known = ", ".join(f"{a.label}={a.key_id.hex()}" for a in same_dn)
                raise UnknownGeneration(
                    f"{field}.authorityKeyIdentifier",
                    f"must name a trusted generation of {certificate.issuer.rfc4514_string()}: "
                    f"{aki.hex()} is not among {known}",
                )
        else:
            candidates = same_dn  # no AKI: fall back to trying each generation's key
        for anchor in candidates:
            try:
                certificate.verify_directly_issued_by(anchor.certificate)
            except Exception:
                continue
            return anchor
        if aki is None:
            raise UnknownGeneration(
                f"{field}.signature", "must verify with a trusted generation's key (no AKI to select one)"
            )
        raise BadSignature(
            f"{field}.signature", f"must verify with the key of generation {candidates[0].label}"
        )

    def validate(
        self, certificate: x509.Certificate, at: dt.datetime, field: str = "certificate"
    ) -> TrustAnchor:
        """Purpose, chain to a root generation, and validity of both at ``at``."""
        self.check_purpose(certificate, field)
        anchor = self.anchor_for(certificate, field)
        check_validity(anchor.certificate, at, f"{field}.issuer[{anchor.label}]")
        check_validity(certificate, at, field)
        return anchor
