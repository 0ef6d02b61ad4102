"""Card login against a running jlis: the instance acts as a relying party of its own
authentication CA (a stand-in for マイナポータル-style "ログイン with the card").

    POST /api/v1/jpki/login/challenge   → {"challenge": "<text to sign>", "expires_at": ...}
    POST /api/v1/jpki/login/verify      {"challenge", "certificate", "signature"} → the 発行番号

Both routes are public: the card *is* the credential. The challenge must be one this process issued
and not yet used (kept in memory, taken once); the certificate must chain to an authentication CA
generation of this instance and be ``good`` in its certificate table (the same status the OCSP
responder serves, read directly: the verifier and the CA are one process here). One process only:
with several workers a challenge issued by one is unknown to the others (documented limitation).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import threading

from cryptography import x509
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jlis.clock import Clock
from jlis.container import Container
from jlis.db import transaction
from jlis.jpki.rp.errors import CertificateRevoked, LoginRefused, RevocationUnknown
from jlis.jpki.rp.login import (
    NONCE_BYTES,
    SKEW,
    Challenge,
    LoginResponse,
    LoginResult,
    make_challenge,
    verify_login,
)
from jlis.jpki.rp.status import RevocationResult
from jlis.jpki.rp.trust import Purpose, TrustAnchor, TrustStore
from jlis.jpki.tables import AUTH, GOOD, HOLD, CaGenerationRow, CertificateRow, LoginNonceRow
from jlis.web.deps import get_container, public

TAG = "公的個人認証 (カードでログイン)"
PATH = "/api/v1/jpki/login"
router = APIRouter(prefix=PATH, tags=[TAG])


class ChallengeOut(BaseModel):
    challenge: str = Field(description="カードで署名する文字列 (そのまま UTF-8 で署名する)")
    audience: str
    expires_at: str


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge: str = Field(max_length=400, description="/challenge が返した文字列")
    certificate: str = Field(max_length=20_000, description="利用者証明用電子証明書 (DER, base64url)")
    signature: str = Field(max_length=2_000, description="署名値 (base64url)")


class LoginOut(BaseModel):
    issuer: str
    serial: str = Field(description="発行番号 (16進)")
    identifier: str = Field(description="issuer#serial: 利用者の識別子 (個人情報を含まない)")
    generation: str
    certificate_not_after: str


class LoginDesk:
    """Issues card-login challenges and recognises its own, without keeping them: the nonce carries
    a MAC (under a key derived from the instance secret and the desk's name) over itself, the
    audience and the times, so any worker process of the instance accepts a challenge another one
    issued, and a challenge of one desk (the portal's, say) is refused by another. A used nonce is
    recorded in the database by :class:`NonceLedger`, in the login's own transaction."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, random_part: bytes, challenge: Challenge) -> bytes:
        data = b"|".join(
            [random_part, challenge.audience.encode(), challenge.issued_at.isoformat().encode(),
             challenge.expires_at.isoformat().encode()]
        )  # fmt: skip
        return hmac.new(self._key, data, hashlib.sha256).digest()[: NONCE_BYTES // 2]

    def issue(self, audience: str, clock: Clock) -> Challenge:
        challenge = make_challenge(audience, clock=clock)
        random_part = challenge.nonce[: NONCE_BYTES // 2]
        return dataclasses.replace(challenge, nonce=random_part + self._mac(random_part, challenge))

    def take(self, text: str) -> Challenge:
        """The issued challenge the client echoes (expiry and single use are checked at the login)."""
        echoed = Challenge.from_text(text)
        random_part, tag = echoed.nonce[: NONCE_BYTES // 2], echoed.nonce[NONCE_BYTES // 2 :]
        if not hmac.compare_digest(tag, self._mac(random_part, echoed)):
            raise LoginRefused("challenge", "must be a challenge this service issued")
        return echoed


PURGE_BATCH = 100


class NonceLedger:
    """:class:`jlis.jpki.rp.login.ReplayGuard` over the database: the first use of a nonce inserts
    it, a second use finds it there (in any worker process). Expired nonces are purged as it goes."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def consume(self, nonce: bytes, until: dt.datetime, now: dt.datetime) -> bool:
        # A few expired nonces go with each login; on PostgreSQL rows another login is purging are
        # skipped, so concurrent logins never wait for (or deadlock on) each other's purge.
        expired = select(LoginNonceRow.nonce).where(LoginNonceRow.expires_at < now - SKEW).limit(PURGE_BATCH)
        if self.session.get_bind().dialect.name == "postgresql":
            expired = expired.with_for_update(skip_locked=True)
        self.session.execute(delete(LoginNonceRow).where(LoginNonceRow.nonce.in_(expired.scalar_subquery())))
        try:
            with self.session.begin_nested():
                self.session.add(LoginNonceRow(nonce=nonce.hex(), expires_at=until))
        except IntegrityError:
            return False
        return True


_desk_lock = threading.Lock()


def login_desk(request: Request, name: str = "jpki_login_desk") -> LoginDesk:
    """The app's desk called ``name``: each service that logs cards in (this login service, the
    portal, ...) has its own key, so a challenge of one is never accepted by another."""
    with _desk_lock:
        desk = getattr(request.app.state, name, None)
        if desk is None:
            secret = get_container(request).secret
            desk = LoginDesk(hmac.new(secret, b"jlis-login-desk:" + name.encode(), hashlib.sha256).digest())
            setattr(request.app.state, name, desk)
    return desk


def audience_of(container: Container) -> str:
    return f"{container.settings.resolved_public_url}{PATH}"


def auth_trust_store(session: Session) -> TrustStore:
    """Every authentication CA generation of this instance not on the ARL."""
    rows = session.scalars(
        select(CaGenerationRow)
        .where(CaGenerationRow.ca_kind == AUTH, CaGenerationRow.revoked_at.is_(None))
        .order_by(CaGenerationRow.generation)
    ).all()
    return TrustStore(
        Purpose.AUTH, [(f"g{r.generation}", x509.load_der_x509_certificate(r.certificate_der)) for r in rows]
    )


def verify_card_answer(
    session: Session,
    container: Container,
    desk: LoginDesk,
    challenge: Challenge,
    response: LoginResponse,
    audience: str,
) -> LoginResult:
    """A card's answer to ``challenge`` (taken from ``desk``), checked against this instance's
    authentication CA generations and its certificate table: signature, chain, status, audience,
    expiry, and the nonce used once. The one check behind every card login of the running stack."""
    return verify_login(
        challenge,
        response,
        trust=auth_trust_store(session),
        revocation=DatabaseStatus(session),
        clock=container.clock,
        replay=NonceLedger(session),
        audience=audience,
    )


class DatabaseStatus:
    """The certificate's status as the CA's own table records it (the source the OCSP responder and
    the CRLs are made from). A certificate the table does not know is refused."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def check(self, certificate: x509.Certificate, anchor: TrustAnchor, at: dt.datetime) -> RevocationResult:
        generation = int(anchor.label.removeprefix("g"))
        row = self.session.execute(
            select(CertificateRow.status, CertificateRow.revoked_at, CertificateRow.revocation_reason)
            .join(CaGenerationRow, CaGenerationRow.id == CertificateRow.ca_generation_id)
            .where(
                CaGenerationRow.ca_kind == AUTH,
                CaGenerationRow.generation == generation,
                CertificateRow.serial == format(certificate.serial_number, "x"),
            )
        ).first()
        if row is None:
            raise RevocationUnknown("certificate", "was not issued by this instance's authentication CA")
        status, revoked_at, reason = row
        if status != GOOD:
            at_text = revoked_at.isoformat() if revoked_at else "unknown time"
            rule = f"is on hold (一時保留) since {at_text}" if status == HOLD else f"was revoked at {at_text}"
            raise CertificateRevoked(
                "certificate", rule, revoked_at=revoked_at, reason=reason, source="jpki_certificates"
            )
        return RevocationResult("database", "jpki_certificates", at, None)


@router.post("/challenge", dependencies=[Depends(public)], summary="ログイン用チャレンジの発行")
def issue_challenge(request: Request, container: Container = Depends(get_container)) -> ChallengeOut:
    challenge = login_desk(request).issue(audience_of(container), container.clock)
    return ChallengeOut(
        challenge=challenge.to_text(),
        audience=challenge.audience,
        expires_at=challenge.expires_at.isoformat(),
    )


@router.post("/verify", dependencies=[Depends(public)], summary="カードの署名を検証して発行番号を返す")
def verify(body: VerifyIn, request: Request, container: Container = Depends(get_container)) -> LoginOut:
    desk = login_desk(request)
    challenge = desk.take(body.challenge)
    response = LoginResponse.from_dict({"certificate": body.certificate, "signature": body.signature})
    with transaction(container.factory) as s:  # writes the used nonce, nothing else
        result = verify_card_answer(s, container, desk, challenge, response, audience_of(container))
    return LoginOut(
        issuer=result.issuer,
        serial=result.serial,
        identifier=result.identifier,
        generation=result.generation,
        certificate_not_after=result.not_after.isoformat(),
    )
