"""Revocation checks for a relying party: OCSP (RFC 6960) or a CRL partition (RFC 5280).

Both answer :meth:`RevocationChecker.check` for one end-entity certificate and the root generation
that issued it, and fail closed: an answer that cannot be authenticated (bad signature, a responder
not delegated by *that* generation, a stale or foreign CRL, the wrong nonce) is an error, never a pass.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import keys as akeys
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from jlis.jpki.rp.errors import CertificateRevoked, RevocationCheckFailed, RevocationUnknown
from jlis.jpki.rp.http import Fetcher, FetchFailed
from jlis.jpki.rp.trust import TrustAnchor, check_validity, key_id

SKEW = dt.timedelta(minutes=5)  # clock difference tolerated between us and the responder


@dataclass(frozen=True)
class RevocationResult:
    """A positive "not revoked" answer and where it came from."""

    method: str  # "ocsp" or "crl"
    source: str  # the URL asked, or the CRL file
    this_update: dt.datetime
    next_update: dt.datetime | None
    produced_at: dt.datetime | None = None  # OCSP only

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "source": self.source,
            "this_update": self.this_update.isoformat(),
            "next_update": self.next_update.isoformat() if self.next_update else None,
        }


class RevocationChecker(Protocol):
    def check(self, certificate: x509.Certificate, anchor: TrustAnchor, at: dt.datetime) -> RevocationResult:
        """Return when ``certificate`` is positively not revoked at ``at``; raise otherwise."""
        ...


def _reason_text(reason: x509.ReasonFlags | None) -> str | None:
    return reason.value if reason is not None else None


def _revoked(field: str, at: dt.datetime, reason: x509.ReasonFlags | None, source: str) -> CertificateRevoked:
    if reason is x509.ReasonFlags.certificate_hold:
        rule = f"is on hold (一時保留) since {at.isoformat()}"
    else:
        rule = f"was revoked at {at.isoformat()}" + (f" ({reason.value})" if reason else "")
    return CertificateRevoked(field, rule, revoked_at=at, reason=_reason_text(reason), source=source)


def signature_valid(
    public_key: object, signature: bytes, data: bytes, hash_alg: hashes.HashAlgorithm | None
) -> bool:
    if hash_alg is None:
        return False
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hash_alg)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_alg))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _key_hash(certificate: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING (RFC 6960 ResponderID byKey, CertID issuerKeyHash)."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest: bytes = akeys.PublicKeyInfo.load(spki).sha1
    return digest


# --- OCSP ------------------------------------------------------------------------------------------


def ocsp_urls(certificate: x509.Certificate) -> list[str]:
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


class OcspChecker:
    """Asks an OCSP responder by HTTP POST (RFC 6960 Appendix A) with the verifier's bearer token.

    ``url`` overrides the certificate's AIA. A nonce is sent; JPKI's responder (like ours) may answer
    with a pre-signed response without it (RFC 8954 allows that), so an absent nonce is accepted
    unless ``require_nonce``, but a *different* nonce never is. Freshness: thisUpdate not in the
    future, nextUpdate not past, and, with ``max_age``, thisUpdate no older than that."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        url: str | None = None,
        token: str | None = None,
        require_nonce: bool = False,
        max_age: dt.timedelta | None = None,
        cert_id_hash: hashes.HashAlgorithm | None = None,
        nonce_source: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.fetcher = fetcher
        self.url = url
        self.token = token
        self.require_nonce = require_nonce
        self.max_age = max_age
        self.cert_id_hash = cert_id_hash or hashes.SHA1()
        self.nonce_source = nonce_source

    def request(self, certificate: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
        """DER OCSPRequest for one certificate, and the nonce it carries."""
        nonce = self.nonce_source(16)
        req = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, self.cert_id_hash)
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        return req.public_bytes(serialization.Encoding.DER), nonce

    def check(self, certificate: x509.Certificate, anchor: TrustAnchor, at: dt.datetime) -> RevocationResult:
        urls = [self.url] if self.url else ocsp_urls(certificate)
        if not urls:
            raise RevocationCheckFailed(
                "certificate.authorityInfoAccess", "must name an OCSP responder (or give the URL)"
            )
        url = urls[0]
        body, nonce = self.request(certificate, anchor.certificate)
        headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            reply = self.fetcher.post(url, body, headers)
        except FetchFailed as exc:
            raise RevocationCheckFailed("ocsp", f"responder must be reachable: {exc}") from None
        if reply.status in (401, 403):
            raise RevocationCheckFailed(
                "ocsp.token",
                f"the responder refused this verifier (HTTP {reply.status}): a registered "
                "verifier's bearer token is required",
            )
        if reply.status != 200:
            raise RevocationCheckFailed("ocsp", f"responder answered HTTP {reply.status} at {url}")
        return self.evaluate(reply.body, certificate, anchor, at, nonce=nonce, source=url)

    def evaluate(
        self,
        der: bytes,
        certificate: x509.Certificate,
        anchor: TrustAnchor,
        at: dt.datetime,
        *,
        nonce: bytes | None,
        source: str,
    ) -> RevocationResult:
        """Authenticate an OCSP response and read this certificate's status from it."""
        try:
            resp = ocsp.load_der_ocsp_response(der)
        except ValueError as exc:
            raise RevocationCheckFailed("ocsp.response", f"must be a DER OCSPResponse ({exc})") from None
        if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RevocationCheckFailed(
                "ocsp.responseStatus", f"must be successful, got {resp.response_status.name.lower()}"
            )
        issuer = anchor.certificate
        signer = self._responder(resp, issuer, at)
        if not signature_valid(
            signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm
        ):
            raise RevocationCheckFailed("ocsp.signature", "must verify with the responder's key")
        try:
            echoed = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed is not None and nonce is not None and echoed != nonce:
            raise RevocationCheckFailed("ocsp.nonce", "must echo the request's nonce (replayed answer?)")
        if echoed is None and self.require_nonce:
            raise RevocationCheckFailed("ocsp.nonce", "must be echoed (require_nonce is set)")
        issuer_key_hash = _key_hash(issuer)
        single = None
        for r in resp.responses:
            if r.serial_number != certificate.serial_number:
                continue
            if isinstance(r.hash_algorithm, hashes.SHA1) and r.issuer_key_hash != issuer_key_hash:
                continue
            if not isinstance(r.hash_algorithm, hashes.SHA1):
                spki = issuer.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                bits = akeys.PublicKeyInfo.load(spki)["public_key"].contents[1:]
                h = hashes.Hash(r.hash_algorithm)
                h.update(bits)
                if r.issuer_key_hash != h.finalize():
                    continue
            single = r
            break
        if single is None:
            raise RevocationCheckFailed("ocsp.responses", "must answer for this certificate and generation")
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        if this_update > at + SKEW:
            raise RevocationCheckFailed(
                "ocsp.thisUpdate", f"must not be in the future ({this_update.isoformat()})"
            )
        if next_update is not None and next_update + SKEW < at:
            raise RevocationCheckFailed(
                "ocsp.nextUpdate", f"stale answer: next update was {next_update.isoformat()}"
            )
        if self.max_age is not None and at - this_update > self.max_age:
            raise RevocationCheckFailed(
                "ocsp.thisUpdate", f"must be newer than {self.max_age} ({this_update.isoformat()})"
            )
        if next_update is None and echoed is None and self.max_age is None:
            raise RevocationCheckFailed(
                "ocsp.nextUpdate", "an answer with neither nextUpdate nor our nonce cannot be judged fresh"
            )
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.REVOKED:
            revoked_at = single.revocation_time_utc
            assert revoked_at is not None
            raise _revoked("certificate", revoked_at, single.revocation_reason, f"OCSP {source}")
        if status is ocsp.OCSPCertStatus.UNKNOWN:
            raise RevocationUnknown("certificate", f"is unknown to the OCSP responder {source}")
        return RevocationResult("ocsp", source, this_update, next_update, resp.produced_at_utc)

    @staticmethod
    def _responder(resp: ocsp.OCSPResponse, issuer: x509.Certificate, at: dt.datetime) -> x509.Certificate:
        """The issuer itself, or a responder certificate the issuer (this very generation) delegated
        with id-kp-OCSPSigning (RFC 6960 §4.2.2.2)."""

        def matches(cert: x509.Certificate) -> bool:
            if resp.responder_name is not None:
                return cert.subject == resp.responder_name
            return _key_hash(cert) == resp.responder_key_hash

        if matches(issuer):
            return issuer
        for cert in resp.certificates:
            if not matches(cert):
                continue
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                raise RevocationCheckFailed(
                    "ocsp.responder", "must be delegated by the certificate's own CA generation"
                ) from None
            try:
                eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                eku = None
            if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                raise RevocationCheckFailed("ocsp.responder", "must carry extendedKeyUsage id-kp-OCSPSigning")
            check_validity(cert, at, "ocsp.responder")
            return cert
        raise RevocationCheckFailed(
            "ocsp.responder", "must be the CA or a responder certificate it delegated"
        )


# --- CRL -------------------------------------------------------------------------------------------


def crl_urls(certificate: x509.Certificate) -> list[str]:
    try:
        dps = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for dp in dps
        for name in (dp.full_name or [])
        if isinstance(name, x509.UniformResourceIdentifier)
        and name.value.lower().startswith(("http://", "https://"))
    ]


def load_crl(data: bytes, source: str = "crl") -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise RevocationCheckFailed(source, f"must be a DER or PEM CRL ({exc})") from None


class CrlChecker:
    """Checks against CRLs: the partitions named in the certificate's CRL distribution points,
    fetched (with the verifier's token, when given) and cached until their nextUpdate, or CRLs the
    caller loaded (``crls``, e.g. files a batch job downloaded)."""

    def __init__(
        self,
        fetcher: Fetcher | None = None,
        *,
        crls: Iterable[tuple[str, x509.CertificateRevocationList]] = (),
        token: str | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.token = token
        self._given = list(crls)
        self._cache: dict[str, x509.CertificateRevocationList] = {}

    def _fetch(self, url: str, at: dt.datetime) -> x509.CertificateRevocationList:
        cached = self._cache.get(url)
        if cached is not None and (cached.next_update_utc is None or cached.next_update_utc >= at):
            return cached
        assert self.fetcher is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            reply = self.fetcher.get(url, headers)
        except FetchFailed as exc:
            raise RevocationCheckFailed("crl", f"distribution point must be reachable: {exc}") from None
        if reply.status != 200:
            raise RevocationCheckFailed("crl", f"distribution point answered HTTP {reply.status} at {url}")
        crl = load_crl(reply.body, url)
        self._cache[url] = crl
        return crl

    def check(self, certificate: x509.Certificate, anchor: TrustAnchor, at: dt.datetime) -> RevocationResult:
        if self._given:
            candidates = [(src, c) for src, c in self._given if c.issuer == anchor.certificate.subject]
            if not candidates:
                raise RevocationCheckFailed(
                    "crl", f"no CRL given was issued by {anchor.certificate.subject.rfc4514_string()}"
                )
            errors: list[RevocationCheckFailed] = []
            for src, crl in candidates:
                try:
                    return self._judge(crl, src, certificate, anchor, at)
                except RevocationCheckFailed as exc:  # another generation's or partition's CRL
                    errors.append(exc)
            raise errors[0]
        if self.fetcher is None:
            raise RevocationCheckFailed("crl", "give CRLs or a fetcher for the distribution points")
        urls = crl_urls(certificate)
        if not urls:
            raise RevocationCheckFailed("certificate.cRLDistributionPoints", "must name an HTTP CRL URI")
        return self._judge(self._fetch(urls[0], at), urls[0], certificate, anchor, at)

    def _judge(
        self,
        crl: x509.CertificateRevocationList,
        source: str,
        certificate: x509.Certificate,
        anchor: TrustAnchor,
        at: dt.datetime,
    ) -> RevocationResult:
        issuer = anchor.certificate
        if crl.issuer != issuer.subject:
            raise RevocationCheckFailed("crl.issuer", "must be the certificate's CA")
        aki = authority_key_id_of_crl(crl)
        if aki is not None and aki != key_id(issuer):
            raise RevocationCheckFailed(
                "crl.authorityKeyIdentifier",
                f"must be generation {anchor.label}'s key (another generation's CRL)",
            )
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise RevocationCheckFailed("crl.signature", f"must verify with generation {anchor.label}'s key")
        if crl.last_update_utc > at + SKEW:
            raise RevocationCheckFailed("crl.thisUpdate", "must not be in the future")
        if crl.next_update_utc is not None and crl.next_update_utc + SKEW < at:
            raise RevocationCheckFailed(
                "crl.nextUpdate", f"stale CRL: next update was {crl.next_update_utc.isoformat()}"
            )
        _check_scope(crl, certificate)
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is not None:
            try:
                reason: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(
                    x509.CRLReason
                ).value.reason
            except x509.ExtensionNotFound:
                reason = None
            raise _revoked("certificate", entry.revocation_date_utc, reason, f"CRL {source}")
        return RevocationResult("crl", source, crl.last_update_utc, crl.next_update_utc)


def authority_key_id_of_crl(crl: x509.CertificateRevocationList) -> bytes | None:
    try:
        return crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _check_scope(crl: x509.CertificateRevocationList, certificate: x509.Certificate) -> None:
    """A partitioned CRL (IssuingDistributionPoint) answers only for certificates that name that
    partition: a certificate absent from another municipality's partition is *not* thereby good."""
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return  # a full CRL covers every certificate of its issuer
    if idp.only_contains_ca_certs or idp.only_contains_attribute_certs:
        raise RevocationCheckFailed("crl.issuingDistributionPoint", "must cover end-entity certificates")
    if idp.full_name is None:
        return
    try:
        dps = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        dps = None
    names = {n for dp in (dps or []) for n in (dp.full_name or [])}
    if not names & set(idp.full_name):
        raise RevocationCheckFailed(
            "crl.issuingDistributionPoint",
            "must be the partition named in the certificate's CRL distribution point",
        )
