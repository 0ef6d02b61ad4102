"""Fixtures of the chip tests: cached keys (RSA-2048 generation would dominate the run), blank and
personalised chips, throwaway self-signed certificates (no dependency on the CA helper)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from jlis.card.chip.chip import PrivateKey, PublicKey, VirtualChip
from jlis.card.chip.face import CardFace
from jlis.jpki.profile import Algorithm

RSA = "rsa2048-sha256"
P384 = "p384-sha384"
AUTH_PIN = "1234"
SIGN_PASSWORD = "ABC123XYZ"
JUKI_PIN = "5678"
TEXT_PIN = "2468"
MY_NUMBER = "123456789018"  # check digit 8


_RSA_KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]
_EC_KEYS = [ec.generate_private_key(ec.SECP384R1()) for _ in range(4)]


def cached_keygen() -> Callable[[Algorithm], PrivateKey]:
    rsa_keys: Iterator[PrivateKey] = itertools.cycle(_RSA_KEYS)
    ec_keys: Iterator[PrivateKey] = itertools.cycle(_EC_KEYS)

    def keygen(alg: Algorithm) -> PrivateKey:
        return next(rsa_keys) if alg is Algorithm.RSA2048_SHA256 else next(ec_keys)

    return keygen


@pytest.fixture
def keygen() -> Callable[[Algorithm], PrivateKey]:
    return cached_keygen()


ISSUER_KEY = _RSA_KEYS[0]


def make_cert(public_key: PublicKey, signer: PrivateKey, cn: str = "test") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def make_face(**changes: object) -> CardFace:
    values: dict[str, object] = {
        "my_number": MY_NUMBER,
        "name": "山田 花子",
        "address": "東京都千代田区霞が関二丁目1番2号",
        "birth_date": dt.date(1990, 4, 1),
        "sex": 2,
        "expires_on": dt.date(2035, 4, 1),
        "security_code": "4321",
        "resident_code": "12345678901",
    }
    values.update(changes)
    return CardFace(**values)  # type: ignore[arg-type]


def build_chip(
    algorithm: str, keygen: Callable[[Algorithm], PrivateKey], card_id: str = "CARD0001"
) -> VirtualChip:
    """A delivered card: personalised, both certificates installed, the four PINs set."""
    chip = VirtualChip.manufacture(card_id, algorithm, keygen=keygen)
    chip.personalise(make_face(), issuer_key=ISSUER_KEY)
    ca = _RSA_KEYS[3]
    ca_der = make_cert(ca.public_key(), ca, "CA")
    chip.install_certificates(
        make_cert(chip.public_key("auth"), ca, "auth"),
        ca_der,
        make_cert(chip.public_key("sign"), ca, "sign"),
        ca_der,
    )
    chip.set_pins(AUTH_PIN, SIGN_PASSWORD, JUKI_PIN, TEXT_PIN)
    return chip


class Kit:
    """Constants and helpers of the chip tests, handed out by the ``kit`` fixture (tests are not a
    package under ``--import-mode=importlib``, so they cannot import this module)."""

    RSA = RSA
    P384 = P384
    AUTH_PIN = AUTH_PIN
    SIGN_PASSWORD = SIGN_PASSWORD
    JUKI_PIN = JUKI_PIN
    TEXT_PIN = TEXT_PIN
    MY_NUMBER = MY_NUMBER
    ISSUER_KEY = ISSUER_KEY
    make_cert = staticmethod(make_cert)
    make_face = staticmethod(make_face)
    build_chip = staticmethod(build_chip)
    cached_keygen = staticmethod(cached_keygen)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture
def chip(keygen: Callable[[Algorithm], PrivateKey]) -> VirtualChip:
    return build_chip(RSA, keygen)


@pytest.fixture
def ec_chip(keygen: Callable[[Algorithm], PrivateKey]) -> VirtualChip:
    return build_chip(P384, keygen)
