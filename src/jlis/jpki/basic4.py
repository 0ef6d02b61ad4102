"""最新の基本4情報の提供 (公的個人認証法, 2021 amendment; facts §3.6): a registered 署名検証者 that
holds a user's signing certificate — typically one that has since been revoked because the user
moved or married — receives the user's *latest* name, address, birth date and sex, provided the user
consents in a document signed with their *current* signing certificate.

The consent is a CMS SignedData (RFC 5652) with the content attached, signed with signed attributes
(contentType, messageDigest) as a JPKI signature is, whose content is this JSON (UTF-8)::

    {"type": "jpki-basic4-consent", "verifier_id": "bank-a", "purpose": "住所変更の確認",
     "certificate_serial": "<hex serial of the certificate the verifier holds>",
     "nonce": "<at least 8 characters>", "issued_at": "2026-11-26T10:00:00+09:00",
     "valid_until": "2026-12-26T10:00:00+09:00"}

It is accepted only if every rule holds (each refusal names the rule, is recorded and commits before
:class:`jlis.errors.Forbidden` is raised, as the 住基ネット provision does):

1. the caller is an active, registered 署名検証者;
2. the held certificate is a signing certificate this CA issued;
3. the consent parses, its messageDigest matches its content, its signature verifies with the key of
   the certificate inside it, and that certificate is a signing certificate this CA issued, good (not
   revoked, not on hold) and within its validity now;
4. the signer is the same person as the holder of the held certificate (the same 住民票コード, or one
   that replaced it);
5. the content names this verifier and the held certificate's serial, was issued no later than now
   (plus :data:`CLOCK_SKEW`), is valid now, and for at most :data:`MAX_CONSENT_VALIDITY`.

The answer is read from the 機構保存本人確認情報 (the national copy of jlis.juki) and recorded in the
status-query log (channel ``basic4``) and the ``access`` audit chain, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import Clock
from jlis.db import transaction
from jlis.errors import Forbidden
from jlis.jpki.tables import GOOD, SIGN, CaGenerationRow, CertificateRow, ConsentRow
from jlis.jpki.verifiers import QueryRecord, Verifier, check_purpose, write_records
from jlis.juki.provision import current_national_record, linked_codes

ACCESS_LOG = AuditLog("access")
CONSENT_TYPE = "jpki-basic4-consent"
MAX_CONSENT_BYTES = 64 * 1024
MAX_CERTIFICATE_BYTES = 16 * 1024
MAX_CONSENT_VALIDITY = dt.timedelta(days=366)
CLOCK_SKEW = dt.timedelta(minutes=5)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class ConsentRefused(Forbidden):
    """The request for the latest 基本4情報 is refused; ``rule`` says which rule failed."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}", field=field, rule=rule)
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class Basic4:
    """The latest 基本4情報 (the national copy's current record)."""

    name: str
    birth_date: dt.date
    sex: str  # as the register stores it: male / female
    address: str
    as_of: dt.date  # the date of the last change (異動年月日)
    status: str  # active / moving_out / removed


@dataclass(frozen=True)
class Basic4Result:
    basic4: Basic4 | None
    certificate_serial: str
    refusal: ConsentRefused | None = None

    def raise_if_refused(self) -> Basic4:
        if self.refusal is not None:
            raise self.refusal
        assert self.basic4 is not None
        return self.basic4


@dataclass(frozen=True)
class ConsentDocument:
    content: bytes
    signer: x509.Certificate


def parse_consent(data: bytes) -> ConsentDocument:
    """The content and signer of a CMS SignedData whose signature verifies. Raises ConsentRefused."""
    if not isinstance(data, bytes | bytearray) or not data or len(data) > MAX_CONSENT_BYTES:
        raise ConsentRefused("consent", f"must be a CMS SignedData of at most {MAX_CONSENT_BYTES} bytes")
    try:
        info = cms.ContentInfo.load(bytes(data), strict=True)
        if info["content_type"].native != "signed_data":
            raise ConsentRefused("consent", "must be a CMS SignedData")
        sd = info["content"]
        content = sd["encap_content_info"]["content"]
        if isinstance(content, core.Void) or content.native is None:
            raise ConsentRefused("consent", "must carry its content (not detached)")
        body = bytes(content.native)
        infos = list(sd["signer_infos"])
        if len(infos) != 1:
            raise ConsentRefused("consent", "must have exactly one signer")
        si = infos[0]
        hash_name = si["digest_algorithm"]["algorithm"].native
        if hash_name not in _HASHES:
            raise ConsentRefused("consent", "must be digested with SHA-256, SHA-384 or SHA-512")
        attrs = si["signed_attrs"]
        if isinstance(attrs, core.Void) or not len(attrs):
            raise ConsentRefused("consent", "must have signed attributes")
        digests = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
        if len(digests) != 1 or digests[0] != hashlib.new(hash_name, body).digest():
            raise ConsentRefused("consent", "messageDigest must match the content")
        signed_bytes = b"\x31" + attrs.dump()[1:]  # the SET OF the attributes is what was signed
        signature = bytes(si["signature"].native)
        signer = _signer_certificate(sd, si["sid"])
    except ConsentRefused:
        raise
    except Exception:  # asn1crypto raises many kinds on garbage
        raise ConsentRefused("consent", "must be a DER CMS SignedData") from None
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), _HASHES[hash_name]())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(_HASHES[hash_name]()))
        else:
            raise ConsentRefused("consent", "must be signed with an RSA or ECDSA key")
    except InvalidSignature:
        raise ConsentRefused("consent", "signature must verify with the signer's certificate") from None
    return ConsentDocument(body, signer)


def _signer_certificate(sd: cms.SignedData, sid: cms.SignerIdentifier) -> x509.Certificate:
    certs = [
        x509.load_der_x509_certificate(c.chosen.dump())
        for c in (sd["certificates"] or [])
        if c.name == "certificate"
    ]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if cert.serial_number == sid.chosen["serial_number"].native and (
                cert.issuer.public_bytes() == sid.chosen["issuer"].dump()
            ):
                return cert
        else:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == bytes(sid.chosen.native):
                return cert
    raise ConsentRefused("consent", "must include the signer's certificate")


@dataclass(frozen=True)
class ConsentTerms:
    verifier_id: str
    purpose: str
    certificate_serial: str
    nonce: str
    issued_at: dt.datetime
    valid_until: dt.datetime


def parse_terms(content: bytes) -> ConsentTerms:
    try:
        doc = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConsentRefused("consent.content", "must be UTF-8 JSON") from None
    if not isinstance(doc, dict) or doc.get("type") != CONSENT_TYPE:
        raise ConsentRefused("consent.content", f"must be a JSON object of type {CONSENT_TYPE}")

    def text(key: str, max_len: int = 120) -> str:
        value = doc.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > max_len:
            raise ConsentRefused(
                f"consent.{key}", f"must be a non-empty string of at most {max_len} characters"
            )
        return value.strip()

    def when(key: str) -> dt.datetime:
        try:
            at = dt.datetime.fromisoformat(text(key, 40))
        except ValueError:
            raise ConsentRefused(f"consent.{key}", "must be an ISO 8601 date-time with an offset") from None
        if at.tzinfo is None:
            raise ConsentRefused(f"consent.{key}", "must be an ISO 8601 date-time with an offset")
        return at

    nonce = text("nonce", 128)
    if len(nonce) < 8:
        raise ConsentRefused("consent.nonce", "must be at least 8 characters")
    return ConsentTerms(
        verifier_id=text("verifier_id", 64),
        purpose=text("purpose"),
        certificate_serial=text("certificate_serial", 42).lower(),
        nonce=nonce,
        issued_at=when("issued_at"),
        valid_until=when("valid_until"),
    )


def consent_content(
    *,
    verifier_id: str,
    purpose: str,
    certificate_serial: str,
    nonce: str,
    issued_at: dt.datetime,
    valid_until: dt.datetime,
) -> bytes:
    """The content a user signs (for relying-party tools and tests)."""
    return json.dumps(
        {
            "type": CONSENT_TYPE,
            "verifier_id": verifier_id,
            "purpose": purpose,
            "certificate_serial": certificate_serial,
            "nonce": nonce,
            "issued_at": issued_at.isoformat(),
            "valid_until": valid_until.isoformat(),
        },
        ensure_ascii=False,
    ).encode("utf-8")


class Basic4Service:
    """In the caller's session; the caller commits (refusals included: see :func:`provide_basic4`)."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.s = session
        self.clock = clock

    def query(
        self, verifier: Verifier, *, certificate: bytes, consent: bytes, purpose: str | None = None
    ) -> Basic4Result:
        purpose = check_purpose(purpose)
        serial = "-"
        try:
            held = self._held_certificate(certificate)
            serial = held.serial
            verifier.require_role(SIGN)
            doc = parse_consent(consent)
            signer = self._current_certificate(doc.signer)
            if signer.resident_code not in linked_codes(self.s, held.resident_code):
                raise ConsentRefused("consent", "must be signed by the holder of the certificate")
            terms = parse_terms(doc.content)
            self._check_terms(terms, verifier, held)
            basic4 = self._latest(signer.resident_code)
        except (ConsentRefused, Forbidden) as exc:
            refusal = (
                exc
                if isinstance(exc, ConsentRefused)
                else ConsentRefused(
                    str(exc.context.get("field") or "verifier"), str(exc.context.get("rule") or exc.message)
                )
            )
            self._record(verifier, purpose, serial, f"refused:{refusal.field}", None, refusal.rule)
            return Basic4Result(None, serial, refusal)
        self._store_consent(verifier, held, consent, terms)
        self._record(verifier, purpose, serial, "provided", signer.resident_code, None)
        return Basic4Result(basic4, serial)

    # -- the rules -------------------------------------------------------------------------------

    def _held_certificate(self, der: bytes) -> CertificateRow:
        if not isinstance(der, bytes | bytearray) or not der or len(der) > MAX_CERTIFICATE_BYTES:
            raise ConsentRefused("certificate", "must be a DER certificate")
        try:
            cert = x509.load_der_x509_certificate(bytes(der))
        except ValueError:
            raise ConsentRefused("certificate", "must be a DER certificate") from None
        row = self._ours(cert)
        if row is None:
            raise ConsentRefused("certificate", "must be a signing certificate issued by JPKI")
        return row

    def _ours(self, cert: x509.Certificate) -> CertificateRow | None:
        der = cert.public_bytes(Encoding.DER)
        for row in self.s.scalars(
            select(CertificateRow).where(
                CertificateRow.ca_kind == SIGN, CertificateRow.serial == format(cert.serial_number, "x")
            )
        ):
            if row.der == der:  # the very certificate we issued, not one with the same serial
                return row
        return None

    def _current_certificate(self, cert: x509.Certificate) -> CertificateRow:
        row = self._ours(cert)
        if row is None:
            raise ConsentRefused("consent", "must be signed with a signing certificate issued by JPKI")
        if row.status != GOOD:
            raise ConsentRefused("consent", "must be signed with a current (not revoked) signing certificate")
        now = self.clock.now()
        if not (row.not_before <= now <= row.not_after):
            raise ConsentRefused("consent", "must be signed with a certificate valid now")
        gen = self.s.get(CaGenerationRow, row.ca_generation_id)
        if gen is None or gen.revoked_at is not None:
            raise ConsentRefused("consent", "must be signed with a certificate of a CA generation in service")
        return row

    def _check_terms(self, terms: ConsentTerms, verifier: Verifier, held: CertificateRow) -> None:
        now = self.clock.now()
        if terms.verifier_id != verifier.id:
            raise ConsentRefused("consent.verifier_id", "must name the verifier that asks")
        if terms.certificate_serial.removeprefix("0x").lstrip("0") != held.serial:
            raise ConsentRefused("consent.certificate_serial", "must be the serial of the certificate held")
        if terms.issued_at > now + CLOCK_SKEW:
            raise ConsentRefused("consent.issued_at", "must not be in the future")
        if terms.valid_until < now:
            raise ConsentRefused("consent.valid_until", "must not have passed")
        if terms.valid_until - terms.issued_at > MAX_CONSENT_VALIDITY or terms.valid_until < terms.issued_at:
            raise ConsentRefused("consent.valid_until", "must be within a year of issued_at")

    def _latest(self, resident_code: str) -> Basic4:
        row = current_national_record(self.s, resident_code)
        if row is None:
            raise ConsentRefused("certificate", "the holder must have a 住民票 record")
        name = f"{row.family_name}\u3000{row.given_name}" if row.given_name else row.family_name
        return Basic4(name, row.birth_date, row.sex, row.address, row.change_date, row.status)

    # -- records ----------------------------------------------------------------------------------

    def _store_consent(
        self, verifier: Verifier, held: CertificateRow, document: bytes, terms: ConsentTerms
    ) -> None:
        exists = self.s.execute(
            select(ConsentRow.id).where(
                ConsentRow.verifier_id == verifier.id,
                ConsentRow.certificate_id == held.id,
                ConsentRow.document == bytes(document),
            )
        ).first()
        if exists is None:
            self.s.add(
                ConsentRow(
                    verifier_id=verifier.id,
                    certificate_id=held.id,
                    document=bytes(document),
                    purpose=terms.purpose,
                    valid_until=terms.valid_until,
                    created_at=self.clock.now(),
                )
            )

    def _record(
        self,
        verifier: Verifier,
        purpose: str,
        serial: str,
        result: str,
        subject: str | None,
        rule: str | None,
    ) -> None:
        now = self.clock.now()
        write_records(
            self.s,
            [
                QueryRecord(
                    now, verifier.id, purpose, "basic4", SIGN, None if serial == "-" else serial, result
                )
            ],
        )
        details: dict[str, Any] = {"system": "jpki", "purpose": purpose, "function": "最新の基本4情報の提供"}
        if rule:
            details["rule"] = rule
        else:
            details["items"] = ["name", "birth_date", "sex", "address"]
        ACCESS_LOG.append(
            self.s,
            at=now,
            actor=verifier.id,
            action="provide" if rule is None else "refuse",
            subject=subject,
            details={**details, "certificate_serial": None if serial == "-" else serial},
        )


def provide_basic4(
    factory: sessionmaker[Session],
    clock: Clock,
    verifier: Verifier,
    *,
    certificate: bytes,
    consent: bytes,
    purpose: str | None = None,
) -> Basic4:
    """The adapter: one transaction, committed whatever the outcome, then the refusal raised, so a
    refusal is on record although the request fails."""
    with transaction(factory) as s:
        result = Basic4Service(s, clock).query(
            verifier, certificate=certificate, consent=consent, purpose=purpose
        )
    return result.raise_if_refused()
