"""Password hashing with argon2id (argon2-cffi). The parameters live in each hash, so raising the
cost later only needs :func:`needs_rehash` at the next sign-in."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults (RFC 9106 "low memory": t=3, m=64 MiB, p=4). Tests swap in a cheaper hasher
# through :func:`use_hasher`; production never needs to.
_hasher = PasswordHasher()
_dummy_hash: str | None = None


def use_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Replace the hasher (tests); returns the previous one."""
    global _hasher, _dummy_hash
    previous, _hasher, _dummy_hash = _hasher, hasher, None
    return previous


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True only for a matching password; a malformed stored hash fails closed (False)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def burn_dummy_verification(password: str) -> None:
    """Spend the time of one verification when the user is unknown, so that the answer time does
    not reveal which usernames exist."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("jlis-dummy-password")
    verify_password(_dummy_hash, password)
