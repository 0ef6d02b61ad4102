"""File key store: keys encrypted at rest, never overwritten, signers cached."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.jpki.keystore import FileKeyStore, keystore_from_settings
from jlis.jpki.profile import Algorithm
from jlis.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_is_encrypted_pkcs8_with_mode_0600(jpki_keystore: FileKeyStore) -> None:
    ref = jpki_keystore.create(Algorithm.RSA2048_SHA256, "sign-g1")
    assert ref == "file:sign-g1"
    path = jpki_keystore.path_for(ref)
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert _mode(path) == 0o600
    assert _mode(jpki_keystore.key_dir / "jpki-ca.passphrase") == 0o600
    with pytest.raises(TypeError):  # no password: refused
        serialization.load_pem_private_key(pem, password=None)
    key = serialization.load_pem_private_key(pem, password=jpki_keystore.passphrase())
    assert key.public_key() == jpki_keystore.signer(ref).public_key()


@pytest.mark.parametrize("alg", list(Algorithm))
def test_a_new_store_over_the_same_directory_signs_with_the_same_key(tmp_path: Path, alg: Algorithm) -> None:
    ref = FileKeyStore(tmp_path).create(alg, "k")
    signer = FileKeyStore(tmp_path).signer(ref)
    assert signer.algorithm is alg
    sig = signer.sign_bytes(b"data")
    public = signer.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(sig, b"data", padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(sig, b"data", ec.ECDSA(hashes.SHA384()))


def test_signers_are_cached(jpki_keystore: FileKeyStore) -> None:
    ref = jpki_keystore.create(Algorithm.P384_SHA384, "k")
    fresh = FileKeyStore(jpki_keystore.key_dir)
    assert fresh.signer(ref) is fresh.signer(ref)


def test_an_existing_key_is_never_replaced(jpki_keystore: FileKeyStore) -> None:
    ref = jpki_keystore.create(Algorithm.RSA2048_SHA256, "k")
    before = jpki_keystore.path_for(ref).read_bytes()
    with pytest.raises(RuleViolation):
        FileKeyStore(jpki_keystore.key_dir).create(Algorithm.RSA2048_SHA256, "k")
    assert jpki_keystore.path_for(ref).read_bytes() == before


@pytest.mark.parametrize("label", ["", "../escape", "a/b", ".hidden", "x" * 101, "名前"])
def test_bad_labels_are_refused(jpki_keystore: FileKeyStore, label: str) -> None:
    with pytest.raises(InvalidInput) as err:
        jpki_keystore.create(Algorithm.RSA2048_SHA256, label)
    assert err.value.field == "label"


def test_unknown_or_foreign_key_refs(jpki_keystore: FileKeyStore) -> None:
    with pytest.raises(NotFound):
        jpki_keystore.signer("file:nothing")
    with pytest.raises(InvalidInput):
        jpki_keystore.signer("pkcs11:token/key")


def test_wrong_passphrase_cannot_load(tmp_path: Path) -> None:
    ref = FileKeyStore(tmp_path, passphrase_source=lambda: b"right").create(Algorithm.P384_SHA384, "k")
    with pytest.raises(ValueError):
        FileKeyStore(tmp_path, passphrase_source=lambda: b"wrong").signer(ref)


def test_keystore_from_settings_is_shared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = keystore_from_settings(settings)
    assert isinstance(store, FileKeyStore)
    assert store.key_dir == (tmp_path / "keys").resolve()
    assert keystore_from_settings(Settings(data_dir=tmp_path)) is store
