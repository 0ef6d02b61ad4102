"""Validation of an uploaded certificate PDF with pyHanko: is it signed, is the signature intact, does
it cover the whole file, does the signer's 職責証明書 chain to an organisation CA root and is it
unrevoked at the time of validation (the CA's CRL is passed in; nothing is fetched).

Fails closed: anything pyHanko cannot read or judge is "not valid", with the reason in English for
logs and the API. The Japanese sentence for the page is in :mod:`jlis.kiosk.pdf.service`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

MAX_PDF_BYTES = 900_000  # below the app's 1 MB body limit; a certificate is ~60 KB


@dataclass(frozen=True)
class PdfCheck:
    sha256: str  # of the bytes as uploaded
    signed: bool
    intact: bool  # the signature matches the signed bytes
    trusted: bool  # the signer's certificate chains to a trusted root and is not revoked
    whole_file: bool  # the signature covers the file to its last byte (no update appended)
    revoked: bool  # the signer's certificate is revoked
    signer_serial: str | None  # hex, of the 職責証明書
    signer_title: str | None  # the office (職責), e.g. 東京都千代田区長 — not personal data
    signed_at: dt.datetime | None
    problem: str | None  # the first reason it is not valid

    @property
    def ok(self) -> bool:
        return self.signed and self.intact and self.trusted and self.whole_file and not self.revoked


def _fail(digest: str, problem: str, **known: object) -> PdfCheck:
    fields: dict[str, object] = {
        "signed": False,
        "intact": False,
        "trusted": False,
        "whole_file": False,
        "revoked": False,
        "signer_serial": None,
        "signer_title": None,
        "signed_at": None,
    }
    fields.update(known)
    return PdfCheck(sha256=digest, problem=problem, **fields)  # type: ignore[arg-type]


async def _validate(reader: PdfFileReader, context: ValidationContext) -> object:
    sig = reader.embedded_signatures[0]
    return await async_validate_pdf_signature(
        sig,
        signer_validation_context=context,
        key_usage_settings=KeyUsageConstraints(key_usage={"non_repudiation"}),
    )


def check_pdf(
    pdf: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    at: dt.datetime,
) -> PdfCheck:
    """Judge ``pdf`` at ``at`` against ``trust_roots`` with ``crls`` as the only revocation data."""
    digest = hashlib.sha256(pdf).hexdigest()
    if len(pdf) > MAX_PDF_BYTES:
        return _fail(digest, f"larger than {MAX_PDF_BYTES} bytes")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except Exception as exc:
        return _fail(digest, f"not a readable PDF ({type(exc).__name__})")
    if len(signatures) != 1:
        return _fail(digest, "must carry exactly one signature" if signatures else "not signed")
    embedded = signatures[0]
    try:
        cert = embedded.signer_cert
        serial = format(cert.serial_number, "x")
        cn = cert.subject.native.get("common_name")
        title = str(cn) if cn is not None else None
    except Exception:
        return _fail(digest, "no signer certificate", signed=True)
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(r.public_bytes(Encoding.DER)) for r in trust_roots],
        crls=[c.public_bytes(Encoding.DER) for c in crls],
        moment=at,
        allow_fetching=False,
        revocation_mode="hard-fail",
    )
    try:
        status = asyncio.run(_validate(reader, context))
    except Exception as exc:
        return _fail(digest, f"signature could not be validated ({type(exc).__name__})", signed=True)
    intact = bool(getattr(status, "intact", False) and getattr(status, "valid", False))
    trusted = bool(getattr(status, "trusted", False))
    revoked = bool(getattr(status, "revoked", False))
    whole = getattr(status, "coverage", None) == SignatureCoverageLevel.ENTIRE_FILE
    signed_at = getattr(status, "signer_reported_dt", None)
    problem = None
    if not intact:
        problem = "the signature does not match the document (altered)"
    elif not whole:
        problem = "the file was changed after signing (not covered by the signature)"
    elif revoked:
        problem = "the signer's certificate is revoked"
    elif not trusted:
        problem = "the signer's certificate does not chain to a trusted organisation CA"
    return PdfCheck(
        sha256=digest,
        signed=True,
        intact=intact,
        trusted=trusted,
        whole_file=whole,
        revoked=revoked,
        signer_serial=serial,
        signer_title=title,
        signed_at=signed_at,
        problem=problem,
    )
