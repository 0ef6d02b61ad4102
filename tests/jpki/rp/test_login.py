from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from jlis.clock import FixedClock
from jlis.jpki.rp.errors import (
    BadSignature,
    CertificateRevoked,
    LoginRefused,
    MalformedMessage,
    PinBlocked,
    WrongPin,
    WrongTrustStore,
)
from jlis.jpki.rp.login import (
    Challenge,
    LoginResponse,
    ReplayGuard,
    make_challenge,
    respond,
    verify_login,
)
from jlis.jpki.rp.status import OcspChecker
from jlis.jpki.rp.trust import TrustStore

from .conftest import AUTH_PIN, Card, FakeFetcher, Pki, make_card

AUD = "https://bank.example/login"


def auth_store(card: Card) -> TrustStore:
    return TrustStore("auth", [("g", card.auth.root.cert)])


@pytest.mark.parametrize("card_name", ["rsa_card", "ec_card"])
def test_login_happy_path(request: pytest.FixtureRequest, rp_clock: FixedClock, card_name: str) -> None:
    card: Card = request.getfixturevalue(card_name)
    challenge = make_challenge(AUD, clock=rp_clock)
    response = respond(card.reader, challenge, AUTH_PIN)
    result = verify_login(
        challenge,
        response,
        trust=auth_store(card),
        revocation=None,
        clock=rp_clock,
        replay=ReplayGuard(),
        audience=AUD,
    )
    assert result.serial == format(card.auth.cert.serial_number, "x")
    assert result.issuer == card.auth.cert.issuer.rfc4514_string()
    assert result.identifier.endswith("#" + result.serial)
    assert "name" not in result.to_dict() and "basic4" not in result.to_dict()  # no personal data


def test_the_response_travels_as_json(rsa_card: Card, rp_clock: FixedClock) -> None:
    challenge = make_challenge(AUD, clock=rp_clock)
    wire = Challenge.from_text(challenge.to_text())
    assert wire == challenge
    response = LoginResponse.from_dict(respond(rsa_card.reader, wire, AUTH_PIN).to_dict())
    verify_login(
        challenge, response, trust=auth_store(rsa_card), revocation=None, clock=rp_clock, replay=ReplayGuard()
    )


def test_replay_is_refused(rsa_card: Card, rp_clock: FixedClock) -> None:
    guard = ReplayGuard()
    challenge = make_challenge(AUD, clock=rp_clock)
    response = respond(rsa_card.reader, challenge, AUTH_PIN)
    kw = {"trust": auth_store(rsa_card), "revocation": None, "clock": rp_clock, "replay": guard}
    verify_login(challenge, response, **kw)  # type: ignore[arg-type]
    with pytest.raises(LoginRefused, match="already used"):
        verify_login(challenge, response, **kw)  # type: ignore[arg-type]


def test_expired_challenge_is_refused(rsa_card: Card, rp_clock: FixedClock) -> None:
    challenge = make_challenge(AUD, clock=rp_clock, ttl=dt.timedelta(minutes=1))
    response = respond(rsa_card.reader, challenge, AUTH_PIN)
    rp_clock.advance(minutes=2)
    with pytest.raises(LoginRefused, match="expired"):
        verify_login(
            challenge,
            response,
            trust=auth_store(rsa_card),
            revocation=None,
            clock=rp_clock,
            replay=ReplayGuard(),
        )


def test_other_audience_is_refused(rsa_card: Card, rp_clock: FixedClock) -> None:
    challenge = make_challenge("https://evil.example", clock=rp_clock)
    response = respond(rsa_card.reader, challenge, AUTH_PIN)
    with pytest.raises(LoginRefused, match="audience"):
        verify_login(
            challenge,
            response,
            trust=auth_store(rsa_card),
            revocation=None,
            clock=rp_clock,
            replay=ReplayGuard(),
            audience=AUD,
        )


def test_answer_to_another_challenge_is_a_bad_signature(rsa_card: Card, rp_clock: FixedClock) -> None:
    first, second = make_challenge(AUD, clock=rp_clock), make_challenge(AUD, clock=rp_clock)
    response = respond(rsa_card.reader, first, AUTH_PIN)
    with pytest.raises(BadSignature):
        verify_login(
            second,
            response,
            trust=auth_store(rsa_card),
            revocation=None,
            clock=rp_clock,
            replay=ReplayGuard(),
        )


def test_wrong_pin_decrements_the_counter_then_blocks(pki: Pki, rp_clock: FixedClock) -> None:
    card = make_card(pki)
    challenge = make_challenge(AUD, clock=rp_clock)
    with pytest.raises(WrongPin) as err:
        respond(card.reader, challenge, "0000")
    assert err.value.tries_left == 2
    assert card.chip.pin_tries_left("auth") == 2
    with pytest.raises(WrongPin):
        respond(card.reader, challenge, "0000")
    with pytest.raises(PinBlocked):
        respond(card.reader, challenge, "0000")
    with pytest.raises(PinBlocked):
        respond(card.reader, challenge, AUTH_PIN)  # the right PIN no longer helps
    assert card.chip.pin_tries_left("auth") == 0


def test_a_signing_certificate_cannot_log_in(rsa_card: Card, rp_clock: FixedClock) -> None:
    challenge = make_challenge(AUD, clock=rp_clock)
    reader = rsa_card.reader
    # A client that swaps in the signing certificate and key: refused by policy, whatever the signature.
    from jlis.jpki.rp import cms

    info = cms.digest_info("sha256", cms.digest("sha256", challenge.to_bytes()))
    sig = reader.sign_digest_info("sign", info, "ABC123")
    response = LoginResponse(rsa_card.sign.cert.public_bytes(serialization.Encoding.DER), sig)
    with pytest.raises(WrongTrustStore, match="署名用"):
        verify_login(
            challenge,
            response,
            trust=auth_store(rsa_card),
            revocation=None,
            clock=rp_clock,
            replay=ReplayGuard(),
        )
    # and a signing trust store is refused for logins
    with pytest.raises(WrongTrustStore):
        verify_login(
            challenge,
            response,
            trust=TrustStore("sign", [rsa_card.sign.root.cert]),
            revocation=None,
            clock=rp_clock,
            replay=ReplayGuard(),
        )


def test_revoked_authentication_certificate_cannot_log_in(
    pki: Pki, rsa_card: Card, rp_clock: FixedClock, fetcher: FakeFetcher
) -> None:
    fetcher.serve(
        "http://jlis.test/jpki/ocsp/auth", pki.ocsp_answer(rsa_card.auth, status=ocsp.OCSPCertStatus.REVOKED)
    )
    challenge = make_challenge(AUD, clock=rp_clock)
    response = respond(rsa_card.reader, challenge, AUTH_PIN)
    guard = ReplayGuard()
    with pytest.raises(CertificateRevoked):
        verify_login(
            challenge,
            response,
            trust=auth_store(rsa_card),
            revocation=OcspChecker(fetcher),
            clock=rp_clock,
            replay=guard,
        )
    # a refused login does not burn the nonce for nothing: it was never accepted
    assert guard.consume(challenge.nonce, challenge.expires_at, rp_clock.now())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "jlis-jpki-login/1\naud\nAAAA\n2026-11-26T01:00:00Z\n2026-11-26T01:05:00Z",
        "other/1\naud\n" + "A" * 43 + "\n2026-11-26T01:00:00Z\n2026-11-26T01:05:00Z",
        "jlis-jpki-login/1\naud\n" + "A" * 43 + "\n26-11-26\n2026-11-26T01:05:00Z",
    ],
)
def test_malformed_challenges(text: str) -> None:
    with pytest.raises(MalformedMessage):
        Challenge.from_text(text)
