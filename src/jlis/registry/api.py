"""HTTP API of the municipal register (既存住基), for municipal staff of that municipality only.

The request models carry text for dates, numbers and names and do not judge them: the register's
own checks do, so that every refusal names the item and the rule the same way on every channel
(API, counter pages, CLI). The counter pages build these same models from their forms and call
the same ``apply_*`` functions below.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from jlis.auth.models import Principal
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import InvalidInput
from jlis.groupcommit import GroupCommit
from jlis.registry.desk import counter_group_commit
from jlis.registry.models import (
    HistoryEntry,
    PersonName,
    ResidentView,
    Sex,
    check_kana,
    check_name,
    normalise_text,
    parse_date,
)
from jlis.registry.service import MoveOutCertificate, NewPerson, Placement, RegistryService
from jlis.web.deps import get_container, poke_relay, staff_of_path

TAG = "既存住基 (市区町村)"
router = APIRouter(prefix="/api/v1/municipalities/{lg_code}", tags=[TAG])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "トークンがない・無効"},
    403: {"description": "この団体の職員ではない"},
    404: {"description": "住民票・世帯がこの団体にない"},
    409: {"description": "現在の状態ではできない異動 (field と rule で理由を示す)"},
    422: {"description": "入力の誤り (field と rule で項目と規則を示す)"},
}


def registry(session: Session, container: Container, lg_code: str, principal: Principal) -> RegistryService:
    return container.registry(session, lg_code, principal.actor)


T = TypeVar("T")


def start_services(app: FastAPI) -> GroupCommit:
    """Start the group commit of counter actions (call from the app's lifespan)."""
    desk = counter_desk(app)
    desk.start()
    return desk


def stop_services(app: FastAPI) -> None:
    """Commit the queued counter actions, then stop grouping them."""
    desk: GroupCommit | None = getattr(app.state, "counter_desk", None)
    if desk is not None:
        desk.stop()


def counter_desk(app: FastAPI) -> GroupCommit:
    """The app's group commit of counter actions (made on first use; it runs each action alone in
    its own transaction until :func:`start_services` starts it)."""
    desk: GroupCommit | None = getattr(app.state, "counter_desk", None)
    if desk is None:
        desk = counter_group_commit(app.state.container.factory)
        app.state.counter_desk = desk
    return desk


def at_counter(
    request: Request,
    lg_code: str,
    principal: Principal,
    action: Callable[[RegistryService], T],
    resident: int | None = None,
) -> T:
    """Run one counter action, committed (with the other clerks' actions of the moment: see
    jlis.groupcommit) before this returns, then wake the relay so the change leaves now.
    ``resident``: the record the action changes (the desk reads it ahead with its group's)."""
    container = get_container(request)
    desk = counter_desk(request.app)
    result = desk.run(lambda s: action(registry(s, container, lg_code, principal)), hint=resident)
    poke_relay(request)
    return result


def reading(
    request: Request, lg_code: str, principal: Principal, action: Callable[[RegistryService], T]
) -> T:
    """A read at the counter: its own transaction, which also holds the audit entries it writes."""
    container = get_container(request)
    with transaction(container.factory) as s:
        return action(registry(s, container, lg_code, principal))


# ------------------------------------------------------------------------------------------ parsing


def optional_date(field: str, value: str | None) -> dt.date | None:
    return parse_date(field, value) if value not in (None, "") else None


def parse_sex(value: str) -> Sex:
    text = (value or "").strip()
    aliases = {"男": Sex.MALE, "女": Sex.FEMALE}
    try:
        return aliases.get(text) or Sex(text)
    except ValueError:
        raise InvalidInput("性別", "must be male or female") from None


def blank_to_none(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


def optional_text(field: str, value: str | None, limit: int) -> str | None:
    return check_text(field, value, limit) if blank_to_none(value) else None


def check_text(field: str, value: str | None, limit: int) -> str:
    """A free-text item the register stores as given (an address, a 本籍): present, bounded, printable.
    Checked here because the register does not check these itself (see docs/web.md)."""
    value = normalise_text(value or "")
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise InvalidInput(field, "no control characters")
    return value


# ------------------------------------------------------------------------------------------ models


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NameIn(Strict):
    family_name: str = Field(title="氏", examples=["山田"])
    given_name: str = Field("", title="名", examples=["花子"])
    family_kana: str = Field(title="氏の振り仮名", description="カタカナ", examples=["ヤマダ"])
    given_kana: str = Field("", title="名の振り仮名", description="カタカナ", examples=["ハナコ"])

    def checked(self) -> PersonName:
        return PersonName.checked(self.family_name, self.given_name, self.family_kana, self.given_kana)


class BirthIn(NameIn):
    birth_date: str = Field(title="生年月日", description="YYYY-MM-DD", examples=["2026-11-20"])
    sex: str = Field(title="性別", description="male | female", examples=["female"])
    relationship: str = Field("子", title="続柄")
    nationality: str = Field("JP", title="国籍", description="ISO 3166 の 2 文字 (日本は JP)")
    honseki: str | None = Field(None, title="本籍")
    honseki_lg_code: str | None = Field(None, title="本籍 地方公共団体コード")
    notified_on: str | None = Field(None, title="届出日", description="YYYY-MM-DD。省略時は本日")


class PlacementIn(Strict):
    town_id: str = Field(title="町字", description="町字ID (15桁)")
    banchi: str = Field(title="番地", examples=["1番1号"])
    household_id: int | None = Field(None, title="世帯", description="加わる世帯。省略時は新しい世帯の世帯主")
    relationship: str = Field("世帯主", title="続柄")

    def placement(self) -> Placement:
        return Placement(self.town_id.strip(), self.banchi, self.household_id, self.relationship)


class CertificateIn(NameIn):
    """紙の転出証明書の記載事項."""

    certificate_no: str = Field(title="転出証明書番号")
    from_lg_code: str = Field(title="転出元 地方公共団体コード")
    resident_code: str = Field(title="住民票コード")
    my_number: str = Field(title="個人番号")
    birth_date: str = Field(title="生年月日")
    sex: str = Field(title="性別", description="male | female")
    previous_address: str = Field(title="前住所")
    planned_date: str = Field(title="転出予定日")
    nationality: str = Field("JP", title="国籍")
    former_surname: str | None = Field(None, title="旧氏")
    former_surname_kana: str | None = Field(None, title="旧氏の振り仮名")
    alias: str | None = Field(None, title="通称")
    honseki: str | None = Field(None, title="本籍")
    honseki_lg_code: str | None = Field(None, title="本籍 地方公共団体コード")

    def certificate(self) -> MoveOutCertificate:
        former = blank_to_none(self.former_surname)
        former_kana = blank_to_none(self.former_surname_kana)
        return MoveOutCertificate(
            certificate_no=check_text("転出証明書番号", self.certificate_no, 40),
            from_lg_code=self.from_lg_code.strip(),
            resident_code=self.resident_code.strip(),
            my_number=self.my_number.strip(),
            name=self.checked(),
            birth_date=parse_date("生年月日", self.birth_date),
            sex=parse_sex(self.sex),
            previous_address=check_text("前住所", self.previous_address, 200),
            planned_date=parse_date("転出予定日", self.planned_date),
            nationality=self.nationality,
            former_surname=former and check_name("旧氏", former),
            former_surname_kana=former_kana and check_kana("旧氏の振り仮名", former_kana),
            alias=blank_to_none(self.alias),
            honseki=optional_text("本籍", self.honseki, 200),
            honseki_lg_code=blank_to_none(self.honseki_lg_code),
        )


class MoveInIn(Strict):
    certificate: CertificateIn
    placement: PlacementIn
    moved_on: str = Field(title="転入日", description="YYYY-MM-DD")
    notified_on: str | None = Field(None, title="届出日")


class SpecialMoveInIn(Strict):
    certificate_no: str = Field(title="転出証明書情報", description="受信した転出証明書情報の番号")
    placement: PlacementIn
    moved_on: str = Field(title="転入日")
    notified_on: str | None = Field(None, title="届出日")


class MoveOutIn(Strict):
    planned_date: str = Field(title="転出予定日")
    destination: str = Field(title="転出先", description="転出先の住所 (国外転出は国名など)")
    destination_lg_code: str | None = Field(None, title="転出先 地方公共団体コード")
    abroad: bool = Field(False, title="国外転出")
    special: bool = Field(
        False, title="転入届の特例", description="転出証明書情報を転入地へ送る (カード保持者)"
    )
    new_head_id: int | None = Field(None, title="新世帯主")
    notified_on: str | None = Field(None, title="届出日")


class RelocationIn(Strict):
    town_id: str = Field(title="町字", description="町字ID (15桁)")
    banchi: str = Field(title="番地")
    moved_on: str = Field(title="転居日")
    whole_household: bool = Field(False, title="世帯全員")
    household_id: int | None = Field(None, title="世帯", description="転居先で加わる世帯")
    relationship: str = Field("世帯主", title="続柄")
    notified_on: str | None = Field(None, title="届出日")


class DeathIn(Strict):
    died_on: str = Field(title="死亡日")
    notified_on: str | None = Field(None, title="届出日")


class NameChangeIn(NameIn):
    changed_on: str = Field(title="変更日")
    cause: str = Field(title="変更事由", examples=["婚姻"])
    keep_former_surname: bool = Field(False, title="旧氏を併記")
    notified_on: str | None = Field(None, title="届出日")


class CorrectionIn(Strict):
    fields: dict[str, str] = Field(
        title="修正項目",
        description="項目名 → 正しい値 (" + ", ".join(sorted(RegistryService.CORRECTABLE)) + ")",
    )
    reason: str = Field(title="修正理由")
    corrected_on: str | None = Field(None, title="修正日")


class CodeChangeIn(Strict):
    notified_on: str | None = Field(None, title="届出日")


class AddressOut(BaseModel):
    lg_code: str
    town_id: str
    banchi: str
    text: str


class ResidentOut(BaseModel):
    """住民票の記載事項."""

    id: int
    lg_code: str
    resident_code: str = Field(title="住民票コード")
    my_number: str = Field(title="個人番号")
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    former_surname: str | None
    former_surname_kana: str | None
    alias: str | None
    nationality: str
    birth_date: dt.date
    sex: Sex
    household_id: int
    household_no: str
    is_head: bool
    relationship: str
    address: AddressOut
    honseki: str | None
    honseki_lg_code: str | None
    resident_since: dt.date
    address_since: dt.date
    notified_on: dt.date
    previous_address: str | None
    status: str
    last_reason: str
    last_change_date: dt.date
    version: int
    removed_on: dt.date | None
    move_destination: str | None

    @classmethod
    def of(cls, v: ResidentView) -> ResidentOut:
        return cls(
            id=v.id,
            lg_code=v.lg_code,
            resident_code=v.resident_code,
            my_number=v.my_number,
            family_name=v.name.family,
            given_name=v.name.given,
            family_kana=v.name.family_kana,
            given_kana=v.name.given_kana,
            former_surname=v.former_surname,
            former_surname_kana=v.former_surname_kana,
            alias=v.alias,
            nationality=v.nationality,
            birth_date=v.birth_date,
            sex=v.sex,
            household_id=v.household_id,
            household_no=v.household_no,
            is_head=v.is_head,
            relationship=v.relationship,
            address=AddressOut(
                lg_code=v.address.lg_code,
                town_id=v.address.town_id,
                banchi=v.address.banchi,
                text=v.address.text,
            ),
            honseki=v.honseki,
            honseki_lg_code=v.honseki_lg_code,
            resident_since=v.resident_since,
            address_since=v.address_since,
            notified_on=v.notified_on,
            previous_address=v.previous_address,
            status=v.status.value,
            last_reason=v.last_reason.value,
            last_change_date=v.last_change_date,
            version=v.version,
            removed_on=v.removed_on,
            move_destination=v.move_destination,
        )


class HistoryOut(BaseModel):
    version: int
    reason: str
    reason_label: str
    change_date: dt.date
    notified_on: dt.date
    recorded_at: dt.datetime
    staff: str
    summary: str
    snapshot: dict[str, Any]

    @classmethod
    def of(cls, h: HistoryEntry) -> HistoryOut:
        return cls(
            version=h.version,
            reason=h.reason.value,
            reason_label=h.reason.label,
            change_date=h.change_date,
            notified_on=h.notified_on,
            recorded_at=h.recorded_at,
            staff=h.staff,
            summary=h.summary,
            snapshot=dict(h.snapshot),
        )


class CertificateOut(BaseModel):
    """転出証明書 (情報)."""

    certificate_no: str
    from_lg_code: str
    resident_code: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    birth_date: dt.date
    sex: Sex
    previous_address: str
    planned_date: dt.date

    @classmethod
    def of(cls, c: MoveOutCertificate) -> CertificateOut:
        return cls(
            certificate_no=c.certificate_no,
            from_lg_code=c.from_lg_code,
            resident_code=c.resident_code,
            family_name=c.name.family,
            given_name=c.name.given,
            family_kana=c.name.family_kana,
            given_kana=c.name.given_kana,
            birth_date=c.birth_date,
            sex=c.sex,
            previous_address=c.previous_address,
            planned_date=c.planned_date,
        )


class MoveOutOut(BaseModel):
    resident: ResidentOut
    certificate: CertificateOut


class TownOut(BaseModel):
    town_id: str
    name: str
    kana: str
    postal_code: str


# ------------------------------------------------------------------------------------------ use cases
# Shared with the counter pages: one path from request to register for both faces.


def apply_birth(svc: RegistryService, household_id: int, body: BirthIn) -> ResidentView:
    person = NewPerson(
        name=body.checked(),
        birth_date=parse_date("生年月日", body.birth_date),
        sex=parse_sex(body.sex),
        nationality=body.nationality,
        honseki=optional_text("本籍", body.honseki, 200),
        honseki_lg_code=blank_to_none(body.honseki_lg_code),
    )
    return svc.record_birth(
        person,
        household_id=household_id,
        relationship=body.relationship,
        notified_on=optional_date("届出日", body.notified_on),
    )


def apply_move_in(svc: RegistryService, body: MoveInIn) -> ResidentView:
    return svc.record_move_in(
        body.certificate.certificate(),
        body.placement.placement(),
        moved_on=parse_date("転入日", body.moved_on),
        notified_on=optional_date("届出日", body.notified_on),
    )


def apply_special_move_in(svc: RegistryService, body: SpecialMoveInIn) -> ResidentView:
    return svc.record_special_move_in(
        body.certificate_no.strip(),
        body.placement.placement(),
        moved_on=parse_date("転入日", body.moved_on),
        notified_on=optional_date("届出日", body.notified_on),
    )


def apply_move_out(
    svc: RegistryService, resident_id: int, body: MoveOutIn
) -> tuple[ResidentView, MoveOutCertificate]:
    lg = blank_to_none(body.destination_lg_code)
    if body.abroad and lg:
        raise InvalidInput("転出先 地方公共団体コード", "must be empty for a 国外転出")
    if not body.abroad and not lg:
        raise InvalidInput("転出先 地方公共団体コード", "required unless 国外転出")
    return svc.record_move_out(
        resident_id,
        planned_date=parse_date("転出予定日", body.planned_date),
        destination=body.destination,
        destination_lg_code=lg.strip() if lg else None,
        special=body.special,
        new_head_id=body.new_head_id,
        notified_on=optional_date("届出日", body.notified_on),
    )


def apply_relocation(svc: RegistryService, resident_id: int, body: RelocationIn) -> list[ResidentView]:
    placement = Placement(body.town_id.strip(), body.banchi, body.household_id, body.relationship)
    return svc.record_relocation(
        resident_id,
        placement,
        moved_on=parse_date("転居日", body.moved_on),
        whole_household=body.whole_household,
        notified_on=optional_date("届出日", body.notified_on),
    )


def apply_death(svc: RegistryService, resident_id: int, body: DeathIn) -> ResidentView:
    return svc.record_death(
        resident_id,
        died_on=parse_date("死亡日", body.died_on),
        notified_on=optional_date("届出日", body.notified_on),
    )


def apply_name_change(svc: RegistryService, resident_id: int, body: NameChangeIn) -> ResidentView:
    return svc.record_name_change(
        resident_id,
        body.checked(),
        changed_on=parse_date("変更日", body.changed_on),
        cause=body.cause,
        keep_former_surname=body.keep_former_surname,
        notified_on=optional_date("届出日", body.notified_on),
    )


def apply_correction(svc: RegistryService, resident_id: int, body: CorrectionIn) -> ResidentView:
    return svc.record_correction(
        resident_id, body.fields, reason=body.reason, corrected_on=optional_date("修正日", body.corrected_on)
    )


def apply_code_change(svc: RegistryService, resident_id: int, body: CodeChangeIn) -> ResidentView:
    return svc.change_resident_code(resident_id, notified_on=optional_date("届出日", body.notified_on))


def town_search(container: Container, lg_code: str, q: str, limit: int = 50) -> list[TownOut]:
    towns = container.geography.find_towns(lg_code, q, limit=max(1, min(limit, 200)))
    return [TownOut(town_id=t.town_id, name=t.name, kana=t.kana, postal_code=t.postal_code) for t in towns]


# ------------------------------------------------------------------------------------------ routes


@router.get(
    "/residents",
    summary="住民の検索",
    response_model=list[ResidentOut],
    responses=ERRORS,
    description="氏名・振り仮名の前方一致 (「氏 名」で名も絞り込み)、"
    "住民票コード (11桁) または個人番号 (12桁)。表示した住民ごとにアクセス記録を残します。",
)
def search(
    lg_code: str,
    request: Request,
    q: str = "",
    include_removed: bool = False,
    principal: Principal = Depends(staff_of_path),
) -> list[ResidentOut]:
    views = reading(request, lg_code, principal, lambda svc: svc.search(q, include_removed=include_removed))
    return [ResidentOut.of(v) for v in views]


@router.get("/residents/{resident_id}", summary="住民票", response_model=ResidentOut, responses=ERRORS)
def get_resident(
    lg_code: str, resident_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> ResidentOut:
    return ResidentOut.of(reading(request, lg_code, principal, lambda svc: svc.get(resident_id)))


@router.get(
    "/residents/{resident_id}/history", summary="異動履歴", response_model=list[HistoryOut], responses=ERRORS
)
def get_history(
    lg_code: str, resident_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> list[HistoryOut]:
    return [
        HistoryOut.of(h) for h in reading(request, lg_code, principal, lambda svc: svc.history(resident_id))
    ]


@router.get(
    "/households/{household_id}/members", summary="世帯員", response_model=list[ResidentOut], responses=ERRORS
)
def get_household(
    lg_code: str, household_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> list[ResidentOut]:
    members = reading(request, lg_code, principal, lambda svc: svc.household_members(household_id))
    return [ResidentOut.of(v) for v in members]


@router.get(
    "/move-out-certificates",
    summary="受信した転出証明書情報 (未使用)",
    response_model=list[CertificateOut],
    responses=ERRORS,
)
def received_certificates(
    lg_code: str, request: Request, principal: Principal = Depends(staff_of_path)
) -> list[CertificateOut]:
    certificates = reading(request, lg_code, principal, lambda svc: svc.received_certificates())
    return [CertificateOut.of(c) for c in certificates]


@router.get(
    "/towns",
    summary="町字の検索",
    response_model=list[TownOut],
    responses=ERRORS,
    description="名称・読みの前方一致 (次に部分一致)。q が空なら先頭から。",
)
def towns(
    lg_code: str,
    request: Request,
    q: str = "",
    limit: int = 50,
    _principal: Principal = Depends(staff_of_path),
) -> list[TownOut]:
    return town_search(get_container(request), lg_code, q, limit)


@router.post(
    "/households/{household_id}/births",
    summary="出生",
    status_code=201,
    response_model=ResidentOut,
    responses=ERRORS,
)
def birth(
    lg_code: str,
    household_id: int,
    body: BirthIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> ResidentOut:
    return at_counter(
        request, lg_code, principal, lambda svc: ResidentOut.of(apply_birth(svc, household_id, body))
    )


@router.post(
    "/move-ins",
    summary="転入 (紙の転出証明書)",
    status_code=201,
    response_model=ResidentOut,
    responses=ERRORS,
)
def move_in(
    lg_code: str, body: MoveInIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> ResidentOut:
    return at_counter(request, lg_code, principal, lambda svc: ResidentOut.of(apply_move_in(svc, body)))


@router.post(
    "/special-move-ins",
    summary="転入届の特例 (転出証明書情報による転入)",
    status_code=201,
    response_model=ResidentOut,
    responses=ERRORS,
)
def special_move_in(
    lg_code: str, body: SpecialMoveInIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> ResidentOut:
    return at_counter(
        request, lg_code, principal, lambda svc: ResidentOut.of(apply_special_move_in(svc, body))
    )


@router.post(
    "/residents/{resident_id}/move-out",
    summary="転出 (国外転出を含む)",
    response_model=MoveOutOut,
    responses=ERRORS,
)
def move_out(
    lg_code: str,
    resident_id: int,
    body: MoveOutIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> MoveOutOut:
    view, cert = at_counter(
        request, lg_code, principal, lambda svc: apply_move_out(svc, resident_id, body), resident_id
    )
    return MoveOutOut(resident=ResidentOut.of(view), certificate=CertificateOut.of(cert))


@router.post(
    "/residents/{resident_id}/relocation",
    summary="転居",
    response_model=list[ResidentOut],
    responses=ERRORS,
    description="転居した全員 (世帯全員のときは世帯員ごと) の住民票を返します。",
)
def relocation(
    lg_code: str,
    resident_id: int,
    body: RelocationIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> list[ResidentOut]:
    return at_counter(
        request,
        lg_code,
        principal,
        lambda svc: [ResidentOut.of(v) for v in apply_relocation(svc, resident_id, body)],
        resident_id,
    )


@router.post("/residents/{resident_id}/death", summary="死亡", response_model=ResidentOut, responses=ERRORS)
def death(
    lg_code: str,
    resident_id: int,
    body: DeathIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> ResidentOut:
    return at_counter(
        request,
        lg_code,
        principal,
        lambda svc: ResidentOut.of(apply_death(svc, resident_id, body)),
        resident_id,
    )


@router.post(
    "/residents/{resident_id}/name-change", summary="氏名変更", response_model=ResidentOut, responses=ERRORS
)
def name_change(
    lg_code: str,
    resident_id: int,
    body: NameChangeIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> ResidentOut:
    return at_counter(
        request,
        lg_code,
        principal,
        lambda svc: ResidentOut.of(apply_name_change(svc, resident_id, body)),
        resident_id,
    )


@router.post(
    "/residents/{resident_id}/correction", summary="職権修正", response_model=ResidentOut, responses=ERRORS
)
def correction(
    lg_code: str,
    resident_id: int,
    body: CorrectionIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> ResidentOut:
    return at_counter(
        request,
        lg_code,
        principal,
        lambda svc: ResidentOut.of(apply_correction(svc, resident_id, body)),
        resident_id,
    )


@router.post(
    "/residents/{resident_id}/code-change",
    summary="住民票コード変更",
    response_model=ResidentOut,
    responses=ERRORS,
    description="新しい住民票コードと個人番号を付け、旧番号は再び使われません。",
)
def code_change(
    lg_code: str,
    resident_id: int,
    body: CodeChangeIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> ResidentOut:
    return at_counter(
        request,
        lg_code,
        principal,
        lambda svc: ResidentOut.of(apply_code_change(svc, resident_id, body)),
        resident_id,
    )
