"""CMS SignedData (RFC 5652) as a JPKI signer makes it: one signer, the signer's certificate included,
signed attributes (contentType, messageDigest, signingTime, ESS signing-certificate-v2) and the
signature computed elsewhere (on the card) over the DER of those attributes.

Pure functions over bytes: no card, no clock, no network. :func:`build` takes the signature as a
callback so the card (or a test key) signs exactly the bytes RFC 5652 §5.4 says.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from jlis.jpki.rp.errors import MalformedMessage

_ = tsp  # importing asn1crypto.tsp registers the signing-certificate-v2 attribute with cms

# The DER prefix of a PKCS#1 v1.5 DigestInfo per hash (RFC 8017 §9.2 note 1): prefix + digest.
DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
MAX_CMS_BYTES = 64 * 1024 * 1024  # a signed document bigger than this is refused before parsing

# A signer callback: given the bytes to sign (DER of the signed attributes) and the hash name,
# return the signature value as CMS carries it (PKCS#1 v1.5 bytes, or DER ECDSA-Sig-Value).
SignFunction = Callable[[bytes, str], bytes]


def digest(hash_name: str, data: bytes) -> bytes:
    return hashlib.new(hash_name, data).digest()


def digest_info(hash_name: str, digest_value: bytes) -> bytes:
    """The PKCS#1 v1.5 DigestInfo the card's COMPUTE DIGITAL SIGNATURE takes (facts §2.5)."""
    prefix = DIGEST_INFO_PREFIX.get(hash_name)
    if prefix is None:
        raise ValueError(f"no DigestInfo prefix for {hash_name}")
    if len(digest_value) != prefix[-1]:
        raise ValueError(f"a {hash_name} digest is {prefix[-1]} bytes, got {len(digest_value)}")
    return prefix + digest_value


def hash_for_key(public_key: object) -> str:
    """The hash JPKI pairs with a key: SHA-256 for RSA-2048, SHA-384 for P-384 (facts §3.8)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "sha256"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}.get(
            public_key.curve.name, "sha384"
        )
    raise ValueError(f"unsupported key type {type(public_key).__name__}")


def ecdsa_der(signature: bytes, key_size_bits: int) -> bytes:
    """A card may answer an ECDSA signature as raw r||s; CMS wants DER ECDSA-Sig-Value."""
    width = (key_size_bits + 7) // 8
    if len(signature) == 2 * width and signature[0] != 0x30:
        r = int.from_bytes(signature[:width], "big")
        s = int.from_bytes(signature[width:], "big")
        return encode_dss_signature(r, s)
    return signature


def signed_attributes(
    *, content_digest: bytes, hash_name: str, signing_time: dt.datetime, certificate: x509.Certificate
) -> cms.CMSAttributes:
    cert = ax509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    ess_id: dict[str, object] = {
        "cert_hash": digest(hash_name, cert.dump()),
        "issuer_serial": {
            "issuer": [ax509.GeneralName({"directory_name": cert.issuer})],
            "serial_number": cert.serial_number,
        },
    }
    if hash_name != "sha256":  # the DEFAULT of ESSCertIDv2 must not be encoded (DER)
        ess_id["hash_algorithm"] = {"algorithm": hash_name}
    return cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [_time(signing_time)]}),
            cms.CMSAttribute({"type": "message_digest", "values": [content_digest]}),
            cms.CMSAttribute(
                {"type": "signing_certificate_v2", "values": [{"certs": [ess_id]}]},
            ),
        ]
    )


def _time(at: dt.datetime) -> cms.Time:
    if at.tzinfo is None:
        raise ValueError("signing time must be timezone-aware")
    at = at.astimezone(dt.UTC).replace(microsecond=0)
    # RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
    return cms.Time({"utc_time" if 1950 <= at.year < 2050 else "general_time": at})


def attributes_to_sign(attrs: cms.CMSAttributes) -> bytes:
    """RFC 5652 §5.4: the signature covers the attributes' DER with an explicit SET OF tag, not the
    [0] IMPLICIT tag they carry inside SignerInfo."""
    encoded: bytes = attrs.dump()
    return b"\x31" + encoded[1:]


def build(
    content: bytes,
    certificate: x509.Certificate,
    sign: SignFunction,
    *,
    signing_time: dt.datetime,
    detached: bool = True,
    extra_certificates: tuple[x509.Certificate, ...] = (),
) -> bytes:
    """DER ContentInfo(SignedData) over ``content``, signed by ``sign`` with ``certificate``'s key."""
    public_key = certificate.public_key()
    hash_name = hash_for_key(public_key)
    attrs = signed_attributes(
        content_digest=digest(hash_name, content),
        hash_name=hash_name,
        signing_time=signing_time,
        certificate=certificate,
    )
    signature = sign(attributes_to_sign(attrs), hash_name)
    if isinstance(public_key, rsa.RSAPublicKey):
        sig_alg = {"algorithm": "rsassa_pkcs1v15"}
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        sig_alg = {"algorithm": f"{hash_name}_ecdsa"}
        signature = ecdsa_der(signature, public_key.key_size)
    else:  # pragma: no cover - hash_for_key refused it already
        raise ValueError("unsupported key")
    cert = ax509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": cert.issuer,
                        "serial_number": cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": hash_name},
            "signed_attrs": attrs,
            "signature_algorithm": sig_alg,
            "signature": signature,
        }
    )
    certs = [cert] + [
        ax509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in extra_certificates
    ]
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": hash_name}],
            "encap_content_info": {"content_type": "data", "content": None if detached else content},
            "certificates": certs,
            "signer_infos": [signer_info],
        }
    )
    out: bytes = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    return out


@dataclass(frozen=True)
class SignerView:
    """What :func:`parse` found in a SignedData with exactly one signer."""

    certificates: tuple[x509.Certificate, ...]
    signer_certificate: x509.Certificate
    hash_name: str
    signature_algorithm: str  # asn1crypto name, e.g. "rsassa_pkcs1v15", "sha384_ecdsa"
    signature: bytes
    signed_bytes: bytes  # DER of the signed attributes as signed (SET OF tag)
    content_type: str
    encapsulated: bytes | None
    message_digest: bytes
    signing_time: dt.datetime | None
    ess_cert_hashes: tuple[tuple[str, bytes], ...]  # (hash name, certificate hash) from ESS v2


def parse(data: bytes) -> SignerView:
    """Parse a DER (or PEM) ContentInfo of SignedData; every shape error is a MalformedMessage."""
    if len(data) > MAX_CMS_BYTES:
        raise MalformedMessage("cms", f"must be at most {MAX_CMS_BYTES} bytes")
    if data.lstrip().startswith(b"-----BEGIN"):
        data = _unpem(data)
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "signed_data":
            raise MalformedMessage("cms.contentType", "must be id-signedData")
        sd = info["content"]
        signer_infos = list(sd["signer_infos"])
        certificates = _certificates(sd)
        encap = sd["encap_content_info"]
        content_type = encap["content_type"].native
        raw_content = encap["content"]
        encapsulated = None if isinstance(raw_content, core.Void) else bytes(raw_content.native)
        if len(signer_infos) != 1:
            raise MalformedMessage("cms.signerInfos", "must hold exactly one signer")
        si = signer_infos[0]
        hash_name = si["digest_algorithm"]["algorithm"].native
        if hash_name not in HASHES or hash_name == "sha1":
            raise MalformedMessage("cms.digestAlgorithm", "must be SHA-256, SHA-384 or SHA-512")
        if isinstance(si["signed_attrs"], core.Void):
            raise MalformedMessage("cms.signedAttrs", "must be present (JPKI signatures carry them)")
        attrs = si["signed_attrs"]
        seen: dict[str, list[object]] = {}
        for attr in attrs:
            name = attr["type"].native
            if name in seen:
                raise MalformedMessage(f"cms.signedAttrs.{name}", "must occur once")
            seen[name] = list(attr["values"])
        for name in ("content_type", "message_digest"):
            if name not in seen or len(seen[name]) != 1:
                raise MalformedMessage(f"cms.signedAttrs.{name}", "must be present with one value")
        if seen["content_type"][0].native != content_type:  # type: ignore[attr-defined]
            raise MalformedMessage("cms.signedAttrs.contentType", "must equal the eContentType")
        signing_time = None
        if "signing_time" in seen:
            signing_time = seen["signing_time"][0].native  # type: ignore[attr-defined]
        ess: list[tuple[str, bytes]] = []
        for value in seen.get("signing_certificate_v2", []):
            for cert_id in value["certs"]:  # type: ignore[index]
                ess.append(
                    (cert_id["hash_algorithm"]["algorithm"].native, bytes(cert_id["cert_hash"].native))
                )
        signer_cert = _find_signer(si["sid"], certificates)
        return SignerView(
            certificates=tuple(certificates),
            signer_certificate=signer_cert,
            hash_name=hash_name,
            signature_algorithm=si["signature_algorithm"]["algorithm"].native,
            signature=bytes(si["signature"].native),
            signed_bytes=b"\x31" + attrs.dump()[1:],
            content_type=content_type,
            encapsulated=encapsulated,
            message_digest=bytes(seen["message_digest"][0].native),  # type: ignore[attr-defined]
            signing_time=signing_time,
            ess_cert_hashes=tuple(ess),
        )
    except MalformedMessage:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise MalformedMessage("cms", f"must be a DER ContentInfo of SignedData ({exc})") from None


def _unpem(data: bytes) -> bytes:
    import base64

    lines = [ln.strip() for ln in data.decode("ascii", "replace").splitlines()]
    body = [ln for ln in lines if ln and not ln.startswith("-----")]
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise MalformedMessage("cms", "PEM body must be base64") from None


def _certificates(sd: cms.SignedData) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    if isinstance(sd["certificates"], core.Void):
        return out
    for choice in sd["certificates"]:
        if choice.name != "certificate":
            continue  # attribute certificates and the like are not for us
        out.append(x509.load_der_x509_certificate(choice.chosen.dump()))
    return out


def _find_signer(sid: cms.SignerIdentifier, certificates: list[x509.Certificate]) -> x509.Certificate:
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"]
        serial = sid.chosen["serial_number"].native
        for cert in certificates:
            if cert.serial_number != serial:
                continue
            # Compare names as X.500 names (asn1crypto normalises per RFC 5280 §7.1), not as bytes.
            if ax509.Name.load(cert.issuer.public_bytes()) == issuer:
                return cert
    else:
        key_id = bytes(sid.chosen.native)
        for cert in certificates:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == key_id:
                return cert
    raise MalformedMessage("cms.certificates", "must include the signer's certificate")
