"""The keyed derivation 住民票コード -> 個人番号 and the secret file."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.codes.derivation import Deriver, derive_my_number, load_or_create_secret
from jlis.codes.generate import random_resident_code
from jlis.codes.models import MyNumber, ResidentCode
from jlis.errors import InvalidInput

SECRET = b"0123456789abcdef0123456789abcdef"
CODE = ResidentCode("24727059608")

secrets_ = st.binary(min_size=16, max_size=100)
codes = st.randoms(use_true_random=False).map(random_resident_code)
attempts = st.integers(0, 10_000)


def reference(secret: bytes, code: str, attempt: int) -> str:
    """The specification, with the standard library's HMAC."""
    mac = hmac.digest(
        secret, b"jlis-mynumber-v1|" + code.encode() + b"|" + str(attempt).encode(), hashlib.sha256
    )
    return f"{int.from_bytes(mac, 'big') % 10**11:011d}"


@given(secrets_, codes, attempts)
def test_matches_the_specification(secret: bytes, code: ResidentCode, attempt: int) -> None:
    number = derive_my_number(secret, code, attempt)
    assert number[:11] == reference(secret, code, attempt)
    assert Deriver(secret).digits(code, attempt) == number


@given(secrets_, codes, attempts)
def test_always_a_valid_my_number(secret: bytes, code: ResidentCode, attempt: int) -> None:
    number = derive_my_number(secret, code, attempt)
    assert type(number) is MyNumber
    assert MyNumber.parse(number) == number


@given(secrets_, codes)
def test_deterministic_for_one_secret(secret: bytes, code: ResidentCode) -> None:
    assert derive_my_number(secret, code) == derive_my_number(bytes(secret), ResidentCode(str(code)))


@given(secrets_, secrets_, codes)
def test_differs_across_secrets(one: bytes, other: bytes, code: ResidentCode) -> None:
    if one != other:  # equal bodies would be a 1-in-10**11 event
        assert derive_my_number(one, code) != derive_my_number(other, code)


@given(secrets_, codes, attempts)
def test_attempt_changes_the_number(secret: bytes, code: ResidentCode, attempt: int) -> None:
    assert derive_my_number(secret, code, attempt) != derive_my_number(secret, code, attempt + 1)


def test_known_answers() -> None:
    # Pins the scheme: a change would silently change every 個人番号 derived under a secret.
    assert [derive_my_number(SECRET, CODE, a) for a in range(3)] == [
        "864448382570",
        "526140334237",
        "076737811570",
    ]


def test_refuses_weak_or_wrong_inputs() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        derive_my_number(b"short", CODE)
    with pytest.raises(ValueError, match="attempt"):
        derive_my_number(SECRET, CODE, -1)
    with pytest.raises(InvalidInput):
        derive_my_number(SECRET, "25208017644")  # type: ignore[arg-type]


# -- the secret file ----------------------------------------------------------------------------


def test_creates_a_private_secret_with_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "deep" / "mynumber.key"
    secret = load_or_create_secret(path)
    assert len(secret) == 32
    assert path.read_bytes() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_reads_an_existing_secret(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first
    path.write_bytes(b"x" * 40)
    assert load_or_create_secret(path) == b"x" * 40


def test_secrets_differ(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")


def test_refuses_a_truncated_secret(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"abc")
    with pytest.raises(ValueError, match="too short"):
        load_or_create_secret(path)


def test_concurrent_creation_yields_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "k"
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        results.append(load_or_create_secret(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert sorted(os.listdir(tmp_path)) == ["k"]
