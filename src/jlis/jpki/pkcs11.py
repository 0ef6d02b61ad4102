"""CA keys in a PKCS#11 token (SoftHSM2 in development and CI, an HSM in production).

Keys are generated in the token as sensitive and non-extractable; signing goes through the token.
``cryptography``'s builders want a private key object, so a certificate, CRL or OCSP response is first
built and signed with a throwaway software key of the same algorithm: that yields the exact
to-be-signed bytes (the signature algorithm inside them is the same). The token signs those bytes, and
the outer structure is reassembled with the token's signature. The throwaway signature is discarded.

key_ref: ``pkcs11:<token label>/<key label>``.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import threading
from typing import Any

import pkcs11
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import ocsp
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.keystore import PKCS11_PREFIX, check_label
from jlis.jpki.profile import Algorithm, CaPublicKey, generate_private_key, hash_algorithm

# DER AlgorithmIdentifiers exactly as cryptography writes them into the TBS (RSA with NULL
# parameters, ECDSA without): the outer signatureAlgorithm must repeat the inner one byte for byte.
_SIG_ALG_DER = {
    Algorithm.RSA2048_SHA256: bytes.fromhex("300d06092a864886f70d01010b0500"),
    Algorithm.P384_SHA384: bytes.fromhex("300a06082a8648ce3d040303"),
}


@functools.lru_cache(maxsize=2)
def _throwaway_key(alg: Algorithm) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """One per process and algorithm: it only ever signs bytes that are thrown away."""
    return generate_private_key(alg)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _signed_sequence(tbs: bytes, alg: Algorithm, signature: bytes) -> bytes:
    """SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }: the outer shape shared by
    Certificate and CertificateList (RFC 5280 §4.1, §5.1)."""
    bits = b"\x00" + signature
    body = tbs + _SIG_ALG_DER[alg] + b"\x03" + _der_length(len(bits)) + bits
    return b"\x30" + _der_length(len(body)) + body


class Pkcs11Signer:
    """Signs with one private key that stays in the token."""

    def __init__(self, store: Pkcs11KeyStore, label: str, algorithm: Algorithm, public: CaPublicKey) -> None:
        self._store = store
        self._label = label
        self.algorithm = algorithm
        self._hash = hash_algorithm(algorithm)
        self._public = public

    def public_key(self) -> CaPublicKey:
        return self._public

    def sign_bytes(self, data: bytes) -> bytes:
        if self.algorithm is Algorithm.RSA2048_SHA256:
            return self._store._sign(self._label, data, Mechanism.SHA256_RSA_PKCS)
        # Hash here and use plain CKM_ECDSA: every token has it, not every one has CKM_ECDSA_SHA384.
        raw = self._store._sign(self._label, hashlib.sha384(data).digest(), Mechanism.ECDSA)
        half = len(raw) // 2  # PKCS#11 returns r || s; X.509 wants ECDSA-Sig-Value (DER)
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        draft = builder.sign(_throwaway_key(self.algorithm), self._hash)
        tbs = draft.tbs_certificate_bytes
        return x509.load_der_x509_certificate(_signed_sequence(tbs, self.algorithm, self.sign_bytes(tbs)))

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        draft = builder.sign(_throwaway_key(self.algorithm), self._hash)
        tbs = draft.tbs_certlist_bytes
        return x509.load_der_x509_crl(_signed_sequence(tbs, self.algorithm, self.sign_bytes(tbs)))

    def sign_ocsp_response(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        """cryptography refuses to sign an OCSP response whose responder certificate does not match
        the signing key, so the draft names a stand-in responder (same subject, throwaway key); the
        real responderID and certificates are put back before the token signs."""
        responder = builder._responder_id  # the builder has no public accessor
        if responder is None:
            raise ValueError("You must add a responder_id before signing")
        real_cert, encoding = responder
        stand_in = _stand_in_certificate(real_cert.subject, self.algorithm)
        draft = ocsp.OCSPResponseBuilder(
            builder._response,
            (stand_in, encoding),
            None,
            builder._extensions,
        ).sign(_throwaway_key(self.algorithm), self._hash)
        parsed = asn1_ocsp.OCSPResponse.load(draft.public_bytes(serialization.Encoding.DER))
        basic = parsed["response_bytes"]["response"].parsed
        tbs = asn1_ocsp.ResponseData.load(basic["tbs_response_data"].dump())
        real = asn1_x509.Certificate.load(real_cert.public_bytes(serialization.Encoding.DER))
        if encoding is ocsp.OCSPResponderEncoding.HASH:
            tbs["responder_id"] = asn1_ocsp.ResponderId({"by_key": real.public_key.sha1})
        else:
            tbs["responder_id"] = asn1_ocsp.ResponderId({"by_name": real.subject})
        tbs_der = tbs.dump(force=True)
        fields: dict[str, Any] = {
            "tbs_response_data": asn1_ocsp.ResponseData.load(tbs_der),
            "signature_algorithm": basic["signature_algorithm"],
            "signature": self.sign_bytes(tbs_der),
        }
        certs = builder._certs
        if certs:
            fields["certs"] = [
                asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in certs
            ]
        der = asn1_ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {
                    "response_type": "basic_ocsp_response",
                    "response": asn1_ocsp.BasicOCSPResponse(fields),
                },
            }
        ).dump()
        return ocsp.load_der_ocsp_response(der)


@functools.lru_cache(maxsize=64)
def _stand_in_certificate(subject: x509.Name, alg: Algorithm) -> x509.Certificate:
    key = _throwaway_key(alg)
    now = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now)
        .sign(key, hash_algorithm(alg))
    )


class Pkcs11KeyStore:
    """CA keys in the token labelled ``token`` of the PKCS#11 ``module``, used with the user ``pin``.

    One logged-in session per store, used under a lock (a PKCS#11 session is not for concurrent
    operations); signers are cached per key_ref.
    """

    def __init__(self, module: str, token: str, pin: str) -> None:
        if not module:
            raise InvalidInput("pkcs11_module", "must be the path of a PKCS#11 library")
        self.module = module
        self.token_label = token
        self._pin = pin
        self._lock = threading.RLock()
        self._session: Any = None
        self._signers: dict[str, Pkcs11Signer] = {}
        self._private: dict[str, Any] = {}

    def _open(self) -> Any:
        if self._session is None:
            lib = pkcs11.lib(self.module)
            try:
                token = lib.get_token(token_label=self.token_label)
            except pkcs11.exceptions.NoSuchToken:
                raise NotFound("PKCS#11 token", self.token_label) from None
            try:
                self._session = token.open(rw=True, user_pin=self._pin)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # Login state is per process and token: another store of ours is logged in already,
                # and a new session of the same process shares it.
                self._session = token.open(rw=True)
        return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._private.clear()
                self._session.close()
                self._session = None

    def _key_ref(self, label: str) -> str:
        return f"{PKCS11_PREFIX}{self.token_label}/{label}"

    def _label(self, key_ref: str) -> str:
        prefix = f"{PKCS11_PREFIX}{self.token_label}/"
        if not key_ref.startswith(prefix):
            raise InvalidInput("key_ref", f"must start with {prefix}")
        return check_label(key_ref[len(prefix) :])

    def create(self, alg: Algorithm, label: str) -> str:
        check_label(label)
        private = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        public = {Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}
        with self._lock:
            session = self._open()
            if list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})):
                raise RuleViolation("label", "a key with this label already exists")
            ident = label.encode()
            if alg is Algorithm.RSA2048_SHA256:
                session.generate_keypair(
                    KeyType.RSA,
                    2048,
                    id=ident,
                    label=label,
                    store=True,
                    public_template={**public, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
                    private_template=private,
                )
            else:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp384r1")}, local=True
                )
                params.generate_keypair(
                    id=ident, label=label, store=True, public_template=public, private_template=private
                )
        return self._key_ref(label)

    def signer(self, key_ref: str) -> Pkcs11Signer:
        cached = self._signers.get(key_ref)
        if cached is not None:
            return cached
        label = self._label(key_ref)
        with self._lock:
            session = self._open()
            try:
                pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
            except pkcs11.exceptions.NoSuchKey:
                raise NotFound("CA key", key_ref) from None
            public: CaPublicKey
            if pub.key_type == KeyType.RSA:
                public = rsa.RSAPublicNumbers(
                    int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
                    int.from_bytes(pub[Attribute.MODULUS], "big"),
                ).public_key()
                alg = Algorithm.RSA2048_SHA256
            else:
                loaded = serialization.load_der_public_key(encode_ec_public_key(pub))
                if not (
                    isinstance(loaded, ec.EllipticCurvePublicKey) and isinstance(loaded.curve, ec.SECP384R1)
                ):
                    raise InvalidInput("key_ref", "token key is neither RSA-2048 nor ECDSA P-384")
                public = loaded
                alg = Algorithm.P384_SHA384
            signer = Pkcs11Signer(self, label, alg, public)
            return self._signers.setdefault(key_ref, signer)

    def _sign(self, label: str, data: bytes, mechanism: Mechanism) -> bytes:
        with self._lock:
            key = self._private.get(label)
            if key is None:
                key = self._private[label] = self._open().get_key(
                    object_class=ObjectClass.PRIVATE_KEY, label=label
                )
            return bytes(key.sign(data, mechanism=mechanism))

    def is_extractable(self, key_ref: str) -> bool:
        """For tests and the CA status page: whether the token would let the key out."""
        label = self._label(key_ref)
        with self._lock:
            key = self._open().get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
            return bool(key[Attribute.EXTRACTABLE]) or not bool(key[Attribute.SENSITIVE])
