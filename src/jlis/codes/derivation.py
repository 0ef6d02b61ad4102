"""The keyed derivation 住民票コード → 個人番号 (番号法 §8(2)).

The real conversion is secret by design (jlis-facts §12.1). Here it is HMAC-SHA256 under a J-LIS
secret: deterministic for one secret, not invertible without it (and, with 10**11 outputs, not
injective either: :class:`jlis.codes.service.NumberAuthority` handles collisions by moving to the
next ``attempt`` and never reissues a number).

The message format is versioned (``jlis-mynumber-v1``) so that a change of scheme cannot silently
produce the numbers of the old one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets as _secrets
from pathlib import Path

from jlis.codes.checkdigits import mynumber_check_digit
from jlis.codes.models import MyNumber, ResidentCode

DOMAIN = b"jlis-mynumber-v1|"
SECRET_BYTES = 32
# Refuse short keys (fails closed): a guessable secret would make My Numbers computable from
# 住民票コード, which §8(2) forbids.
MIN_SECRET_BYTES = 16


def derive_my_number(secret: bytes, resident_code: ResidentCode, attempt: int = 0) -> MyNumber:
    """HMAC-SHA256(secret, b"jlis-mynumber-v1|" + code + b"|" + attempt) as a big-endian integer,
    mod 10**11, as 11 digits, followed by the check digit."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not isinstance(resident_code, ResidentCode):
        resident_code = ResidentCode(resident_code)
    return Deriver(secret).derive(resident_code, attempt)


@functools.lru_cache(maxsize=16)
def deriver_for(secret: bytes) -> Deriver:
    """The :class:`Deriver` of ``secret``, made once: a counter action makes a NumberAuthority each
    time, and pre-keying the two SHA-256 states costs more than the numbers it derives."""
    return Deriver(secret)


class Deriver:
    """:func:`derive_my_number` for one secret and many codes. Inputs are not validated here; the
    public function does that.

    HMAC is written out (RFC 2104) over two pre-keyed SHA-256 states, the inner one having
    absorbed the domain prefix too: each call then costs two C-level ``copy()`` calls instead of
    a new ``hmac.HMAC`` object, about half the time per number, which matters when seeding a
    million people. The tests check it against :func:`hmac.digest`.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"derivation secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}"
            )
        block = hashlib.sha256().block_size
        key = hashlib.sha256(secret).digest() if len(secret) > block else secret
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + DOMAIN)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def derive(self, resident_code: str, attempt: int) -> MyNumber:
        return MyNumber._trusted(self.digits(resident_code, attempt))

    def digits(self, resident_code: str, attempt: int) -> str:
        """The number as a plain ``str``: bulk code keeps plain strings, which sqlite3 binds and
        ``sorted`` compares on their fast paths (a subclass takes the slow, generic ones)."""
        inner = self._inner.copy()
        inner.update(f"{resident_code}|{attempt}".encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        body = f"{int.from_bytes(outer.digest(), 'big') % 10**11:011d}"
        return f"{body}{mynumber_check_digit(body)}"


def load_or_create_secret(path: Path) -> bytes:
    """Read the secret at ``path``, or create it (32 bytes from :mod:`secrets`, mode 0600).

    Creation never overwrites: the file is written beside the target and hard-linked into place,
    so two processes starting at once end up with the same secret, and a crash mid-write leaves
    no truncated key behind.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_secrets.token_bytes(SECRET_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race: use its secret
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    secret = path.read_bytes()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"derivation secret {path} is too short ({len(secret)} bytes)")
    return secret
