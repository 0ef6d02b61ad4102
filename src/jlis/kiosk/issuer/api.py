"""HTTP API of the certificate server's data, for the municipality's own staff (the counter):
``/api/v1/municipalities/{lg_code}/kiosk``.

- 印鑑登録: register a seal impression (PNG, base64), look a registration up, abolish it;
- DV 支援措置: start and lift a measure;
- 本籍地利用登録 at the counter of the 本籍 municipality, and the applications made at kiosks:
  list them, approve (checked against the 戸籍) or reject them;
- 証明書 at the counter: the same content the kiosk would get, through the same rules
  (``POST .../certificates``); a refusal answers 409 with its stable ``code`` and Japanese message.

Each call is one transaction. The issuance center's route (a J-LIS principal) comes with the center.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from jlis.auth.models import Principal
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import InvalidInput
from jlis.kiosk.content import CertificateContent, CertificateKind
from jlis.kiosk.issuer.dv import SupportMeasures
from jlis.kiosk.issuer.koseki import KosekiBook
from jlis.kiosk.issuer.models import (
    DEFAULT_RESIDENT_ITEMS,
    RESIDENT_ITEMS,
    AbolishReason,
    HonsekiApplication,
    IssueOptions,
    SealRegistration,
)
from jlis.kiosk.issuer.seals import SealRegister
from jlis.kiosk.issuer.server import CertificateServer, mark_issued
from jlis.registry.models import parse_date
from jlis.web.deps import get_container, staff_of_path

TAG = "コンビニ交付 (証明発行サーバ)"
OPENAPI_TAGS = [
    {
        "name": TAG,
        "description": "市区町村職員が印鑑登録・支援措置・本籍地利用登録を管理し、窓口で証明書の内容を作る",
    }
]

router = APIRouter(prefix="/api/v1/municipalities/{lg_code}/kiosk", tags=[TAG])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "トークンがない・無効"},
    403: {"description": "権限がない (他団体の職員など)"},
    404: {"description": "印鑑登録・住民票・支援措置が見つからない"},
    409: {"description": "規則により交付・登録できない (code と message で理由を示す)"},
    422: {"description": "入力の誤り (field と rule で項目と規則を示す)"},
}

T = TypeVar("T")


def run(request: Request, action: Callable[[Session], T]) -> T:
    container = get_container(request)
    with transaction(container.factory) as s:
        return action(s)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SealIn(Strict):
    resident_code: str = Field(title="住民票コード")
    impression_png_base64: str = Field(title="印影 (PNG, base64)", max_length=400_000)


class SealOut(BaseModel):
    registration_no: str = Field(title="登録番号 (印鑑登録証の番号)")
    resident_code: str
    registered_on: dt.date
    status: str
    impression_sha256: str
    width_px: int
    height_px: int
    abolished_on: dt.date | None
    abolish_reason: str | None

    @classmethod
    def of(cls, v: SealRegistration) -> SealOut:
        return cls(
            registration_no=v.registration_no,
            resident_code=v.resident_code,
            registered_on=v.registered_on,
            status=v.status.value,
            impression_sha256=v.impression.sha256,
            width_px=v.impression.width,
            height_px=v.impression.height,
            abolished_on=v.abolished_on,
            abolish_reason=v.abolish_reason.value if v.abolish_reason else None,
        )


class AbolishIn(Strict):
    reason: str = Field(title="廃止事由", description=", ".join(r.value for r in AbolishReason))


class MeasureIn(Strict):
    resident_code: str = Field(title="住民票コード")
    since: str | None = Field(None, title="開始日", description="YYYY-MM-DD (省略: 今日)")
    until: str | None = Field(None, title="終了日", description="YYYY-MM-DD (省略: 1年後)")


class MeasureOut(BaseModel):
    id: int


class ResidentIn(Strict):
    resident_code: str = Field(title="住民票コード")


class ApplicationOut(BaseModel):
    id: int
    resident_code: str
    head_family_name: str = Field(title="筆頭者の氏")
    head_given_name: str = Field(title="筆頭者の名")
    kiosk_id: str | None = Field(title="申請したキオスク端末")
    applied_at: dt.datetime
    state: str = Field(title="状態", description="pending, approved, rejected")
    decided_at: dt.datetime | None
    decided_by: str | None
    reason: str | None = Field(title="却下の理由")

    @classmethod
    def of(cls, a: HonsekiApplication) -> ApplicationOut:
        return cls(
            id=a.id,
            resident_code=a.resident_code,
            head_family_name=a.head_family_name,
            head_given_name=a.head_given_name,
            kiosk_id=a.kiosk_id,
            applied_at=a.applied_at,
            state=a.state,
            decided_at=a.decided_at,
            decided_by=a.decided_by,
            reason=a.reason,
        )


class RejectIn(Strict):
    reason: str = Field(title="却下の理由", description="200 文字まで")


class CertificateIn(Strict):
    resident_code: str = Field(title="住民票コード")
    kind: str = Field(title="証明書の種類", description=", ".join(k.value for k in CertificateKind))
    request_id: str = Field(title="要求番号", description="8〜64 文字。同じ番号には一度だけ答える")
    household: bool = Field(False, title="世帯全員")
    show_honseki: bool = Field(False, title="本籍を記載")
    show_relationship: bool = Field(False, title="続柄を記載")
    show_my_number: bool = Field(False, title="個人番号を記載")
    items: list[str] = Field(
        list(DEFAULT_RESIDENT_ITEMS), title="証明事項 (記載事項証明書)", description=", ".join(RESIDENT_ITEMS)
    )
    fiscal_year: int | None = Field(None, title="年度 (所得・課税証明書)")

    def options(self) -> IssueOptions:
        return IssueOptions(
            household=self.household,
            show_honseki=self.show_honseki,
            show_relationship=self.show_relationship,
            show_my_number=self.show_my_number,
            items=tuple(self.items),
            fiscal_year=self.fiscal_year,
        )


class RowOut(BaseModel):
    label: str
    value: str


class SectionOut(BaseModel):
    heading: str | None
    rows: list[RowOut]


class CertificateOut(BaseModel):
    kind: str
    title: str
    lg_code: str
    issuer_title: str
    subject_name: str
    request_id: str
    certificate_number: str
    issued_on: dt.date
    sections: list[SectionOut]
    attestation: str
    notes: list[str]

    @classmethod
    def of(cls, c: CertificateContent) -> CertificateOut:
        return cls(
            kind=c.kind.value,
            title=c.title,
            lg_code=c.lg_code,
            issuer_title=c.issuer_title,
            subject_name=c.subject_name,
            request_id=c.request_id,
            certificate_number=c.certificate_number,
            issued_on=c.issued_on,
            sections=[
                SectionOut(heading=s.heading, rows=[RowOut(label=r.label, value=r.value) for r in s.rows])
                for s in c.sections
            ],
            attestation=c.attestation,
            notes=list(c.notes),
        )


def _png(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("印影", "must be base64") from None


@router.post("/seals", status_code=201, response_model=SealOut, responses=ERRORS, summary="印鑑登録")
def register_seal(
    lg_code: str, body: SealIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> SealOut:
    registry = get_container(request).registry
    return run(
        request,
        lambda s: SealOut.of(
            SealRegister(s, get_container(request).clock, lg_code, principal, registry).register(
                body.resident_code, _png(body.impression_png_base64)
            )
        ),
    )


@router.get("/seals/{registration_no}", response_model=SealOut, responses=ERRORS, summary="印鑑登録の照会")
def get_seal(
    lg_code: str, registration_no: str, request: Request, principal: Principal = Depends(staff_of_path)
) -> SealOut:
    container = get_container(request)
    return run(
        request,
        lambda s: SealOut.of(
            SealRegister(s, container.clock, lg_code, principal, container.registry).get(registration_no)
        ),
    )


@router.post(
    "/seals/{registration_no}/abolish", response_model=SealOut, responses=ERRORS, summary="印鑑登録の廃止"
)
def abolish_seal(
    lg_code: str,
    registration_no: str,
    body: AbolishIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> SealOut:
    container = get_container(request)
    return run(
        request,
        lambda s: SealOut.of(
            SealRegister(s, container.clock, lg_code, principal, container.registry).abolish(
                registration_no, body.reason
            )
        ),
    )


@router.post(
    "/support-measures",
    status_code=201,
    response_model=MeasureOut,
    responses=ERRORS,
    summary="支援措置の開始",
)
def start_measure(
    lg_code: str, body: MeasureIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> MeasureOut:
    clock = get_container(request).clock
    since = parse_date("開始日", body.since) if body.since else None
    until = parse_date("終了日", body.until) if body.until else None
    return run(
        request,
        lambda s: MeasureOut(
            id=SupportMeasures(s, clock, lg_code, principal).start(
                body.resident_code, since=since, until=until
            )
        ),
    )


@router.post(
    "/support-measures/{measure_id}/lift", status_code=204, responses=ERRORS, summary="支援措置の終了"
)
def lift_measure(
    lg_code: str, measure_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> None:
    clock = get_container(request).clock
    run(request, lambda s: SupportMeasures(s, clock, lg_code, principal).lift(measure_id))


@router.post("/honseki-use", status_code=204, responses=ERRORS, summary="本籍地利用登録 (窓口)")
def register_honseki_use(
    lg_code: str, body: ResidentIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> None:
    clock = get_container(request).clock
    run(request, lambda s: KosekiBook(s, clock, lg_code, principal).register_use(body.resident_code))


@router.get(
    "/honseki-applications",
    response_model=list[ApplicationOut],
    responses=ERRORS,
    summary="本籍地利用登録申請の一覧 (キオスク端末から)",
)
def list_honseki_applications(
    lg_code: str,
    request: Request,
    state: str = "pending",
    principal: Principal = Depends(staff_of_path),
) -> list[ApplicationOut]:
    """``state``: pending (default), approved, rejected or all."""
    clock = get_container(request).clock
    wanted = None if state == "all" else state
    return run(
        request,
        lambda s: [
            ApplicationOut.of(a) for a in KosekiBook(s, clock, lg_code, principal).applications(wanted)
        ],
    )


@router.post(
    "/honseki-applications/{application_id}/approve",
    response_model=ApplicationOut,
    responses=ERRORS,
    summary="本籍地利用登録申請の承認 (戸籍と筆頭者を確認して登録)",
)
def approve_honseki_application(
    lg_code: str, application_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> ApplicationOut:
    return _decide(request, lg_code, principal, application_id, approve=True)


@router.post(
    "/honseki-applications/{application_id}/reject",
    response_model=ApplicationOut,
    responses=ERRORS,
    summary="本籍地利用登録申請の却下",
)
def reject_honseki_application(
    lg_code: str,
    application_id: int,
    body: RejectIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> ApplicationOut:
    return _decide(request, lg_code, principal, application_id, approve=False, reason=body.reason)


def _decide(
    request: Request,
    lg_code: str,
    principal: Principal,
    application_id: int,
    *,
    approve: bool,
    reason: str | None = None,
) -> ApplicationOut:
    clock = get_container(request).clock
    return run(
        request,
        lambda s: ApplicationOut.of(
            KosekiBook(s, clock, lg_code, principal).decide(application_id, approve=approve, reason=reason)
        ),
    )


@router.post(
    "/certificates",
    response_model=CertificateOut,
    responses=ERRORS,
    summary="証明書の内容 (窓口, 規則を適用)",
)
def issue_certificate(
    lg_code: str, body: CertificateIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> CertificateOut:
    container = get_container(request)
    options = body.options()  # shape errors before any transaction

    def action(s: Session) -> CertificateOut:
        content = _content(s, container, lg_code, principal, body, options)
        # Delivered as it is returned (the counter prints it by its own means): the number is
        # issued now, with no document registered — /verify knows only registered PDFs.
        mark_issued(s, content, None, container.clock.now())
        return CertificateOut.of(content)

    return run(request, action)


def _content(
    s: Session,
    container: Container,
    lg_code: str,
    principal: Principal,
    body: CertificateIn,
    options: IssueOptions,
) -> CertificateContent:
    """The certificate's content after every rule, numbered by the municipality's server (the
    counter's two certificate routes)."""
    server = CertificateServer(
        s,
        container.clock,
        lg_code,
        principal=principal,
        registry=container.registry,
        geography=container.geography,
    )
    return server.issue_content(
        body.resident_code, body.kind, options, body.request_id, container.clock.now()
    )


@router.post(
    "/certificates/pdf",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"application/pdf": {}}, "description": "署名付き PDF"}},
    summary="証明書の交付 (窓口: 規則を適用し、署名付き PDF を作る)",
)
def issue_certificate_pdf(
    lg_code: str, body: CertificateIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> Response:
    """The counter's printout: the same content and rules as ``/certificates``, laid out, signed with
    the municipality's 職責証明書 and registered for public verification (``/verify``), in one
    transaction. The certificate number and the verification code come back as headers too."""
    from jlis.kiosk.pdf.render import check_binding
    from jlis.kiosk.pdf.service import documents_for

    container = get_container(request)
    options = body.options()  # shape errors before any transaction

    def action(s: Session) -> Response:
        content = _content(s, container, lg_code, principal, body, options)
        issued = documents_for(s, container).issue(content, actor=principal.actor)
        check_binding(
            issued.pdf, certificate_number=content.certificate_number, request_id=content.request_id
        )
        mark_issued(s, content, issued.sha256, container.clock.now())
        return Response(
            issued.pdf,
            media_type="application/pdf",
            headers={
                "X-Certificate-Number": issued.certificate_number,
                "X-Verification-Code": issued.code,
                "Content-Disposition": f'attachment; filename="{issued.certificate_number}.pdf"',
            },
        )

    return run(request, action)
