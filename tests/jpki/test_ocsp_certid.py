"""The responder's direct CertID reader agrees with cryptography on every simple request, and gives
up (None, so the full parser runs) on every other shape and on any corruption."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from jlis.jpki.crl import der_integer, tlv
from jlis.jpki.ocsp import simple_cert_id

HASH_OIDS = {
    "sha1": bytes.fromhex("06052b0e03021a"),
    "sha256": bytes.fromhex("0609608648016503040201"),
    "sha384": bytes.fromhex("0609608648016503040202"),
    "sha512": bytes.fromhex("0609608648016503040203"),
}


def request(name: str, name_hash: bytes, key_hash: bytes, serial: int, *, null: bool = True) -> bytes:
    alg = tlv(0x30, HASH_OIDS[name] + (b"\x05\x00" if null else b""))
    cert_id = tlv(0x30, alg + tlv(0x04, name_hash) + tlv(0x04, key_hash) + der_integer(serial))
    return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, cert_id))))


names = st.sampled_from(sorted(HASH_OIDS))
serials = st.integers(min_value=1, max_value=2**159 - 1)


@settings(max_examples=300, deadline=None)
@given(name=names, seed=st.binary(min_size=1, max_size=8), serial=serials, null=st.booleans())
def test_agrees_with_cryptography(name: str, seed: bytes, serial: int, null: bool) -> None:
    size = hashlib.new(name).digest_size
    name_hash, key_hash = hashlib.new(name, seed).digest(), hashlib.new(name, seed + b"k").digest()[:size]
    der = request(name, name_hash, key_hash, serial, null=null)
    parsed = ocsp.load_der_ocsp_request(der)
    assert simple_cert_id(der) == (
        parsed.hash_algorithm.name,
        parsed.issuer_name_hash,
        parsed.issuer_key_hash,
        parsed.serial_number,
    )


def _pair() -> tuple[x509.Certificate, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def cert(subject: x509.Name, serial: int) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )

    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")])
    return cert(leaf_name, 0x1234567890ABCDEF), cert(name, 1)


def test_requests_built_by_cryptography_are_read_and_other_shapes_are_left_alone() -> None:
    leaf, issuer = _pair()
    for algorithm in (hashes.SHA1(), hashes.SHA256()):
        der = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaf, issuer, algorithm)
            .build()
            .public_bytes(Encoding.DER)
        )
        parsed = ocsp.load_der_ocsp_request(der)
        assert simple_cert_id(der) == (
            algorithm.name,
            parsed.issuer_name_hash,
            parsed.issuer_key_hash,
            leaf.serial_number,
        )
        for cut in range(len(der)):
            assert simple_cert_id(der[:cut]) is None
        assert simple_cert_id(der + b"\x00") is None
    with_nonce = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
        .build()
        .public_bytes(Encoding.DER)
    )
    assert simple_cert_id(with_nonce) is None
    padded_serial = request("sha1", b"n" * 20, b"k" * 20, 4660).replace(
        b"\x02\x02\x12\x34", b"\x02\x03\x00\x12\x34"
    )
    assert simple_cert_id(padded_serial) is None


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_corrupted_request_is_never_misread(data: st.DataObject) -> None:
    """A changed byte gives None, or a CertID that cryptography reads the same way."""
    der = bytearray(request("sha1", b"n" * 20, b"k" * 20, 4660))
    at = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    der[at] = data.draw(st.integers(min_value=0, max_value=255))
    got = simple_cert_id(bytes(der))
    if got is None:
        return
    parsed = ocsp.load_der_ocsp_request(bytes(der))
    assert got == (
        parsed.hash_algorithm.name,
        parsed.issuer_name_hash,
        parsed.issuer_key_hash,
        parsed.serial_number,
    )
