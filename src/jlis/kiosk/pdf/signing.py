"""PAdES signatures on certificate PDFs, by the municipality's 職責 key (jlis.lgwan).

The signature is PAdES baseline B-B (ETSI EN 319 142-1): a CAdES-detached CMS over the whole file
(``/SubFilter /ETSI.CAdES.detached``), the signer's certificate in a signed
``signing-certificate-v2`` attribute, no ``signingTime`` attribute (the time is the signature
dictionary's ``/M``, from the injected clock). It certifies the document (DocMDP, no changes
allowed), so a later incremental update shows as a modification. B-T would need a time-stamp
authority, which jlis does not run yet (docs/kiosk-pdf.md).

The private key never leaves the key store: :class:`KeyStoreSigner` is a pyHanko ``Signer`` whose raw
signature comes from :meth:`jlis.jpki.keystore.CaSigner.sign_bytes` (a file key or a PKCS#11 token).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from jlis.errors import InvalidInput
from jlis.jpki.keystore import CaSigner
from jlis.jpki.profile import Algorithm
from jlis.kiosk.pdf.writer import ClockedPdfWriter
from jlis.lgwan.ca import RoleCertificate

FIELD_NAME = "MunicipalSeal"
# Room for the CMS: the signer's and the CA's certificates (~1 KB each for RSA-2048) and the
# signature; fixed so that signing never runs a dry-run signature to estimate it.
BYTES_RESERVED = 8192
_MECHANISMS = {
    Algorithm.RSA2048_SHA256: ("sha256", "sha256_rsa", 256),
    Algorithm.P384_SHA384: ("sha384", "sha384_ecdsa", 104),
}


def _asn1(cert_der: bytes) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert_der)


class KeyStoreSigner(signers.Signer):
    """A pyHanko signer over a key-store signer (the key stays where it is)."""

    def __init__(self, signer: CaSigner, certificate_der: bytes, chain_der: list[bytes]) -> None:
        digest, mechanism, self._size = _MECHANISMS[signer.algorithm]
        self._signer = signer
        self.digest = digest
        super().__init__(
            signing_cert=_asn1(certificate_der),
            cert_registry=SimpleCertificateStore.from_certs([_asn1(d) for d in chain_der]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mechanism}),
            embed_roots=True,
        )

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != self.digest:  # fails closed: the key store hashes with its own algorithm
            raise InvalidInput("digest_algorithm", f"must be {self.digest}")
        if dry_run:
            return bytes(self._size)
        return self._signer.sign_bytes(data)


def signer_for_role(role: RoleCertificate, key: CaSigner) -> KeyStoreSigner:
    return KeyStoreSigner(
        key,
        role.certificate.public_bytes(Encoding.DER),
        [role.ca_certificate.public_bytes(Encoding.DER)],
    )


async def _sign(pdf: bytes, signer: KeyStoreSigner, at: dt.datetime, reason: str, location: str) -> bytes:
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm=signer.digest,
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
        reason=reason,
        location=location,
    )
    pdf_signer = signers.PdfSigner(meta, signer=signer)
    writer = ClockedPdfWriter(pdf, at=at)  # /ModDate from the injected clock, like /M
    session = pdf_signer.init_signing_session(writer)
    session.system_time = at  # the injected clock, not pyHanko's own now()
    validation_info = await session.perform_presign_validation(writer)
    tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=BYTES_RESERVED)
    prepared, output = tbs.digest_tbs_document(output=io.BytesIO())
    post = await tbs.perform_signature(
        document_digest=prepared.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=at),
    )
    await post.post_signature_processing(output)
    output.seek(0)
    return output.read()


def sign_pdf(
    pdf: bytes,
    signer: KeyStoreSigner,
    *,
    at: dt.datetime,
    reason: str = "証明書の発行",
    location: str = "",
) -> bytes:
    """``pdf`` with a certifying PAdES B-B signature by ``signer`` at ``at`` (an aware datetime)."""
    if at.tzinfo is None:
        raise InvalidInput("at", "must be an aware datetime")
    if not pdf.startswith(b"%PDF-"):
        raise InvalidInput("pdf", "must be a PDF")
    return asyncio.run(_sign(pdf, signer, at, reason, location))
