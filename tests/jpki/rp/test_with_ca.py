"""The SDK against the real parts: certificates from ``jlis.jpki.ca`` on a ``VirtualChip``, CRLs from
``jlis.jpki.crl``. (The other SDK tests use a throwaway PKI so that they pin the SDK's own rules.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from jlis.card.chip import VirtualChip
from jlis.card.chip.reader import CardReader
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.jpki.ca import CertificationAuthority
from jlis.jpki.holder import HolderInfo
from jlis.jpki.keystore import FileKeyStore
from jlis.jpki.profile import NEXT_GEN, Algorithm
from jlis.jpki.rp.errors import CertificateRevoked, UnknownGeneration, WrongTrustStore
from jlis.jpki.rp.login import ReplayGuard, make_challenge, respond, verify_login
from jlis.jpki.rp.sign import sign_document
from jlis.jpki.rp.status import CrlChecker, load_crl
from jlis.jpki.rp.trust import TrustStore
from jlis.jpki.rp.verify import verify_signature
from jlis.jpki.tables import AUTH, SIGN, CertificateRow

BASE = "http://jlis.test:8000"
HOLDER = HolderInfo(
    resident_code="12345678901",
    lg_code="131016",
    family_name="渡辺",
    given_name="花子",
    sex="female",
    birth_date=dt.date(1988, 4, 1),
    address="東京都千代田区千代田1番1号",
)


@dataclass
class Issued:
    chip: VirtualChip
    sign: CertificateRow
    auth: CertificateRow

    @property
    def reader(self) -> CardReader:
        return CardReader(self.chip.transmit)


class World:
    def __init__(self, factory: sessionmaker[Session], clock: FixedClock, keys: Path) -> None:
        self.factory, self.clock, self.keystore = factory, clock, FileKeyStore(keys)
        self.keystore_dir = keys
        with transaction(factory) as s:
            self.ca(s).ensure()

    def ca(self, s: Session) -> CertificationAuthority:
        return CertificationAuthority(s, self.clock, self.keystore, BASE)

    def card(self, card_id: str, algorithm: Algorithm = Algorithm.RSA2048_SHA256) -> Issued:
        chip = VirtualChip.manufacture(card_id, algorithm.value)
        with transaction(self.factory) as s:
            ca = self.ca(s)
            kw = {"card_id": card_id, "card_expires_on": dt.date(2036, 4, 1)}
            if algorithm is Algorithm.P384_SHA384:
                kw["profile"] = NEXT_GEN
            sign = ca.issue(SIGN, chip.public_key("sign"), HOLDER, **kw)  # type: ignore[arg-type]
            auth = ca.issue(AUTH, chip.public_key("auth"), HOLDER, **kw)  # type: ignore[arg-type]
            s.flush()
            sign_ca = ca.ca_certificate(ca.generation(SIGN, _gen(s, sign)))
            auth_ca = ca.ca_certificate(ca.generation(AUTH, _gen(s, auth)))
            from cryptography.hazmat.primitives.serialization import Encoding

            chip.install_certificates(
                auth.der, auth_ca.public_bytes(Encoding.DER), sign.der, sign_ca.public_bytes(Encoding.DER)
            )
            s.expunge_all()
        chip.set_pins("1234", "ABC123", "5678", "9012")
        return Issued(chip, sign, auth)

    def trust(self, kind: str) -> TrustStore:
        with transaction(self.factory) as s:
            ca = self.ca(s)
            return TrustStore(
                kind, [(f"g{r.generation}", ca.ca_certificate(r)) for r in ca.generations(kind)]
            )


def _gen(s: Session, row: CertificateRow) -> int:
    from jlis.jpki.tables import CaGenerationRow

    gen = s.get(CaGenerationRow, row.ca_generation_id)
    assert gen is not None
    return gen.generation


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[World]:
    yield World(factory, clock, tmp_path / "keys")


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_real_card_round_trip(world: World, algorithm: Algorithm) -> None:
    card = world.card("CARD1", algorithm)
    der = sign_document(card.reader, "同意します".encode(), "ABC123", clock=world.clock)
    result = verify_signature(
        der, content="同意します".encode(), trust=world.trust(SIGN), revocation=None, clock=world.clock
    )
    b4 = result.basic4
    assert (b4.name, b4.sex, b4.birth_date, b4.address) == (
        "渡辺\u3000花子",
        "female",
        dt.date(1988, 4, 1),
        "東京都千代田区千代田１番１号",  # the CA writes JIS X 0208 (full-width) digits
    )
    assert b4.birth_era.name == "SHOWA"
    assert result.serial == card.sign.serial
    challenge = make_challenge("svc", clock=world.clock)
    login = verify_login(
        challenge,
        respond(card.reader, challenge, "1234"),
        trust=world.trust(AUTH),
        revocation=None,
        clock=world.clock,
        replay=ReplayGuard(),
    )
    assert login.serial == card.auth.serial


def test_trust_stores_of_the_real_cas_stay_apart(world: World) -> None:
    card = world.card("CARD1")
    der = sign_document(card.reader, b"x", "ABC123", clock=world.clock)
    with pytest.raises(WrongTrustStore):
        TrustStore(SIGN, [world.trust(AUTH).anchors[0].certificate])
    with pytest.raises(WrongTrustStore):
        verify_signature(der, content=b"x", trust=world.trust(AUTH), revocation=None, clock=world.clock)


def test_the_right_generation_after_a_rollover(world: World) -> None:
    old = world.card("OLD1")
    with transaction(world.factory) as s:
        world.ca(s).rollover(SIGN)
    new = world.card("NEW1")
    trust = world.trust(SIGN)
    assert len(trust) == 2
    for card, label in ((old, "g1"), (new, "g2")):
        der = sign_document(card.reader, b"x", "ABC123", clock=world.clock)
        assert (
            verify_signature(der, content=b"x", trust=trust, revocation=None, clock=world.clock).anchor.label
            == label
        )
    only_old = TrustStore(SIGN, [trust.anchors[0].certificate])
    der = sign_document(new.reader, b"x", "ABC123", clock=world.clock)
    with pytest.raises(UnknownGeneration):
        verify_signature(der, content=b"x", trust=only_old, revocation=None, clock=world.clock)


def test_revoked_on_the_published_crl(world: World) -> None:
    from jlis.jpki.crl import CrlPublisher, keystore_signers
    from jlis.jpki.revocation import Reason, Revocations

    card, other = world.card("CARD1"), world.card("CARD2")
    der = sign_document(card.reader, b"x", "ABC123", clock=world.clock)
    with transaction(world.factory) as s:
        row = s.get(CertificateRow, card.sign.id)
        assert row is not None
        Revocations(s, world.clock).revoke(row, Reason.AFFILIATION_CHANGED, "test:move")
    world.clock.advance(minutes=1)
    publisher = CrlPublisher(world.factory, world.clock, keystore_signers(world.keystore), BASE)
    partition = publisher.crl(SIGN, 1, "131016")
    crl = load_crl(partition.der)
    assert isinstance(crl, x509.CertificateRevocationList)
    checker = CrlChecker(crls=[("131016.crl", crl)])
    with pytest.raises(CertificateRevoked, match="affiliationChanged"):
        verify_signature(der, content=b"x", trust=world.trust(SIGN), revocation=checker, clock=world.clock)
    good = sign_document(other.reader, b"x", "ABC123", clock=world.clock)
    result = verify_signature(
        good, content=b"x", trust=world.trust(SIGN), revocation=checker, clock=world.clock
    )
    assert result.revocation is not None and result.revocation.method == "crl"


def test_ocsp_and_crl_through_the_running_app(world: World, tmp_path: Path) -> None:
    """OcspChecker against jlis's own responder (the real app, in-process): good, then revoked
    after a revocation — and a refused token is named."""
    from fastapi.testclient import TestClient

    from jlis.auth import service as auth
    from jlis.container import Container
    from jlis.jpki.api import stop_services
    from jlis.jpki.revocation import Reason, Revocations
    from jlis.jpki.rp.errors import RevocationCheckFailed
    from jlis.jpki.rp.http import HttpxFetcher
    from jlis.jpki.rp.status import OcspChecker
    from jlis.jpki.verifiers import VerifierRegistry
    from jlis.settings import load_settings
    from jlis.web import create_app

    card = world.card("CARD1")
    with transaction(world.factory) as s:
        VerifierRegistry(s, world.clock, actor="test").register(
            verifier_id="bank-1",
            name="テスト銀行",
            signature_verifier=True,
            user_verifier=True,
            basis="主務大臣認定事業者",
            agreement_no="A-1",
            agreement_date=world.clock.today(),
            username="bank-1",
            password="bank-1-password-x",
        )
        principal = auth.find_principal(s, "bank-1")
        assert principal is not None
        token = auth.issue_token(s, principal, now=world.clock.now()).token
    settings = load_settings(env={}, public_url=BASE, key_dir=str(world.keystore_dir))
    container = Container(settings, clock=world.clock)
    container.__dict__["factory"] = world.factory
    app = create_app(container)
    try:
        with TestClient(app, base_url=BASE) as client:
            fetcher = HttpxFetcher(client)
            der = sign_document(card.reader, b"x", "ABC123", clock=world.clock)
            trust = world.trust(SIGN)
            good = verify_signature(
                der,
                content=b"x",
                trust=trust,
                revocation=OcspChecker(fetcher, token=token),
                clock=world.clock,
            )
            assert good.revocation is not None and good.revocation.method == "ocsp"
            with pytest.raises(RevocationCheckFailed, match="bearer token"):
                verify_signature(
                    der,
                    content=b"x",
                    trust=trust,
                    revocation=OcspChecker(fetcher, token="nope"),
                    clock=world.clock,
                )
            with transaction(world.factory) as s:
                row = s.get(CertificateRow, card.sign.id)
                assert row is not None
                Revocations(s, world.clock).revoke(row, Reason.KEY_COMPROMISE, "test:lost")
            # with a nonce the answer is signed live; without one the pre-signed answer was dropped
            for require_nonce in (True, False):
                checker = OcspChecker(fetcher, token=token, require_nonce=require_nonce)
                with pytest.raises(CertificateRevoked, match="keyCompromise"):
                    verify_signature(der, content=b"x", trust=trust, revocation=checker, clock=world.clock)
            # and the municipality's CRL partition, fetched from the distribution point in the certificate
            with pytest.raises(CertificateRevoked, match="keyCompromise") as err:
                verify_signature(
                    der,
                    content=b"x",
                    trust=trust,
                    revocation=CrlChecker(fetcher, token=token),
                    clock=world.clock,
                )
            assert err.value.source.endswith("/jpki/crl/sign/g1/131016.crl")
    finally:
        stop_services(app)
