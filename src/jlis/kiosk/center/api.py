"""HTTP API of the issuance center for kiosks: ``/api/v1/kiosk/center/...``.

A kiosk authenticates with the bearer token the center issued when it registered the kiosk
(``ensure_center`` / ``jlis kiosk center kiosk-add``; the table keeps its SHA-256): kiosks are not
users of the instance and have no principal row. The steps then carry the center's handles only —
the session token (``X-Kiosk-Session``) and the request id — never personal data:

| method | path | |
|---|---|---|
| POST | ``/sessions`` | a challenge for the card |
| POST | ``/sessions/login`` | ``{challenge, certificate, signature}`` → the session |
| POST | ``/sessions/card-error`` | ``{challenge, error, tries_left}`` (card failed) → the refusal |
| GET | ``/menu`` | the municipality's offer, fees, 罹災証明書 |
| POST | ``/honseki-use`` | ``{honseki_lg_code}``: 本籍地利用登録 at once (tests, development) |
| POST | ``/honseki-applications`` | ``{honseki_lg_code, head_family_name, head_given_name}``: 申請 |
| POST | ``/requests`` | ``{kind, copies, household, ..., honseki_lg_code}`` → the quote |
| POST | ``/requests/{request_id}/payment`` | ``{amount}`` → the receipt (simulated payment) |
| POST | ``/requests/{request_id}/issue`` | → the certificate (PDF base64) and its verification data |
| DELETE | ``/sessions/current`` | the card was taken: the session ends |

Every refusal is HTTP 409 ``{"error": "refused", "code", "message" (Japanese), "field", "detail"}``.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from jlis.card.chip.errors import CardError, PinBlocked, WrongPin
from jlis.db import read_only
from jlis.errors import InvalidInput, Unauthenticated
from jlis.jpki.rp.login import LoginResponse
from jlis.kiosk.center.errors import CenterRefused
from jlis.kiosk.center.models import CenterSession, KioskChallenge
from jlis.kiosk.center.service import PATH, IssuanceCenter, kiosk_for_token
from jlis.kiosk.issuer.models import DEFAULT_RESIDENT_ITEMS, IssueOptions
from jlis.web.deps import GUARD_ATTR, bearer_scheme, get_container

TAG = "証明書交付センター (キオスク端末)"
KIOSK_GUARD = "kiosk"
router = APIRouter(prefix=PATH, tags=[TAG])
_center_lock = threading.Lock()


def center_of(app: Any) -> IssuanceCenter:
    """The app's center (one per process), over the app's OCSP responder and status-query log."""
    from jlis.jpki.api import services_of

    center: IssuanceCenter | None = getattr(app.state, "kiosk_center", None)
    if center is None:
        with _center_lock:
            center = getattr(app.state, "kiosk_center", None)
            if center is None:
                center = IssuanceCenter(app.state.container, services_of(app))
                app.state.kiosk_center = center
    return center


def kiosk_caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> str:
    """The registered, active kiosk calling (its bearer token); 401 otherwise."""
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    container = get_container(request)
    with container.factory() as s:
        read_only(s)
        try:
            return kiosk_for_token(s, token)
        except CenterRefused as exc:
            raise Unauthenticated(
                exc.message, field="Authorization", rule="must be a registered kiosk's token"
            ) from None


setattr(kiosk_caller, GUARD_ATTR, (KIOSK_GUARD,))


def kiosk_session(
    request: Request, kiosk_id: str = Depends(kiosk_caller), x_kiosk_session: str | None = Header(None)
) -> CenterSession:
    """The center session the calling kiosk names in ``X-Kiosk-Session`` (after the kiosk's own
    token, :func:`kiosk_caller`)."""
    return center_of(request.app).session_by_token(kiosk_id, x_kiosk_session or "")


class ChallengeOut(BaseModel):
    challenge: str = Field(description="カードで署名する文字列")
    expires_at: str


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge: str = Field(max_length=400)
    certificate: str = Field(max_length=20_000, description="利用者証明用電子証明書 (DER, base64url)")
    signature: str = Field(max_length=2_000, description="署名値 (base64url)")


class CardErrorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge: str = Field(max_length=400)
    error: str = Field(pattern="^(wrong_pin|pin_blocked|unreadable)$")
    tries_left: int = Field(default=0, ge=0, le=10)


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    copies: int = 1
    household: bool = False
    show_honseki: bool = False
    show_relationship: bool = False
    show_my_number: bool = False
    items: list[str] | None = None
    fiscal_year: int | None = None
    honseki_lg_code: str | None = None


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int


def _challenge(kiosk_id: str, text: str) -> KioskChallenge:
    from jlis.jpki.rp.login import Challenge

    parsed = Challenge.from_text(text)
    return KioskChallenge(kiosk_id, text, parsed.expires_at)


@router.post("/sessions", summary="カード認証のチャレンジ")
def open_session(request: Request, kiosk_id: str = Depends(kiosk_caller)) -> ChallengeOut:
    challenge = center_of(request.app).open_session(kiosk_id)
    return ChallengeOut(challenge=challenge.text, expires_at=challenge.expires_at.isoformat())


@router.post("/sessions/login", summary="カードの署名の検証 (OCSP で有効性確認)")
def login(body: LoginIn, request: Request, kiosk_id: str = Depends(kiosk_caller)) -> dict[str, Any]:
    center = center_of(request.app)
    response = LoginResponse.from_dict({"certificate": body.certificate, "signature": body.signature})
    session = center.authenticate(_challenge(kiosk_id, body.challenge), response)
    return {
        "session": session.token,
        "lg_code": session.lg_code,
        "municipality": session.municipality,
        "expires_at": session.expires_at.isoformat(),
    }


@router.post(
    "/sessions/card-error",
    status_code=409,
    summary="カードの読み取りの失敗 (暗証番号の誤りなど): 記録して拒否の内容を返す",
)
def card_error(body: CardErrorIn, request: Request, kiosk_id: str = Depends(kiosk_caller)) -> None:
    error: Exception = {
        "wrong_pin": WrongPin("auth", body.tries_left),
        "pin_blocked": PinBlocked("auth"),
    }.get(body.error, CardError(0x6F00, "read"))
    raise center_of(request.app).card_refused(_challenge(kiosk_id, body.challenge), error)


@router.get("/menu", summary="交付できる証明書・手数料")
def menu(request: Request, session: CenterSession = Depends(kiosk_session)) -> dict[str, Any]:
    m = center_of(request.app).menu(session)
    return {
        "lg_code": m.lg_code,
        "municipality": m.municipality,
        "server": m.server.value,
        "my_number_allowed": m.my_number_allowed,
        "items": [
            {
                "kind": i.kind.value,
                "label": i.label,
                "fee": i.fee,
                "options": list(i.options),
                "honseki": i.honseki,
            }
            for i in m.items
        ],
        "disasters": [{"id": d, "name": n} for d, n in m.disasters],
        "honseki_elsewhere": m.honseki_elsewhere,
    }


class HonsekiApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    honseki_lg_code: str = Field(description="本籍地の市区町村コード")
    head_family_name: str = Field(description="筆頭者の氏")
    head_given_name: str = Field(description="筆頭者の名")


@router.post("/honseki-applications", summary="本籍地利用登録申請 (キオスク端末から)")
def honseki_application(
    body: HonsekiApplicationIn,
    request: Request,
    session: CenterSession = Depends(kiosk_session),
) -> dict[str, Any]:
    applied = center_of(request.app).apply_honseki_use(
        session,
        body.honseki_lg_code,
        body.head_family_name,
        body.head_given_name,
    )
    return {
        "lg_code": applied.lg_code,
        "municipality": applied.municipality,
        "applied_at": applied.applied_at.isoformat(),
        "state": "pending",
    }


@router.post("/requests", summary="証明書の要求 (手数料の見積り)")
def make_request(
    body: RequestIn,
    request: Request,
    session: CenterSession = Depends(kiosk_session),
) -> dict[str, Any]:
    center = center_of(request.app)
    options = IssueOptions(
        household=body.household,
        show_honseki=body.show_honseki,
        show_relationship=body.show_relationship,
        show_my_number=body.show_my_number,
        items=tuple(body.items) if body.items else DEFAULT_RESIDENT_ITEMS,
        fiscal_year=body.fiscal_year,
    )
    q = center.request(session, body.kind, options, body.copies, honseki_lg_code=body.honseki_lg_code)
    return {
        "request_id": q.request_id,
        "kind": q.kind.value,
        "label": q.kind.label,
        "copies": q.copies,
        "fee": q.fee,
        "lg_code": q.lg_code,
        "server": q.server.value,
        "expires_at": q.expires_at.isoformat(),
    }


@router.post("/requests/{request_id}/payment", summary="手数料の支払い (模擬)")
def pay(
    request_id: str,
    body: PaymentIn,
    request: Request,
    session: CenterSession = Depends(kiosk_session),
) -> dict[str, Any]:
    center = center_of(request.app)
    receipt = center.pay(center.quote_by_id(session, request_id), body.amount)
    return {
        "request_id": receipt.request_id,
        "amount": receipt.amount,
        "paid_at": receipt.paid_at.isoformat(),
    }


@router.post("/requests/{request_id}/issue", summary="証明書の交付 (PDF と偽造防止の照合情報)")
def issue(
    request_id: str,
    request: Request,
    session: CenterSession = Depends(kiosk_session),
) -> dict[str, Any]:
    center = center_of(request.app)
    issued = center.issue(session, center.receipt_by_id(session, request_id))
    return {
        "request_id": issued.request_id,
        "kind": issued.kind.value,
        "lg_code": issued.lg_code,
        "server": issued.server.value,
        "copies": issued.copies,
        "fee": issued.fee,
        "certificate_number": issued.certificate_number,
        "verification_code": issued.verification_code,
        "verify_url": issued.verify_url,
        "sha256": issued.sha256,
        "pdf_base64": base64.b64encode(issued.pdf).decode("ascii"),
    }


@router.delete("/sessions/current", status_code=204, summary="カードの取り外し (操作の終了)")
def close_session(request: Request, session: CenterSession = Depends(kiosk_session)) -> None:
    center = center_of(request.app)
    center.close(session)


__all__ = ["InvalidInput", "center_of", "kiosk_caller", "router"]
