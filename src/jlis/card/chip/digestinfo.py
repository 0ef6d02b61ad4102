"""PKCS#1 v1.5 DigestInfo (RFC 8017 §9.2): the host builds it, the card signs it (facts §2.5)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes

# DER of DigestInfo up to the digest octets, for the hashes open-source tools send to the card.
_PREFIXES: dict[str, bytes] = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def hash_by_name(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name.lower().replace("-", "")]()
    except KeyError:
        raise ValueError(f"unsupported hash {name!r}: use sha1, sha256, sha384 or sha512") from None


def encode(hash_algorithm: hashes.HashAlgorithm, digest: bytes) -> bytes:
    """The DER DigestInfo of ``digest`` (which must have the hash's length)."""
    prefix = _PREFIXES.get(hash_algorithm.name)
    if prefix is None:
        raise ValueError(f"unsupported hash {hash_algorithm.name!r}")
    if len(digest) != hash_algorithm.digest_size:
        raise ValueError(f"a {hash_algorithm.name} digest is {hash_algorithm.digest_size} bytes")
    return prefix + digest


def of_data(hash_algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    """Hash ``data`` and wrap the digest in a DigestInfo."""
    h = hashes.Hash(hash_algorithm)
    h.update(data)
    return encode(hash_algorithm, h.finalize())


def decode(digest_info: bytes) -> tuple[hashes.HashAlgorithm, bytes]:
    """The hash algorithm and digest of a DigestInfo; ValueError for anything else (another hash,
    parameters other than NULL, trailing bytes)."""
    for name, prefix in _PREFIXES.items():
        size = _HASHES[name]().digest_size
        if len(digest_info) == len(prefix) + size and digest_info.startswith(prefix):
            return _HASHES[name](), bytes(digest_info[len(prefix) :])
    raise ValueError("not a DigestInfo of SHA-1, SHA-256, SHA-384 or SHA-512")


def hash_for_raw_digest(digest: bytes) -> hashes.HashAlgorithm | None:
    """For an ECDSA chip given a bare hash: the SHA-2 hash with that length, if any."""
    return {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}.get(len(digest))
