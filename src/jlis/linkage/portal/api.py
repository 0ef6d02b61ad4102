"""HTTP API of マイナポータル. Four kinds of caller, each with its own router and guard:

- :data:`router` (``/api/v1/portal``) — the card holder's software: ``login/challenge`` and
  ``login/verify`` are public (the card *is* the credential) and return a portal session token;
  the other routes take ``Authorization: Bearer <portal session token>``;
- :data:`member_router` (``/api/v1/linkage/notices``) — a linkage member posts an お知らせ to a person
  it knows by its own 機関別符号 (a ``linkage_member`` principal's bearer token);
- :data:`municipal_router` (``/api/v1/municipalities/{lg_code}/portal-move-outs``) — that
  municipality's staff list and decide the online 転出届 made to it;
- :data:`verifier_router` (``/api/v1/portal/verifier/consents``) — a 署名検証者 collects the consents
  to the latest-基本4情報 provision made to it, to send on to ``POST /api/v1/jpki/basic4``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from jlis.auth.models import Principal, PrincipalKind
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import Unauthenticated
from jlis.jpki.rp.login import LoginResponse
from jlis.jpki.rp.server import LoginDesk, verify_card_answer
from jlis.jpki.rp.server import login_desk as jpki_login_desk
from jlis.jpki.verifiers import verifier_of
from jlis.linkage.hub.members import member_of
from jlis.linkage.portal.service import (
    MoveOutView,
    PortalDeps,
    PortalService,
    PortalUser,
    SignedIn,
)
from jlis.registry.models import parse_date
from jlis.web.deps import GUARD_ATTR, api_principal, bearer_scheme, get_container, public, staff_of_path

TAG_PORTAL = "マイナポータル (利用者)"
TAG_MEMBER = "マイナポータル (お知らせの送信)"
TAG_MUNICIPAL = "マイナポータル (転出届の受付・市区町村)"
TAG_VERIFIER = "マイナポータル (同意の受取・署名検証者)"
OPENAPI_TAGS = [
    {"name": TAG_PORTAL, "description": "カードでログインし、やりとり履歴・お知らせを見る"},
    {"name": TAG_MEMBER, "description": "情報連携の機関が、自機関の符号で本人にお知らせを送る"},
    {"name": TAG_MUNICIPAL, "description": "市区町村職員が、自団体あてのオンライン転出届を受理・不受理する"},
    {"name": TAG_VERIFIER, "description": "署名検証者が、最新の基本4情報の提供への同意を受け取る"},
]
PORTAL_PATH = "/portal"

router = APIRouter(prefix="/api/v1/portal", tags=[TAG_PORTAL])
member_router = APIRouter(prefix="/api/v1/linkage/notices", tags=[TAG_MEMBER])
municipal_router = APIRouter(prefix="/api/v1/municipalities/{lg_code}/portal-move-outs", tags=[TAG_MUNICIPAL])
verifier_router = APIRouter(prefix="/api/v1/portal/verifier", tags=[TAG_VERIFIER])

T = TypeVar("T")


# ----------------------------------------------------------------------------------------- wiring


def deps_of(container: Container) -> PortalDeps:
    return PortalDeps(
        clock=container.clock,
        secret=container.secret,
        key_dir=container.settings.resolved_key_dir,
        geography=container.geography,
        provision_table=container.provision_table,
        registry=container.registry,
    )


def portal_deps(request: Request) -> PortalDeps:
    """The app's PortalDeps (``app.state.portal_deps`` when a test or the demo set one)."""
    deps: PortalDeps | None = getattr(request.app.state, "portal_deps", None)
    return deps if deps is not None else deps_of(get_container(request))


def run(request: Request, work: Callable[[PortalService], T]) -> T:
    """One transaction per call."""
    with transaction(get_container(request).factory) as s:
        return work(PortalService(s, portal_deps(request)))


def login_desk(request: Request) -> LoginDesk:
    """The portal's own challenges (separate from the JPKI login service's)."""
    return jpki_login_desk(request, "portal_login_desk")


def audience_of(container: Container) -> str:
    return f"{container.settings.resolved_public_url}{PORTAL_PATH}"


def complete_login(request: Request, challenge_text: str, response: LoginResponse) -> SignedIn:
    """Server side of the sign-in: the challenge must be one this portal issued and not yet used;
    the answer is verified against this instance's authentication CA and the certificate's status;
    then J-LIS identifies the holder and the session opens (one transaction)."""
    container = get_container(request)
    desk = login_desk(request)
    challenge = desk.take(challenge_text)
    with transaction(container.factory) as s:
        result = verify_card_answer(s, container, desk, challenge, response, audience_of(container))
        return PortalService(s, portal_deps(request)).sign_in(result)


def _portal_user(request: Request, token: str | None) -> PortalUser | None:
    container = get_container(request)
    with transaction(container.factory) as s:
        return PortalService(s, portal_deps(request)).user_for(token)


def portal_api_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> PortalUser:
    """A card holder signed in to the portal (bearer: the portal session token)."""
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    user = _portal_user(request, token)
    if user is None:
        raise Unauthenticated(
            "a portal session token is required (POST /api/v1/portal/login/verify)",
            field="Authorization",
            rule="must be 'Bearer <portal session token>'",
        )
    return user


setattr(portal_api_user, GUARD_ATTR, (PrincipalKind.RESIDENT,))


# ----------------------------------------------------------------------------------------- models


class ChallengeOut(BaseModel):
    challenge: str = Field(description="カードで署名する文字列 (UTF-8 のまま署名する)")
    audience: str
    expires_at: str


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge: str = Field(max_length=400)
    certificate: str = Field(max_length=20_000, description="利用者証明用電子証明書 (DER, base64url)")
    signature: str = Field(max_length=2_000, description="署名値 (base64url)")


class SessionOut(BaseModel):
    token: str = Field(description="ポータルのセッショントークン (Authorization: Bearer で使う)")
    expires_at: str
    certificate: str = Field(description="ログインした利用者証明用電子証明書 (g<世代>:<発行番号>)")


class ExchangeOut(BaseModel):
    exchange_no: int
    requested_at: str
    provided_at: str | None
    requester: str
    provider: str
    affair: str
    category: str
    items: list[str]
    outcome: str


class NoticeOut(BaseModel):
    id: int
    sender_id: str
    sender_name: str
    title: str
    body: str
    posted_at: str
    read: bool


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=128, description="送信する機関の、本人についての機関別符号")
    title: str = Field(max_length=200)
    body: str = Field(max_length=8000)


class MoveOutOut(BaseModel):
    id: int
    request_no: str
    lg_code: str
    destination: str
    destination_lg_code: str
    planned_date: str
    status: str
    status_label: str
    filed_at: str
    decided_at: str | None
    decided_by: str | None
    certificate_no: str | None
    reason: str | None

    @classmethod
    def of(cls, v: MoveOutView) -> MoveOutOut:
        return cls(
            id=v.id,
            request_no=v.request_no,
            lg_code=v.lg_code,
            destination=v.destination,
            destination_lg_code=v.destination_lg_code,
            planned_date=v.planned_date.isoformat(),
            status=v.status,
            status_label=v.status_label,
            filed_at=v.filed_at.isoformat(),
            decided_at=v.decided_at.isoformat() if v.decided_at else None,
            decided_by=v.decided_by,
            certificate_no=v.certificate_no,
            reason=v.reason,
        )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=400)


class ConsentOut(BaseModel):
    id: int
    purpose: str
    certificate_serial: str = Field(description="同意が対象とする署名用電子証明書の発行番号 (16進)")
    issued_at: str
    valid_until: str
    consent: str = Field(description="同意書 (CMS SignedData, DER, base64)。/api/v1/jpki/basic4 に送る")


# ----------------------------------------------------------------------------------------- routes: holder


@router.post("/login/challenge", dependencies=[Depends(public)], summary="ログイン用チャレンジの発行")
def issue_challenge(request: Request, container: Container = Depends(get_container)) -> ChallengeOut:
    challenge = login_desk(request).issue(audience_of(container), container.clock)
    return ChallengeOut(
        challenge=challenge.to_text(),
        audience=challenge.audience,
        expires_at=challenge.expires_at.isoformat(),
    )


@router.post("/login/verify", dependencies=[Depends(public)], summary="カードの署名でログインする")
def verify(body: VerifyIn, request: Request) -> SessionOut:
    response = LoginResponse.from_dict({"certificate": body.certificate, "signature": body.signature})
    signed = complete_login(request, body.challenge, response)
    return SessionOut(
        token=signed.token,
        expires_at=signed.user.expires_at.isoformat(),
        certificate=signed.user.certificate.label,
    )


@router.post("/logout", summary="ログアウト")
def logout(
    request: Request,
    user: PortalUser = Depends(portal_api_user),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> dict[str, str]:
    token = credentials.credentials if credentials else None
    run(request, lambda svc: svc.sign_out(token))
    return {"status": "signed_out"}


@router.get("/history", summary="やりとり履歴 (情報提供等記録)")
def my_history(request: Request, user: PortalUser = Depends(portal_api_user)) -> list[ExchangeOut]:
    return [
        ExchangeOut(
            exchange_no=v.exchange_no,
            requested_at=v.requested_at.isoformat(),
            provided_at=v.provided_at.isoformat() if v.provided_at else None,
            requester=v.requester_name,
            provider=v.provider_name,
            affair=v.affair_name,
            category=v.category_label,
            items=list(v.item_labels),
            outcome=str(v.outcome.value),
        )
        for v in run(request, lambda svc: svc.history(user))
    ]


@router.get("/identity", summary="本人確認情報 (住基ネット)")
def my_identity(request: Request, user: PortalUser = Depends(portal_api_user)) -> dict[str, Any]:
    v = run(request, lambda svc: svc.identity(user))
    return {
        "name": v.name,
        "name_kana": f"{v.family_kana}\u3000{v.given_kana}".strip(),
        "birth_date": v.birth_date.isoformat(),
        "sex": v.sex,
        "address": v.address,
        "lg_code": v.lg_code,
        "status": v.status,
        "change_reason": v.reason,
        "change_date": v.change_date.isoformat(),
    }


@router.get("/provisions", summary="住基ネットでの本人確認情報の提供状況")
def my_provisions(request: Request, user: PortalUser = Depends(portal_api_user)) -> list[dict[str, Any]]:
    return [
        {
            "at": e.at.isoformat(),
            "recipient": e.recipient,
            "recipient_name": e.recipient_name,
            "affair": e.affair,
            "affair_name": e.affair_name,
            "items": list(e.items),
            "outcome": e.outcome,
        }
        for e in run(request, lambda svc: svc.provision_log(user))
    ]


@router.post("/self-information/{category}", summary="自己情報の照会 (情報提供ネットワークシステム経由)")
def my_information(
    category: str, request: Request, user: PortalUser = Depends(portal_api_user)
) -> dict[str, Any]:
    result = run(request, lambda svc: svc.self_information(user, category))
    a = result.answer
    return {
        "category": result.topic.category,
        "label": result.topic.label,
        "provider": result.provider_id,
        "exchange_no": a.exchange_no,
        "outcome": a.outcome.value,
        "reason": a.reason.value if a.reason else None,
        "data": dict(a.data),
        "shown": [{"label": label, "value": value} for label, value in result.rows],
    }


@router.get("/notices", summary="お知らせ")
def list_notices(request: Request, user: PortalUser = Depends(portal_api_user)) -> list[NoticeOut]:
    return [
        NoticeOut(
            id=n.id,
            sender_id=n.sender_id,
            sender_name=n.sender_name,
            title=n.title,
            body=n.body,
            posted_at=n.posted_at.isoformat(),
            read=n.read_at is not None,
        )
        for n in run(request, lambda svc: svc.notices(user))
    ]


@router.get("/move-outs", summary="転出届 (引越しワンストップ) の状況")
def my_move_outs(request: Request, user: PortalUser = Depends(portal_api_user)) -> list[MoveOutOut]:
    return [MoveOutOut.of(v) for v in run(request, lambda svc: svc.move_outs(user))]


class MoveOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: str = Field(max_length=400, description="転出先の住所")
    destination_lg_code: str = Field(max_length=6, description="転出先の地方公共団体コード")
    planned_date: str = Field(max_length=10, description="転出予定日 (YYYY-MM-DD)")


@router.post("/move-outs", summary="転出届 (引越しワンストップ) を提出する", status_code=201)
def file_move_out(
    body: MoveOutIn, request: Request, user: PortalUser = Depends(portal_api_user)
) -> MoveOutOut:
    planned = parse_date("転出予定日", body.planned_date)
    return MoveOutOut.of(
        run(
            request,
            lambda svc: svc.file_move_out(
                user,
                destination=body.destination,
                destination_lg_code=body.destination_lg_code,
                planned_date=planned,
            ),
        )
    )


@router.post("/notices/{notice_id}/read", summary="お知らせを既読にする")
def read_notice(
    notice_id: int, request: Request, user: PortalUser = Depends(portal_api_user)
) -> dict[str, Any]:
    notice = run(request, lambda svc: svc.mark_read(user, notice_id))
    return {"id": notice.id, "read_at": notice.read_at.isoformat() if notice.read_at else None}


# ----------------------------------------------------------------------------------------- routes: members


@member_router.post("", summary="本人にお知らせを送る (自機関の符号で宛てる)", status_code=201)
def post_notice(
    body: NoticeIn,
    request: Request,
    principal: Principal = Depends(api_principal(PrincipalKind.LINKAGE_MEMBER)),
) -> dict[str, Any]:
    def work(svc: PortalService) -> dict[str, Any]:
        notice = svc.post_notice(member_of(svc.s, principal), body.code, body.title, body.body)
        return {"id": notice.id, "posted_at": notice.posted_at.isoformat()}

    return run(request, work)


# ------------------------------------------------------------------------------ routes: municipality


@municipal_router.get("", summary="自団体あてのオンライン転出届")
def list_requests(
    lg_code: str,
    request: Request,
    status: str | None = "submitted",
    staff: Principal = Depends(staff_of_path),
) -> list[MoveOutOut]:
    wanted = None if status in (None, "", "all") else status
    return [
        MoveOutOut.of(v) for v in run(request, lambda svc: svc.requests_for(staff, lg_code, status=wanted))
    ]


@municipal_router.post(
    "/{request_id}/accept", summary="受理 (転出を記録し、転出証明書情報を転入予定地へ送る)"
)
def accept(
    lg_code: str, request_id: int, request: Request, staff: Principal = Depends(staff_of_path)
) -> MoveOutOut:
    out = MoveOutOut.of(run(request, lambda svc: svc.accept_move_out(staff, lg_code, request_id)))
    _poke_relay(request)
    return out


@municipal_router.post("/{request_id}/reject", summary="不受理")
def reject(
    lg_code: str, request_id: int, body: RejectIn, request: Request, staff: Principal = Depends(staff_of_path)
) -> MoveOutOut:
    return MoveOutOut.of(
        run(request, lambda svc: svc.reject_move_out(staff, lg_code, request_id, body.reason))
    )


def _poke_relay(request: Request) -> None:
    from jlis.web.deps import poke_relay

    poke_relay(request)


# ----------------------------------------------------------------------------------------- routes: verifiers


@verifier_router.get("/consents", summary="自分あての同意 (有効なもの) を受け取る")
def collect_consents(
    request: Request, principal: Principal = Depends(api_principal(PrincipalKind.VERIFIER))
) -> list[ConsentOut]:
    def work(svc: PortalService) -> list[ConsentOut]:
        verifier = verifier_of(svc.s, principal)
        return [
            ConsentOut(
                id=v.id,
                purpose=v.purpose,
                certificate_serial=v.certificate_serial,
                issued_at=v.issued_at.isoformat(),
                valid_until=v.valid_until.isoformat(),
                consent=base64.b64encode(doc).decode("ascii"),
            )
            for v, doc in svc.consents_for_verifier(verifier)
        ]

    return run(request, work)


ROUTERS = (router, member_router, municipal_router, verifier_router)
