from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from jlis.card.chip import digestinfo


@pytest.mark.parametrize("alg", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_round_trip(alg: hashes.HashAlgorithm) -> None:
    info = digestinfo.of_data(alg, b"abc")
    decoded, digest = digestinfo.decode(info)
    assert decoded.name == alg.name and len(digest) == alg.digest_size


def test_sha256_known_answer() -> None:
    # RFC 8017 §9.2 note 1: the SHA-256 DigestInfo prefix.
    info = digestinfo.encode(hashes.SHA256(), bytes(32))
    assert info.hex().startswith("3031300d060960864801650304020105000420")


def test_refusals() -> None:
    with pytest.raises(ValueError):
        digestinfo.encode(hashes.MD5(), bytes(16))
    with pytest.raises(ValueError):
        digestinfo.encode(hashes.SHA256(), bytes(31))
    with pytest.raises(ValueError):
        digestinfo.decode(bytes(51))
    with pytest.raises(ValueError):
        digestinfo.hash_by_name("md5")
    assert digestinfo.hash_by_name("SHA-384").name == "sha384"
    assert digestinfo.hash_for_raw_digest(bytes(20)) is None
