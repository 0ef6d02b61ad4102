"""HTTP API of the card management system. Three routers, each with its own principal:

- :data:`router` — the municipal counter, ``/api/v1/municipalities/{lg_code}/cards``: staff of that
  municipality (the card's, or for 継続利用 and PIN resets the one the holder moved into);
- :data:`hotline_router` — the 24-hour hotline, ``/api/v1/card-hotline``: a J-LIS operator acting
  as the call centre (the hotline has no principal kind of its own);
- :data:`jlis_router` — J-LIS, ``/api/v1/jlis/cards``: post and online applications, production
  batches, shipment, 特急発行 tracking, the expiry run, smartphone certificates (for the portal).

Each call is one transaction (:func:`jlis.card.service.card_transaction`: a wrong PIN's counter is
kept). The request models carry text and the service's checks judge it, so a refusal names the
item and the rule the same way here, on the counter pages and in the CLI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from jlis.auth.models import Principal, PrincipalKind
from jlis.card.applications import (
    ApplicationForm,
    Channel,
    ExpressCase,
    ReissueReason,
    parse_application_id,
)
from jlis.card.counter import Delivery, Notice
from jlis.card.documents import parse_documents
from jlis.card.hotline import Caller, SuspensionReason
from jlis.card.lifecycle import CardState, VoidReason
from jlis.card.phone import PhoneProvisioning
from jlis.card.pins import PinSet
from jlis.card.production import BatchResult, ExpressItem
from jlis.card.service import (
    ApplicationView,
    CardDeps,
    CardService,
    CardView,
    EventView,
    card_transaction,
    deps_from_container,
)
from jlis.errors import InvalidInput
from jlis.registry.models import parse_date
from jlis.web.deps import api_principal, get_container, staff_of_path

TAG_COUNTER = "マイナンバーカード (市区町村)"
TAG_HOTLINE = "マイナンバーカード (24時間コールセンター)"
TAG_JLIS = "マイナンバーカード (J-LIS)"

router = APIRouter(prefix="/api/v1/municipalities/{lg_code}/cards", tags=[TAG_COUNTER])
hotline_router = APIRouter(prefix="/api/v1/card-hotline", tags=[TAG_HOTLINE])
jlis_router = APIRouter(prefix="/api/v1/jlis/cards", tags=[TAG_JLIS])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "トークンがない・無効"},
    403: {"description": "権限がない (他団体のカードなど)・暗証番号の誤り (wrong_pin, pin_blocked)"},
    404: {"description": "カード・申請・住民票が見つからない"},
    409: {"description": "現在の状態ではできない操作 (field と rule で理由を示す)"},
    422: {"description": "入力の誤り (field と rule で項目と規則を示す)"},
}

T = TypeVar("T")


operator = api_principal(PrincipalKind.JLIS_OPERATOR)


def card_deps(request: Request) -> CardDeps:
    """The card system's long-lived parts, built once per app (``app.state.card_deps`` may be set
    at start-up, e.g. with a chip pool's key generator)."""
    deps: CardDeps | None = getattr(request.app.state, "card_deps", None)
    if deps is None:
        deps = deps_from_container(get_container(request))
        request.app.state.card_deps = deps
    return deps


def run(request: Request, principal: Principal, action: Callable[[CardService], T]) -> T:
    """One card action in its own transaction."""
    container = get_container(request)
    with card_transaction(container.factory) as s:
        return action(CardService(s, card_deps(request), principal))


# ------------------------------------------------------------------------------------------ models


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationIn(Strict):
    """交付申請書の記載事項."""

    my_number: str = Field(title="個人番号", examples=["123456789018"])
    family_name: str = Field(title="氏")
    given_name: str = Field("", title="名")
    birth_date: str = Field(title="生年月日", description="YYYY-MM-DD")
    express: str | None = Field(None, title="特急発行", description=", ".join(c.value for c in ExpressCase))
    express_event_date: str | None = Field(None, title="特急発行の事由発生日", description="YYYY-MM-DD")
    reissue: str | None = Field(
        None, title="再交付理由", description=", ".join(r.value for r in ReissueReason)
    )
    holder_responsible: bool = Field(True, title="本人の責による損傷")
    certificates: bool = Field(True, title="電子証明書の発行を希望")

    def form(self, lg_code: str, channel: Channel) -> ApplicationForm:
        return ApplicationForm(
            lg_code=lg_code,
            my_number=self.my_number.strip(),
            family_name=self.family_name,
            given_name=self.given_name,
            birth_date=parse_date("生年月日", self.birth_date),
            channel=channel,
            express=ExpressCase.parse(self.express) if self.express else None,
            express_event_date=parse_date("特急発行の事由発生日", self.express_event_date)
            if self.express_event_date
            else None,
            reissue=ReissueReason.parse(self.reissue) if self.reissue else None,
            holder_responsible=self.holder_responsible,
            certificates=self.certificates,
        )


class JlisApplicationIn(ApplicationIn):
    lg_code: str = Field(title="住所地 地方公共団体コード")
    channel: str = Field("post", title="申請方法", description="post | online")


class DocumentsIn(Strict):
    documents: list[str] = Field(
        default_factory=list, title="本人確認書類", description="notice, driver_licence, passport, ..."
    )


class DeliveryIn(DocumentsIn):
    sign_password: str | None = Field(
        None,
        title="署名用電子証明書の暗証番号",
        description="英大文字と数字 6〜16 桁。省略すると署名用は発行しない",
    )
    auth_pin: str = Field(title="利用者証明用電子証明書の暗証番号", description="数字 4 桁")
    juki_pin: str = Field(title="住民基本台帳用の暗証番号", description="数字 4 桁")
    text_pin: str = Field(title="券面事項入力補助用の暗証番号", description="数字 4 桁")
    representative: str | None = Field(None, title="法定代理人", description="15 歳未満は必須")


class ReissueIn(DocumentsIn):
    reason: str = Field(title="再交付理由", description=", ".join(r.value for r in ReissueReason))
    express: bool = Field(False, title="特急発行")
    event_date: str | None = Field(None, title="事由発生日")
    holder_responsible: bool = Field(True, title="本人の責による")
    lost_outside_home: bool = Field(False, title="屋外での紛失")
    police_report_no: str | None = Field(None, title="遺失届の受理番号")
    certificates: bool = Field(True, title="電子証明書の発行を希望")


class ReturnIn(DocumentsIn):
    reason: str = Field(title="廃止理由", description=", ".join(r.value for r in VoidReason))


class PinIn(DocumentsIn):
    juki_pin: str = Field(title="住民基本台帳用の暗証番号")


class PinResetIn(DocumentsIn):
    which: str = Field(title="暗証番号の種類", description="sign | auth | juki | text")
    new_pin: str = Field(title="新しい暗証番号")


class SigningCertificateIn(DocumentsIn):
    password: str = Field(title="署名用電子証明書の暗証番号")


class PhoneIn(Strict):
    sign_password: str = Field(title="カードの署名用電子証明書の暗証番号")
    device: str = Field("", title="端末", max_length=80)


class SuspensionIn(Strict):
    lg_code: str = Field(title="住所地 地方公共団体コード")
    family_name: str = Field(title="氏")
    given_name: str = Field("", title="名")
    birth_date: str = Field(title="生年月日")
    card_id: str | None = Field(None, title="カード番号", description="同姓同名の方がいるときに必要")
    reason: str = Field("lost", title="停止理由", description="lost | stolen | other")
    note: str | None = Field(None, title="メモ", max_length=200)


class BatchIn(Strict):
    limit: int = Field(100, title="件数", ge=1, le=1000)
    algorithm: str | None = Field(None, title="アルゴリズム", description="rsa2048-sha256 | p384-sha384")
    express_only: bool = Field(False, title="特急発行のみ")


class CardOut(BaseModel):
    id: str = Field(title="カード番号")
    application_id: str = Field(title="申請書ID")
    resident_code: str
    lg_code: str
    state: str
    state_label: str
    algorithm: str
    batch_id: str | None
    express: bool
    target_date: dt.date | None
    manufactured_at: dt.datetime | None
    shipped_at: dt.datetime | None
    notice_sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    expires_on: dt.date | None
    suspended_at: dt.datetime | None
    voided_at: dt.datetime | None
    void_reason: str | None
    endorsements: list[dict[str, Any]]

    @classmethod
    def of(cls, v: CardView) -> CardOut:
        return cls(
            id=v.id,
            application_id=v.application_id,
            resident_code=v.resident_code,
            lg_code=v.lg_code,
            state=v.state.value,
            state_label=v.state.label,
            algorithm=v.algorithm,
            batch_id=v.batch_id,
            express=v.express,
            target_date=v.target_date,
            manufactured_at=v.manufactured_at,
            shipped_at=v.shipped_at,
            notice_sent_at=v.notice_sent_at,
            delivered_at=v.delivered_at,
            expires_on=v.expires_on,
            suspended_at=v.suspended_at,
            voided_at=v.voided_at,
            void_reason=v.void_reason.value if v.void_reason else None,
            endorsements=[dict(e) for e in v.endorsements],
        )


class ApplicationOut(BaseModel):
    id: str = Field(title="申請書ID")
    resident_code: str
    lg_code: str
    channel: str
    express_reason: str | None
    reissue_of: str | None
    reissue_reason: str | None
    fee_yen: int = Field(title="手数料 (円)")
    status: str
    rejection: str | None
    received_at: dt.datetime
    target_date: dt.date | None = Field(title="特急発行の目標日")

    @classmethod
    def of(cls, a: ApplicationView) -> ApplicationOut:
        return cls(
            id=a.id,
            resident_code=a.resident_code,
            lg_code=a.lg_code,
            channel=a.channel.value,
            express_reason=a.express_reason.value if a.express_reason else None,
            reissue_of=a.reissue_of,
            reissue_reason=a.reissue_reason.value if a.reissue_reason else None,
            fee_yen=a.fee_yen,
            status=a.status.value,
            rejection=a.rejection,
            received_at=a.received_at,
            target_date=a.target_date,
        )


class EventOut(BaseModel):
    at: dt.datetime
    event: str
    event_label: str
    from_state: str | None
    to_state: str
    actor: str
    cause: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, e: EventView) -> EventOut:
        return cls(
            at=e.at,
            event=e.event.value,
            event_label=e.event.label,
            from_state=e.from_state.value if e.from_state else None,
            to_state=e.to_state.value,
            actor=e.actor,
            cause=e.cause,
            details=e.details,
        )


class NoticeOut(BaseModel):
    """交付通知書."""

    card: CardOut
    name: str
    address: str
    birth_date: dt.date
    municipality: str
    sent_on: dt.date
    collect_by: dt.date

    @classmethod
    def of(cls, n: Notice) -> NoticeOut:
        return cls(
            card=CardOut.of(n.card),
            name=n.name,
            address=n.address,
            birth_date=n.birth_date,
            municipality=n.municipality,
            sent_on=n.sent_on,
            collect_by=n.collect_by,
        )


class DeliveryOut(BaseModel):
    card: CardOut
    auth_serial: str = Field(title="利用者証明用電子証明書のシリアル番号 (16進)")
    sign_serial: str | None = Field(title="署名用電子証明書のシリアル番号 (16進)")

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(card=CardOut.of(d.card), auth_serial=d.auth_serial, sign_serial=d.sign_serial)


class SerialOut(BaseModel):
    serial: str


class PhoneOut(BaseModel):
    card: CardOut
    chip_id: str
    sign_serial: str
    auth_serial: str
    replaced: int = Field(title="失効させた旧端末の証明書の数")

    @classmethod
    def of(cls, p: PhoneProvisioning) -> PhoneOut:
        return cls(
            card=CardOut.of(p.card),
            chip_id=p.chip_id,
            sign_serial=p.sign_serial,
            auth_serial=p.auth_serial,
            replaced=p.replaced,
        )


class BatchOut(BaseModel):
    batch_id: str
    cards: list[CardOut]
    rejected: list[dict[str, str]]

    @classmethod
    def of(cls, b: BatchResult) -> BatchOut:
        return cls(
            batch_id=b.batch_id,
            cards=[CardOut.of(c) for c in b.cards],
            rejected=[{"application_id": a, "reason": r} for a, r in b.rejected],
        )


class ExpressOut(BaseModel):
    application_id: str
    card_id: str | None
    lg_code: str
    case: str
    target_date: dt.date
    stage: str
    shipped_on: dt.date | None
    status: str
    status_label: str

    @classmethod
    def of(cls, i: ExpressItem) -> ExpressOut:
        return cls(
            application_id=i.application_id,
            card_id=i.card_id,
            lg_code=i.lg_code,
            case=i.case.value,
            target_date=i.target_date,
            stage=i.stage,
            shipped_on=i.shipped_on,
            status=i.status.value,
            status_label=i.status.label,
        )


class VoidedOut(BaseModel):
    voided: list[str]


# ------------------------------------------------------------------------------------------ use cases
# Shared with the counter pages and the CLI: one path from request to service for every face.


def apply_delivery(svc: CardService, card_id: str, body: DeliveryIn) -> Delivery:
    pins = PinSet.checked(body.sign_password or None, body.auth_pin, body.juki_pin, body.text_pin)
    return svc.counter.deliver(
        card_id, documents=parse_documents(body.documents), pins=pins, representative=body.representative
    )


def apply_reissue(svc: CardService, card_id: str, body: ReissueIn) -> ApplicationView:
    return svc.counter.reissue(
        card_id,
        ReissueReason.parse(body.reason),
        documents=parse_documents(body.documents),
        express=body.express,
        event_date=parse_date("事由発生日", body.event_date) if body.event_date else None,
        holder_responsible=body.holder_responsible,
        lost_outside_home=body.lost_outside_home,
        police_report_no=body.police_report_no,
        certificates=body.certificates,
    )


def apply_lift(svc: CardService, card_id: str, body: DocumentsIn) -> CardView:
    return svc.counter.lift_suspension(card_id, documents=parse_documents(body.documents))


def apply_suspension(svc: CardService, body: SuspensionIn) -> CardView:
    caller = Caller(
        lg_code=body.lg_code.strip(),
        family_name=body.family_name,
        given_name=body.given_name,
        birth_date=parse_date("生年月日", body.birth_date),
        card_id=body.card_id or None,
    )
    return svc.hotline.suspend(caller, SuspensionReason.parse(body.reason), note=body.note)


def parse_state(value: str | None) -> CardState | None:
    if not value:
        return None
    try:
        return CardState(value)
    except ValueError:
        raise InvalidInput("state", f"must be one of {', '.join(s.value for s in CardState)}") from None


def parse_channel(value: str) -> Channel:
    channel = Channel.parse(value)
    if channel is Channel.COUNTER:
        raise InvalidInput("申請方法", "counter applications are taken by the municipality's API")
    return channel


# ------------------------------------------------------------------------------------------ counter routes


@router.get("", summary="カードの一覧", response_model=list[CardOut], responses=ERRORS)
def list_cards(
    lg_code: str, request: Request, state: str | None = None, principal: Principal = Depends(staff_of_path)
) -> list[CardOut]:
    wanted = parse_state(state)
    return run(request, principal, lambda svc: [CardOut.of(c) for c in svc.cards(lg_code, state=wanted)])


@router.post(
    "/applications",
    summary="交付申請 (窓口)",
    status_code=201,
    response_model=ApplicationOut,
    responses=ERRORS,
)
def counter_application(
    lg_code: str, body: ApplicationIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> ApplicationOut:
    return run(
        request, principal, lambda svc: ApplicationOut.of(svc.apply(body.form(lg_code, Channel.COUNTER)))
    )


@router.get("/{card_id}", summary="カード", response_model=CardOut, responses=ERRORS)
def get_card(
    lg_code: str, card_id: str, request: Request, principal: Principal = Depends(staff_of_path)
) -> CardOut:
    return run(request, principal, lambda svc: CardOut.of(svc.get(card_id)))


@router.get("/{card_id}/events", summary="カードの履歴", response_model=list[EventOut], responses=ERRORS)
def card_events(
    lg_code: str, card_id: str, request: Request, principal: Principal = Depends(staff_of_path)
) -> list[EventOut]:
    return run(request, principal, lambda svc: [EventOut.of(e) for e in svc.events(card_id)])


@router.post("/{card_id}/notice", summary="交付通知書の送付", response_model=NoticeOut, responses=ERRORS)
def send_notice(
    lg_code: str, card_id: str, request: Request, principal: Principal = Depends(staff_of_path)
) -> NoticeOut:
    return run(request, principal, lambda svc: NoticeOut.of(svc.counter.send_notice(card_id)))


@router.post(
    "/{card_id}/delivery",
    summary="交付 (本人確認・暗証番号の設定・電子証明書の発行)",
    response_model=DeliveryOut,
    responses=ERRORS,
)
def deliver(
    lg_code: str,
    card_id: str,
    body: DeliveryIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> DeliveryOut:
    return run(request, principal, lambda svc: DeliveryOut.of(apply_delivery(svc, card_id, body)))


@router.post("/{card_id}/lift", summary="一時停止の解除", response_model=CardOut, responses=ERRORS)
def lift(
    lg_code: str,
    card_id: str,
    body: DocumentsIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> CardOut:
    return run(request, principal, lambda svc: CardOut.of(apply_lift(svc, card_id, body)))


@router.post(
    "/{card_id}/reissue",
    summary="再交付申請",
    status_code=201,
    response_model=ApplicationOut,
    responses=ERRORS,
)
def reissue(
    lg_code: str,
    card_id: str,
    body: ReissueIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> ApplicationOut:
    return run(request, principal, lambda svc: ApplicationOut.of(apply_reissue(svc, card_id, body)))


@router.post("/{card_id}/return", summary="返納・廃止", response_model=CardOut, responses=ERRORS)
def return_card(
    lg_code: str,
    card_id: str,
    body: ReturnIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> CardOut:
    reason = VoidReason.parse(body.reason)
    docs = parse_documents(body.documents)
    return run(
        request, principal, lambda svc: CardOut.of(svc.counter.return_card(card_id, reason, documents=docs))
    )


@router.post(
    "/{card_id}/continued-use",
    summary="継続利用・住所の書換え (転入・転居)",
    response_model=CardOut,
    responses=ERRORS,
    description="転入先 (または転居した団体) の職員が行います。住民基本台帳用の暗証番号が必要です。",
)
def continued_use(
    lg_code: str, card_id: str, body: PinIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> CardOut:
    docs = parse_documents(body.documents)
    return run(
        request,
        principal,
        lambda svc: CardOut.of(svc.counter.continue_use(card_id, juki_pin=body.juki_pin, documents=docs)),
    )


@router.post(
    "/{card_id}/continued-use-abroad",
    summary="国外転出者向けの継続利用 (国外転出届の前に)",
    response_model=CardOut,
    responses=ERRORS,
)
def continued_use_abroad(
    lg_code: str, card_id: str, body: PinIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> CardOut:
    docs = parse_documents(body.documents)
    return run(
        request,
        principal,
        lambda svc: CardOut.of(
            svc.counter.continue_use_abroad(card_id, juki_pin=body.juki_pin, documents=docs)
        ),
    )


@router.post("/{card_id}/pin-reset", summary="暗証番号の初期化", response_model=CardOut, responses=ERRORS)
def pin_reset(
    lg_code: str,
    card_id: str,
    body: PinResetIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> CardOut:
    docs = parse_documents(body.documents)
    return run(
        request,
        principal,
        lambda svc: CardOut.of(svc.counter.reset_pin(card_id, body.which, body.new_pin, documents=docs)),
    )


@router.post(
    "/{card_id}/signing-certificate",
    summary="署名用電子証明書の発行 (異動で失効した後)",
    status_code=201,
    response_model=SerialOut,
    responses=ERRORS,
)
def signing_certificate(
    lg_code: str,
    card_id: str,
    body: SigningCertificateIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> SerialOut:
    docs = parse_documents(body.documents)
    return run(
        request,
        principal,
        lambda svc: SerialOut(
            serial=svc.counter.issue_signing_certificate(card_id, password=body.password, documents=docs)
        ),
    )


@router.post(
    "/{card_id}/phone",
    summary="スマホ用電子証明書の発行",
    status_code=201,
    response_model=PhoneOut,
    responses=ERRORS,
)
def counter_phone(
    lg_code: str, card_id: str, body: PhoneIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> PhoneOut:
    return run(
        request,
        principal,
        lambda svc: PhoneOut.of(
            svc.phone.provision(card_id, sign_password=body.sign_password, device=body.device)
        ),
    )


# ------------------------------------------------------------------------------------------ hotline


@hotline_router.post(
    "/suspensions",
    summary="一時停止 (紛失・盗難の届出)",
    status_code=201,
    response_model=CardOut,
    responses=ERRORS,
    description="24 時間受付。カードは一時停止、電子証明書は一時保留になります。"
    "解除は市区町村の窓口だけです。",
)
def hotline_suspend(
    body: SuspensionIn, request: Request, principal: Principal = Depends(operator)
) -> CardOut:
    return run(request, principal, lambda svc: CardOut.of(apply_suspension(svc, body)))


# ------------------------------------------------------------------------------------------ J-LIS


@jlis_router.post(
    "/applications",
    summary="交付申請 (郵送・オンライン)",
    status_code=201,
    response_model=ApplicationOut,
    responses=ERRORS,
)
def jlis_application(
    body: JlisApplicationIn, request: Request, principal: Principal = Depends(operator)
) -> ApplicationOut:
    channel = parse_channel(body.channel)
    return run(
        request, principal, lambda svc: ApplicationOut.of(svc.apply(body.form(body.lg_code.strip(), channel)))
    )


@jlis_router.get(
    "/applications/{application_id}", summary="申請", response_model=ApplicationOut, responses=ERRORS
)
def jlis_get_application(
    application_id: str, request: Request, principal: Principal = Depends(operator)
) -> ApplicationOut:
    app_id = parse_application_id(application_id)
    return run(request, principal, lambda svc: ApplicationOut.of(svc.application(app_id)))


@jlis_router.post(
    "/batches", summary="製造 (バッチ)", status_code=201, response_model=BatchOut, responses=ERRORS
)
def jlis_batch(body: BatchIn, request: Request, principal: Principal = Depends(operator)) -> BatchOut:
    return run(
        request,
        principal,
        lambda svc: BatchOut.of(
            svc.production.produce(limit=body.limit, algorithm=body.algorithm, express_only=body.express_only)
        ),
    )


@jlis_router.post(
    "/batches/{batch_id}/shipment",
    summary="発送 (市区町村へ)",
    response_model=list[CardOut],
    responses=ERRORS,
)
def jlis_ship(batch_id: str, request: Request, principal: Principal = Depends(operator)) -> list[CardOut]:
    return run(
        request, principal, lambda svc: [CardOut.of(c) for c in svc.production.ship(batch_id=batch_id)]
    )


@jlis_router.get(
    "/express", summary="特急発行の進捗 (1 週間の目標)", response_model=list[ExpressOut], responses=ERRORS
)
def jlis_express(
    request: Request, open_only: bool = False, principal: Principal = Depends(operator)
) -> list[ExpressOut]:
    return run(
        request,
        principal,
        lambda svc: [ExpressOut.of(i) for i in svc.production.express_report(only_open=open_only)],
    )


@jlis_router.post(
    "/expiry-run", summary="有効期限切れカードの廃止", response_model=VoidedOut, responses=ERRORS
)
def jlis_expiry(request: Request, principal: Principal = Depends(operator)) -> VoidedOut:
    return run(request, principal, lambda svc: VoidedOut(voided=svc.production.void_expired()))


@jlis_router.get("/{card_id}", summary="カード", response_model=CardOut, responses=ERRORS)
def jlis_get_card(card_id: str, request: Request, principal: Principal = Depends(operator)) -> CardOut:
    return run(request, principal, lambda svc: CardOut.of(svc.get(card_id)))


@jlis_router.post(
    "/{card_id}/phone",
    summary="スマホ用電子証明書の発行 (マイナポータルの代行)",
    status_code=201,
    response_model=PhoneOut,
    responses=ERRORS,
)
def jlis_phone(
    card_id: str, body: PhoneIn, request: Request, principal: Principal = Depends(operator)
) -> PhoneOut:
    return run(
        request,
        principal,
        lambda svc: PhoneOut.of(
            svc.phone.provision(card_id, sign_password=body.sign_password, device=body.device)
        ),
    )
