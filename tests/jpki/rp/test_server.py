from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.container import Container
from jlis.db import transaction
from jlis.jpki.rp import server
from jlis.jpki.rp.login import Challenge, respond
from jlis.jpki.tables import AUTH, CARD, GOOD, HOLD, CaGenerationRow, CertificateRow
from jlis.settings import load_settings
from jlis.web import errors
from jlis.web.deps import check_route_guards

from .conftest import AUTH_PIN, Card, Root

PATH = "/api/v1/jpki/login"


def add_generation(s: Session, root: Root) -> int:
    row = CaGenerationRow(
        ca_kind=root.kind,
        generation=root.generation,
        algorithm="rsa2048-sha256",
        certificate_der=root.cert.public_bytes(serialization.Encoding.DER),
        key_ref="test:none",
        not_before=root.cert.not_valid_before_utc,
        not_after=root.cert.not_valid_after_utc,
        active=True,
        created_at=root.cert.not_valid_before_utc,
    )
    s.add(row)
    s.flush()
    return row.id


def add_certificate(s: Session, generation_id: int, card: Card, status: str = GOOD) -> None:
    cert = card.auth.cert
    s.add(
        CertificateRow(
            ca_kind=AUTH,
            ca_generation_id=generation_id,
            serial=format(cert.serial_number, "x"),
            holder=CARD,
            card_id=card.chip.card_id or "",
            resident_code="12345678901",
            lg_code="131016",
            subject_cn="x",
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            issued_at=cert.not_valid_before_utc,
            der=cert.public_bytes(serialization.Encoding.DER),
            status=status,
            revoked_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC) if status != GOOD else None,
        )
    )


@pytest.fixture
def client(factory: sessionmaker[Session], rp_clock: FixedClock) -> Iterator[TestClient]:
    container = Container(load_settings(env={}, public_url="http://jlis.test"), clock=rp_clock)
    container.__dict__["factory"] = factory  # the test database, not the configured one
    app = FastAPI()
    app.state.container = container
    errors.install(app)
    app.include_router(server.router)
    check_route_guards(app.routes)
    with TestClient(app) as c:
        yield c


def login(
    client: TestClient, card: Card, pin: str = AUTH_PIN
) -> tuple[int, dict[str, object], dict[str, str]]:
    issued = client.post(f"{PATH}/challenge").json()
    challenge = Challenge.from_text(issued["challenge"])
    assert challenge.audience == "http://jlis.test/api/v1/jpki/login"
    body = {"challenge": issued["challenge"], **respond(card.reader, challenge, pin).to_dict()}
    answer = client.post(f"{PATH}/verify", json=body)
    return answer.status_code, answer.json(), body


def test_login_against_the_instance(
    client: TestClient, factory: sessionmaker[Session], rsa_card: Card
) -> None:
    with transaction(factory) as s:
        add_certificate(s, add_generation(s, rsa_card.auth.root), rsa_card)
    status, body, sent = login(client, rsa_card)
    assert status == 200, body
    assert body["serial"] == format(rsa_card.auth.cert.serial_number, "x")
    assert body["generation"] == "g1"
    # the same answer again: its nonce is on record (in the database: any worker process would see it)
    again = client.post(f"{PATH}/verify", json=sent)
    assert again.status_code == 409
    assert again.json()["field"] == "challenge.nonce" and "replayed" in again.json()["rule"]


def test_a_challenge_is_recognised_by_another_desk_of_the_instance_and_refused_by_another_service(
    rp_clock: FixedClock,
) -> None:
    """Stateless desks: a second worker process (a desk with the same key) accepts the challenge the
    first issued; the desk of another service (another key) refuses it; a changed time is refused."""
    import dataclasses

    from jlis.jpki.rp.errors import LoginRefused
    from jlis.jpki.rp.server import LoginDesk

    issued = LoginDesk(b"k" * 32).issue("http://jlis.test/portal", rp_clock)
    assert LoginDesk(b"k" * 32).take(issued.to_text()) == issued
    with pytest.raises(LoginRefused):
        LoginDesk(b"o" * 32).take(issued.to_text())
    later = dataclasses.replace(issued, expires_at=issued.expires_at + dt.timedelta(hours=1))
    with pytest.raises(LoginRefused):
        LoginDesk(b"k" * 32).take(later.to_text())


def test_a_held_certificate_cannot_log_in(
    client: TestClient, factory: sessionmaker[Session], rsa_card: Card
) -> None:
    with transaction(factory) as s:
        add_certificate(s, add_generation(s, rsa_card.auth.root), rsa_card, status=HOLD)
    status, body, _ = login(client, rsa_card)
    assert status == 409
    assert "一時保留" in str(body["message"])


def test_a_certificate_of_another_ca_is_refused(
    client: TestClient, factory: sessionmaker[Session], rsa_card: Card
) -> None:
    status, body, _ = login(client, rsa_card)  # no CA generation in this instance
    assert status == 422
    assert body["field"] == "certificate.issuer"


def test_a_forged_challenge_is_refused(client: TestClient, rsa_card: Card, rp_clock: FixedClock) -> None:
    from jlis.jpki.rp.login import make_challenge

    own = make_challenge("http://jlis.test/api/v1/jpki/login", clock=rp_clock)
    body = {"challenge": own.to_text(), **respond(rsa_card.reader, own, AUTH_PIN).to_dict()}
    answer = client.post(f"{PATH}/verify", json=body)
    assert answer.status_code == 409
    assert "issued" in answer.json()["rule"]


def test_garbage_is_a_4xx(client: TestClient) -> None:
    assert (
        client.post(
            f"{PATH}/verify", json={"challenge": "x", "certificate": "!", "signature": ""}
        ).status_code
        == 422
    )
    assert client.post(f"{PATH}/verify", json={"nope": 1}).status_code == 422


def test_the_nonce_ledger_refuses_a_second_use_and_purges_expired_nonces(
    factory: sessionmaker[Session], rp_clock: FixedClock
) -> None:
    from sqlalchemy import select

    from jlis.db import transaction
    from jlis.jpki.rp.server import NonceLedger
    from jlis.jpki.tables import LoginNonceRow

    now = rp_clock.now()
    old, fresh = b"o" * 32, b"f" * 32
    with transaction(factory) as s:
        assert NonceLedger(s).consume(old, now - dt.timedelta(hours=1), now - dt.timedelta(hours=2))
        assert NonceLedger(s).consume(fresh, now + dt.timedelta(minutes=5), now)
    with transaction(factory) as s:
        assert not NonceLedger(s).consume(fresh, now + dt.timedelta(minutes=5), now)  # a replay
    with transaction(factory) as s:
        assert NonceLedger(s).consume(b"n" * 32, now + dt.timedelta(minutes=5), now)
    with factory() as s:
        kept = set(s.scalars(select(LoginNonceRow.nonce)))
    assert kept == {fresh.hex(), (b"n" * 32).hex()}  # the expired one went with the last login
