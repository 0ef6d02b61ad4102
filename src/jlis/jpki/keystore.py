"""Where CA private keys live, and the signers that use them.

A CA never holds a key object: it holds a ``key_ref`` (stored in ``CaGenerationRow.key_ref``) and asks
a key store for a :class:`CaSigner`. Two stores:

- :class:`FileKeyStore`: each key an encrypted PKCS#8 PEM (``BestAvailableEncryption``) under
  ``<key_dir>/jpki-ca/``, with the passphrase generated once into ``<key_dir>/jpki-ca.passphrase``
  (mode 0600). The passphrase file and the keys sit side by side — this protects a copied key file or
  a database dump, not a stolen key directory; an operator who wants more uses PKCS#11.
- ``jlis.jpki.pkcs11.Pkcs11KeyStore``: keys generated in a PKCS#11 token, non-extractable.

Decrypting a PKCS#8 key costs ~100 ms (scrypt), so a store keeps one signer per key_ref for its life.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.profile import Algorithm, CaPublicKey, algorithm_of, generate_private_key, hash_algorithm

if TYPE_CHECKING:
    from jlis.settings import Settings

FILE_PREFIX = "file:"
PKCS11_PREFIX = "pkcs11:"
PASSPHRASE_FILE = "jpki-ca.passphrase"
KEY_SUBDIR = "jpki-ca"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class CaSigner(Protocol):
    """Signs with one CA key. ``algorithm`` fixes both the key type and the hash."""

    algorithm: Algorithm

    def public_key(self) -> CaPublicKey: ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate: ...

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList: ...

    def sign_ocsp_response(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse: ...

    def sign_bytes(self, data: bytes) -> bytes:
        """A signature over ``data`` (hashed here): PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC."""
        ...


class KeyStore(Protocol):
    def create(self, alg: Algorithm, label: str) -> str:
        """Generate a key pair under ``label``; returns its key_ref. Never overwrites a key."""
        ...

    def signer(self, key_ref: str) -> CaSigner: ...


def check_label(label: str) -> str:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise InvalidInput("label", "1–100 characters of A–Z a–z 0–9 . _ - (not starting with . _ -)")
    return label


class SoftwareSigner:
    """A signer over a private key held in memory (decrypted from a file key store)."""

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, algorithm: Algorithm) -> None:
        if algorithm_of(key) is not algorithm:
            raise InvalidInput("algorithm", f"key does not match {algorithm.value}")
        self._key = key
        self.algorithm = algorithm
        self._hash = hash_algorithm(algorithm)
        self._public = key.public_key()

    def public_key(self) -> CaPublicKey:
        return self._public

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._key, self._hash)

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        return builder.sign(self._key, self._hash)

    def sign_ocsp_response(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        return builder.sign(self._key, self._hash)

    def sign_bytes(self, data: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), self._hash)
        return self._key.sign(data, ec.ECDSA(self._hash))


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600; refuse to replace an existing file (a CA key is never
    overwritten: fails closed)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RuleViolation("label", "a key with this label already exists") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class FileKeyStore:
    """CA keys as encrypted PKCS#8 files. ``passphrase_source`` overrides the generated passphrase
    file (e.g. a passphrase from a secrets manager)."""

    def __init__(self, key_dir: Path | str, passphrase_source: Callable[[], bytes] | None = None) -> None:
        self.key_dir = Path(key_dir)
        self._passphrase_source = passphrase_source
        self._passphrase: bytes | None = None
        self._signers: dict[str, SoftwareSigner] = {}
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self.key_dir / KEY_SUBDIR

    def passphrase(self) -> bytes:
        if self._passphrase is None:
            self._passphrase = (
                self._passphrase_source() if self._passphrase_source is not None else self._passphrase_file()
            )
        return self._passphrase

    def _passphrase_file(self) -> bytes:
        path = self.key_dir / PASSPHRASE_FILE
        if not path.exists():
            self.key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(RuleViolation):  # another process wrote it first: use theirs
                _write_private(path, secrets.token_hex(32).encode())
        return path.read_bytes().strip()

    def path_for(self, key_ref: str) -> Path:
        if not key_ref.startswith(FILE_PREFIX):
            raise InvalidInput("key_ref", "must start with file:")
        return self.directory / f"{check_label(key_ref[len(FILE_PREFIX) :])}.pem"

    def create(self, alg: Algorithm, label: str) -> str:
        key_ref = FILE_PREFIX + check_label(label)
        key = generate_private_key(alg)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self.passphrase()),
        )
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.path_for(key_ref), pem)
        with self._lock:
            self._signers[key_ref] = SoftwareSigner(key, alg)
        return key_ref

    def signer(self, key_ref: str) -> SoftwareSigner:
        cached = self._signers.get(key_ref)
        if cached is not None:
            return cached
        path = self.path_for(key_ref)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise NotFound("CA key", key_ref) from None
        key = serialization.load_pem_private_key(pem, password=self.passphrase())
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidInput("key_ref", "not an RSA or EC key")
        signer = SoftwareSigner(key, algorithm_of(key))
        with self._lock:
            return self._signers.setdefault(key_ref, signer)


def keystore_from_settings(settings: Settings) -> KeyStore:
    """PKCS#11 if a module is configured, else encrypted files under the key directory. One store per
    configuration per process, so that its decrypted signers are shared by every caller."""
    if settings.pkcs11_module:
        return _pkcs11_store(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin)
    return _file_store(settings.resolved_key_dir.resolve())


@functools.lru_cache(maxsize=16)
def _file_store(key_dir: Path) -> FileKeyStore:
    return FileKeyStore(key_dir)


@functools.lru_cache(maxsize=16)
def _pkcs11_store(module: str, token: str, pin: str) -> KeyStore:
    from jlis.jpki.pkcs11 import Pkcs11KeyStore

    return Pkcs11KeyStore(module, token, pin)
