"""Log a user in with the card's authentication key (利用者証明用, 4-digit PIN).

1. The service makes a :class:`Challenge` (:func:`make_challenge`): a random nonce, the time, an
   expiry and the audience (who asks), and keeps it.
2. The user's software has the card sign the challenge (:func:`respond`): the card signs a DigestInfo
   of the challenge's canonical bytes after VERIFY of the authentication PIN.
3. The service checks the answer (:func:`verify_login`): the challenge is its own, unexpired and
   unused, the signature verifies with the certificate's key, and the certificate chains to an
   *authentication* root generation and is not revoked. The user is identified by issuer + serial
   number (発行番号): the authentication certificate carries no personal data (facts §3.2).

A serial changes when the card (or the certificate) is renewed: services link the new 発行番号 to the
account by another means (e.g. a signed consent), as real JPKI relying parties do.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jlis.card.chip.reader import CardReader
from jlis.clock import Clock
from jlis.jpki.rp import cms
from jlis.jpki.rp.errors import BadSignature, LoginRefused, MalformedMessage, WrongTrustStore
from jlis.jpki.rp.status import RevocationChecker, RevocationResult, signature_valid
from jlis.jpki.rp.trust import Purpose, TrustStore, load_certificate
from jlis.jpki.rp.verify import verify_certificate

MAGIC = "jlis-jpki-login/1"
DEFAULT_TTL = dt.timedelta(minutes=5)
MAX_TTL = dt.timedelta(hours=1)
SKEW = dt.timedelta(minutes=2)
NONCE_BYTES = 32


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(text: str, field: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedMessage(field, "must be base64url") from None


def _utc_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Challenge:
    """What the card signs. Its canonical text is both the wire form and the signed bytes, so what
    the user's software shows is exactly what was signed."""

    nonce: bytes
    audience: str
    issued_at: dt.datetime
    expires_at: dt.datetime

    def to_text(self) -> str:
        return "\n".join(
            [MAGIC, self.audience, _b64u(self.nonce), _utc_text(self.issued_at), _utc_text(self.expires_at)]
        )

    def to_bytes(self) -> bytes:
        return self.to_text().encode("ascii")

    @classmethod
    def from_text(cls, text: str) -> Challenge:
        parts = text.split("\n")
        if len(parts) != 5 or parts[0] != MAGIC:
            raise MalformedMessage("challenge", f"must be the 5-line {MAGIC} text")
        _check_audience(parts[1])
        nonce = _unb64u(parts[2], "challenge.nonce")
        if len(nonce) != NONCE_BYTES:
            raise MalformedMessage("challenge.nonce", f"must be {NONCE_BYTES} bytes")
        try:
            issued = dt.datetime.strptime(parts[3], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            expires = dt.datetime.strptime(parts[4], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            raise MalformedMessage("challenge.time", "must be YYYY-MM-DDThh:mm:ssZ") from None
        challenge = cls(nonce, parts[1], issued, expires)
        if challenge.to_text() != text:
            raise MalformedMessage("challenge", "must be in canonical form")
        return challenge


def _check_audience(audience: str) -> None:
    if not audience or len(audience) > 200 or not audience.isascii() or not audience.isprintable():
        raise MalformedMessage("challenge.audience", "must be 1–200 printable ASCII characters")


def make_challenge(
    audience: str,
    *,
    clock: Clock,
    ttl: dt.timedelta = DEFAULT_TTL,
    nonce_source: Callable[[int], bytes] = secrets.token_bytes,
) -> Challenge:
    """A fresh challenge for ``audience`` (the service's name or URL), valid for ``ttl``."""
    _check_audience(audience)
    if not dt.timedelta(0) < ttl <= MAX_TTL:
        raise MalformedMessage("ttl", f"must be positive and at most {MAX_TTL}")
    now = clock.now().astimezone(dt.UTC).replace(microsecond=0)
    return Challenge(nonce_source(NONCE_BYTES), audience, now, now + ttl)


@dataclass(frozen=True)
class LoginResponse:
    """The card's answer: its authentication certificate and the signature over the challenge."""

    certificate_der: bytes
    signature: bytes

    def to_dict(self) -> dict[str, str]:
        return {"certificate": _b64u(self.certificate_der), "signature": _b64u(self.signature)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LoginResponse:
        cert, sig = data.get("certificate"), data.get("signature")
        if not isinstance(cert, str) or not isinstance(sig, str) or len(cert) > 20_000 or len(sig) > 2_000:
            raise MalformedMessage("response", "must hold base64url 'certificate' and 'signature'")
        return cls(_unb64u(cert, "response.certificate"), _unb64u(sig, "response.signature"))


def respond(reader: CardReader, challenge: Challenge, pin: str) -> LoginResponse:
    """Card side: read the authentication certificate (free to read), VERIFY the 4-digit PIN and
    have the card sign the challenge. A wrong PIN costs a try (WrongPin) or is blocked (PinBlocked)."""
    certificate_der = reader.read_certificate("auth")
    hash_name = cms.hash_for_key(load_certificate(certificate_der).public_key())
    info = cms.digest_info(hash_name, cms.digest(hash_name, challenge.to_bytes()))
    return LoginResponse(certificate_der, reader.sign_digest_info("auth", info, pin))


class NonceGuard(Protocol):
    """What :func:`verify_login` asks to refuse a replayed answer: True the first time a nonce is
    consumed, False after. :class:`ReplayGuard` keeps them in memory (one process); a service with
    several processes keeps them in its database (``jlis.jpki.rp.server.NonceLedger``)."""

    def consume(self, nonce: bytes, until: dt.datetime, now: dt.datetime) -> bool: ...


class ReplayGuard:
    """Remembers each challenge nonce until its expiry; a second use is refused. In memory and
    thread-safe: one process. A service with several processes keeps nonces in its own store."""

    def __init__(self) -> None:
        self._used: dict[bytes, dt.datetime] = {}
        self._lock = threading.Lock()

    def consume(self, nonce: bytes, until: dt.datetime, now: dt.datetime) -> bool:
        """True the first time ``nonce`` is seen; False for a replay."""
        with self._lock:
            for old in [n for n, exp in self._used.items() if exp < now - SKEW]:
                del self._used[old]
            if nonce in self._used:
                return False
            self._used[nonce] = until
            return True


@dataclass(frozen=True)
class LoginResult:
    """Who logged in: the authentication certificate's issuer and serial (発行番号), and no more."""

    issuer: str
    serial: str  # lower-case hex
    generation: str  # the trust anchor's label
    not_after: dt.datetime
    revocation: RevocationResult | None

    @property
    def identifier(self) -> str:
        return f"{self.issuer}#{self.serial}"

    def to_dict(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "serial": self.serial,
            "identifier": self.identifier,
            "generation": self.generation,
            "certificate_not_after": self.not_after.isoformat(),
            "revocation": self.revocation.to_dict() if self.revocation else None,
        }


def verify_login(
    challenge: Challenge,
    response: LoginResponse,
    *,
    trust: TrustStore,
    revocation: RevocationChecker | None,
    clock: Clock,
    replay: NonceGuard,
    audience: str | None = None,
) -> LoginResult:
    """Server side. ``challenge`` must be the one this service issued (not the client's copy: the
    caller looks it up by nonce); ``audience``, when given, must be its audience. The nonce is
    consumed only after every other check passed, atomically, so two concurrent uses of one answer
    let at most one through."""
    if trust.purpose is not Purpose.AUTH:
        raise WrongTrustStore("trust", f"a login is verified against a {Purpose.AUTH.label} trust store")
    now = clock.now()
    if audience is not None and challenge.audience != audience:
        raise LoginRefused("challenge.audience", f"must be {audience!r}")
    if now > challenge.expires_at:
        raise LoginRefused("challenge", f"expired at {challenge.expires_at.isoformat()}")
    if challenge.issued_at > now + SKEW:
        raise LoginRefused("challenge", "must not be issued in the future")
    certificate = load_certificate(response.certificate_der)
    hash_name = cms.hash_for_key(certificate.public_key())
    if not signature_valid(
        certificate.public_key(), response.signature, challenge.to_bytes(), cms.HASHES[hash_name]()
    ):
        raise BadSignature("response.signature", "must verify with the authentication certificate's key")
    checked = verify_certificate(certificate, trust=trust, revocation=revocation, at=now)
    if not replay.consume(challenge.nonce, challenge.expires_at, now):
        raise LoginRefused("challenge.nonce", "was already used (replayed answer)")
    return LoginResult(
        issuer=checked.issuer,
        serial=checked.serial,
        generation=checked.anchor.label,
        not_after=certificate.not_valid_after_utc,
        revocation=checked.revocation,
    )
