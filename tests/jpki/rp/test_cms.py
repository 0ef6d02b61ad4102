from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms as acms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from jlis.jpki.rp import cms
from jlis.jpki.rp.errors import MalformedMessage

from .conftest import NOW, Pki, sign_bytes


def test_digest_info_is_the_pkcs1_prefix_and_digest() -> None:
    d = hashlib.sha256(b"x").digest()
    info = cms.digest_info("sha256", d)
    assert info == bytes.fromhex("3031300d060960864801650304020105000420") + d
    with pytest.raises(ValueError, match="32 bytes"):
        cms.digest_info("sha256", d[:31])
    assert len(cms.digest_info("sha384", hashlib.sha384(b"x").digest())) == 19 + 48


def test_raw_ecdsa_signature_becomes_der() -> None:
    raw = (5).to_bytes(48, "big") + (7).to_bytes(48, "big")
    assert decode_dss_signature(cms.ecdsa_der(raw, 384)) == (5, 7)
    der = cms.ecdsa_der(raw, 384)
    assert cms.ecdsa_der(der, 384) == der  # already DER: unchanged


@pytest.mark.parametrize("alg", ["rsa", "ec"])
@pytest.mark.parametrize("detached", [True, False])
def test_build_then_parse(pki: Pki, alg: str, detached: bool) -> None:
    leaf = pki.leaf(pki.root("sign", 1, alg), alg=alg)
    der = cms.build(
        b"hello",
        leaf.cert,
        lambda data, h: sign_bytes(leaf.key, data, h),
        signing_time=NOW,
        detached=detached,
    )
    view = cms.parse(der)
    assert view.signer_certificate == leaf.cert
    assert view.hash_name == ("sha256" if alg == "rsa" else "sha384")
    assert view.encapsulated == (None if detached else b"hello")
    assert view.message_digest == cms.digest(view.hash_name, b"hello")
    assert view.signing_time == NOW
    assert view.ess_cert_hashes[0][1] == cms.digest(
        view.hash_name, leaf.cert.public_bytes(serialization.Encoding.DER)
    )
    # The signed bytes are the attributes with the SET OF tag (RFC 5652 §5.4).
    assert view.signed_bytes[0] == 0x31


def test_sign_function_receives_the_attributes_and_the_hash(pki: Pki) -> None:
    leaf = pki.leaf(pki.root("sign"))
    seen: list[tuple[bytes, str]] = []

    def signer(data: bytes, h: str) -> bytes:
        seen.append((data, h))
        return sign_bytes(leaf.key, data, h)

    der = cms.build(b"doc", leaf.cert, signer, signing_time=NOW)
    assert seen == [(cms.parse(der).signed_bytes, "sha256")]


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"-----BEGIN PKCS7-----\n!!!\n-----END PKCS7-----\n"],
)
def test_garbage_is_a_malformed_message(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        cms.parse(data)


def test_two_signers_are_refused(pki: Pki) -> None:
    leaf = pki.leaf(pki.root("sign"))
    der = cms.build(b"doc", leaf.cert, lambda d, h: sign_bytes(leaf.key, d, h), signing_time=NOW)
    info = acms.ContentInfo.load(der)
    sd = info["content"]
    sd["signer_infos"] = [sd["signer_infos"][0], sd["signer_infos"][0]]
    with pytest.raises(MalformedMessage, match="exactly one signer"):
        cms.parse(info.dump(force=True))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
@pytest.mark.parametrize("alg", ["rsa", "ec"])
def test_openssl_verifies_our_signed_data(pki: Pki, tmp_path: Path, alg: str) -> None:
    """An independent checker: openssl cms -verify accepts the signature and chain."""
    root = pki.root("sign", 1, alg)
    leaf = pki.leaf(root, alg=alg)
    (tmp_path / "doc.txt").write_bytes(b"contract text\n")
    (tmp_path / "sig.p7s").write_bytes(
        cms.build(b"contract text\n", leaf.cert, lambda d, h: sign_bytes(leaf.key, d, h), signing_time=NOW)
    )
    (tmp_path / "root.pem").write_bytes(root.cert.public_bytes(serialization.Encoding.PEM))
    args = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.p7s"]
    args += ["-content", "doc.txt", "-CAfile", "root.pem", "-purpose", "any", "-out", "/dev/null"]
    ok = subprocess.run(
        [*args, "-attime", str(int(NOW.timestamp()))], cwd=tmp_path, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "doc.txt").write_bytes(b"contract text!\n")
    bad = subprocess.run(
        [*args, "-attime", str(int(NOW.timestamp()))], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode != 0
