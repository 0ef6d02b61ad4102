"""Fixtures of the LGPKI tests, shared with the certificate-PDF tests (tests/kiosk/pdf).

RSA key generation dominates: :class:`PooledKeyStore` is an in-memory implementation of the
``KeyStore`` protocol that hands out keys from a pool made once per session (the code under test
does not care whether two labels share a key pair). One test in test_ca.py uses the real
:class:`FileKeyStore` to prove the encrypted-file path.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import NotFound, RuleViolation
from jlis.jpki.keystore import FILE_PREFIX, SoftwareSigner, check_label
from jlis.jpki.profile import Algorithm
from jlis.lgwan.ca import OrganisationCA, RoleCertificate

BASE_URL = "http://jlis.test:8000"
CHIYODA = "131016"  # 東京都千代田区
SHINJUKU = "131041"  # 東京都新宿区
CHIYODA_TITLE = "東京都千代田区長"


@functools.cache
def _pool() -> tuple[rsa.RSAPrivateKey, ...]:
    return tuple(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4))


class PooledKeyStore:
    """KeyStore over a fixed pool of RSA keys, cycled; never overwrites a label."""

    def __init__(self) -> None:
        self._next: Iterator[rsa.RSAPrivateKey] = itertools.cycle(_pool())
        self._signers: dict[str, SoftwareSigner] = {}

    def create(self, alg: Algorithm, label: str) -> str:
        if alg is not Algorithm.RSA2048_SHA256:
            raise NotImplementedError("the pool holds RSA-2048 keys only")
        key_ref = FILE_PREFIX + check_label(label)
        if key_ref in self._signers:
            raise RuleViolation("label", "a key with this label already exists")
        self._signers[key_ref] = SoftwareSigner(next(self._next), alg)
        return key_ref

    def signer(self, key_ref: str) -> SoftwareSigner:
        try:
            return self._signers[key_ref]
        except KeyError:
            raise NotFound("CA key", key_ref) from None


@pytest.fixture
def pooled_keystore() -> PooledKeyStore:
    return PooledKeyStore()


@pytest.fixture
def org_ca(
    factory: sessionmaker[Session], clock: FixedClock, pooled_keystore: PooledKeyStore
) -> Callable[[Session], OrganisationCA]:
    """A function giving the organisation CA over a session; the CA and Chiyoda's 職責 exist."""

    def make(session: Session) -> OrganisationCA:
        return OrganisationCA(session, clock, pooled_keystore, BASE_URL, rng=random.Random(7))

    with transaction(factory) as s:
        ca = make(s)
        ca.ensure(actor="test")
        ca.issue_role(CHIYODA, CHIYODA_TITLE, actor="test")
    return make


@pytest.fixture
def chiyoda_role(
    factory: sessionmaker[Session], org_ca: Callable[[Session], OrganisationCA]
) -> RoleCertificate:
    with transaction(factory) as s:
        return org_ca(s).role_for(CHIYODA)
