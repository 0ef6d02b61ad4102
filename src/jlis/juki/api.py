"""HTTP API of 住基ネット: the provision of 本人確認情報 to a registered agency (only the items its
(agency, affair) pair allows), and the J-LIS operator's views: disclosure of a person's provision
log, the propagation state of the network and the audit chains.

The agency is the token's agency: a caller cannot name another one. A refused pair is on record
(``provide`` commits the refusal before raising 403).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from jlis.audit import AuditLog, list_chains
from jlis.auth.models import Principal, PrincipalKind
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import InvalidInput
from jlis.juki.provision import (
    PROVISION_LOG,
    Basic4Query,
    Outcome,
    ProvisionLogEntry,
    ProvisionResult,
    ProvisionService,
    provide,
)
from jlis.juki.status import NationalState, PrefectureState, network_state
from jlis.registry.models import parse_date
from jlis.web.deps import api_principal, get_container

PROVISION_TAG = "住基ネット (本人確認情報の提供)"
JLIS_TAG = "住基ネット (J-LIS)"
router = APIRouter(prefix="/api/v1")

ACCESS_LOG = AuditLog("access")
AGENCY = api_principal(PrincipalKind.AGENCY)
OPERATOR = api_principal(PrincipalKind.JLIS_OPERATOR)


# ------------------------------------------------------------------------------------------ models


class Basic4In(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(title="氏名", description="漢字または振り仮名 (空白は無視)")
    birth_date: str = Field(title="生年月日", description="YYYY-MM-DD")
    sex: str = Field(title="性別", description="male | female")
    address: str | None = Field(None, title="住所", description="前方一致")


class ProvisionQueryIn(BaseModel):
    """照会: 住民票コード・個人番号・基本4情報のどれか一つで."""

    model_config = ConfigDict(extra="forbid")
    affair: str = Field(title="事務", description="提供表 (別表第一) の事務ID", examples=["pension_benefit"])
    resident_code: str | None = Field(None, title="住民票コード")
    my_number: str | None = Field(None, title="個人番号")
    basic4: Basic4In | None = Field(None, title="基本4情報")


class ProvisionOut(BaseModel):
    outcome: str = Field(description="provided (提供) | no_match (該当なし)")
    agency: str
    affair: str
    key: str = Field(description="照会に使った鍵: resident_code | my_number | basic4")
    items: list[str] = Field(description="この事務で提供が認められた項目")
    records: list[dict[str, Any]] = Field(description="一人につき一件。認められた項目だけを含む")
    truncated: bool = Field(description="基本4情報の照会で候補が上限を超えた")

    @classmethod
    def of(cls, r: ProvisionResult) -> ProvisionOut:
        return cls(
            outcome=r.outcome.value,
            agency=r.agency_id,
            affair=r.affair_id,
            key=r.key.value,
            items=sorted(i.value for i in r.items),
            records=[{item.value: value for item, value in rec.items()} for rec in r.records],
            truncated=r.truncated,
        )


class ProvisionLogOut(BaseModel):
    seq: int
    at: dt.datetime
    resident_code: str | None
    recipient: str
    recipient_name: str | None
    affair: str
    affair_name: str | None
    items: list[str]
    outcome: str
    key: str
    function: str
    source: str

    @classmethod
    def of(cls, e: ProvisionLogEntry) -> ProvisionLogOut:
        return cls(
            seq=e.seq,
            at=e.at,
            resident_code=e.resident_code,
            recipient=e.recipient,
            recipient_name=e.recipient_name,
            affair=e.affair,
            affair_name=e.affair_name,
            items=list(e.items),
            outcome=e.outcome.value,
            key=e.key,
            function=e.function,
            source=e.source,
        )


class DisclosureOut(BaseModel):
    resident_code: str
    entries: list[ProvisionLogOut]


class PrefectureOut(BaseModel):
    pref_code: str
    name: str
    pending: int = Field(description="本人確認情報の未配送メッセージ (全区間)")
    pending_to_cs: int
    pending_cs_to_pref: int
    pending_pref_to_national: int
    records: int = Field(description="都道府県サーバの保存件数")
    applied: int
    last_applied_at: dt.datetime | None
    fuhyo_pending: int
    fuhyo_records: int
    fuhyo_last_applied_at: dt.datetime | None

    @classmethod
    def of(cls, p: PrefectureState) -> PrefectureOut:
        return cls(
            pref_code=p.pref_code,
            name=p.name,
            pending=p.pending,
            pending_to_cs=p.pending_to_cs,
            pending_cs_to_pref=p.pending_cs_to_pref,
            pending_pref_to_national=p.pending_pref_to_national,
            records=p.records,
            applied=p.applied,
            last_applied_at=p.last_applied_at,
            fuhyo_pending=p.fuhyo_pending,
            fuhyo_records=p.fuhyo_records,
            fuhyo_last_applied_at=p.fuhyo_last_applied_at,
        )


class NationalOut(BaseModel):
    records: int = Field(description="機構保存本人確認情報の件数")
    applied: int
    last_applied_at: dt.datetime | None
    pending: int
    fuhyo_records: int
    fuhyo_applied: int
    fuhyo_last_applied_at: dt.datetime | None
    fuhyo_pending: int

    @classmethod
    def of(cls, n: NationalState) -> NationalOut:
        return cls(
            records=n.records,
            applied=n.applied,
            last_applied_at=n.last_applied_at,
            pending=n.pending,
            fuhyo_records=n.fuhyo_records,
            fuhyo_applied=n.fuhyo_applied,
            fuhyo_last_applied_at=n.fuhyo_last_applied_at,
            fuhyo_pending=n.fuhyo_pending,
        )


class PropagationOut(BaseModel):
    national: NationalOut
    prefectures: list[PrefectureOut]


class ChainOut(BaseModel):
    chain: str
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None


# ------------------------------------------------------------------------------------------ use cases
# Shared with the J-LIS pages.


def basic4_query(body: Basic4In) -> Basic4Query:
    return Basic4Query(
        name=body.name, birth_date=parse_date("生年月日", body.birth_date), sex=body.sex, address=body.address
    )


def disclosure(
    session: Session, container: Container, principal: Principal, resident_code: str
) -> list[ProvisionLogEntry]:
    return ProvisionService(session, container.clock, container.provision_table).disclose(
        resident_code, requested_by=principal.actor
    )


def provision_log(
    session: Session, container: Container, principal: Principal, *, limit: int = 200
) -> list[ProvisionLogEntry]:
    """The newest provision-log entries. The log names the people asked about, so reading it is
    itself recorded in the access log."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit", "must be between 1 and 1000")
    entries = PROVISION_LOG.entries(session, newest_first=True, limit=limit)
    ACCESS_LOG.append(
        session,
        at=container.clock.now(),
        actor=principal.actor,
        action="read",
        subject=None,
        details={"system": "juki", "purpose": "提供記録の閲覧", "entries": len(entries)},
    )
    return [
        ProvisionLogEntry(
            seq=e.seq,
            at=e.at,
            resident_code=e.subject,
            recipient=e.actor,
            recipient_name=e.details.get("recipient_name"),
            affair=str(e.details.get("affair", "")),
            affair_name=e.details.get("affair_name"),
            items=tuple(e.details.get("items", ())),
            outcome=_outcome(e.details.get("outcome")),
            key=str(e.details.get("key", "")),
            function=str(e.details.get("function", "")),
            source=str(e.details.get("source", "")),
        )
        for e in entries
    ]


def _outcome(value: Any) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:  # an entry written by a newer version: show it, do not fail the page
        return Outcome.PROVIDED


def verify_chains(session: Session) -> list[ChainOut]:
    out = []
    for name in list_chains(session):
        r = AuditLog(name).verify(session)
        out.append(
            ChainOut(chain=name, ok=r.ok, checked=r.checked, first_bad_seq=r.first_bad_seq, reason=r.reason)
        )
    return out


# ------------------------------------------------------------------------------------------ routes


@router.post(
    "/provision/query",
    tags=[PROVISION_TAG],
    summary="本人確認情報の照会 (別表第一の機関)",
    description="トークンの機関と `affair` の組が提供表にあるときだけ、その組に認められた項目を返します。"
    " ない組は 403 で拒否し、拒否も提供記録に残ります。該当者がいないときは outcome が no_match です。",
    response_model=ProvisionOut,
    responses={403: {"description": "提供表にない (機関, 事務) の組"}, 422: {"description": "入力の誤り"}},
)
def provision_query(
    body: ProvisionQueryIn, request: Request, principal: Principal = Depends(AGENCY)
) -> ProvisionOut:
    container = get_container(request)
    agency_id = principal.require_agency()
    basic4 = basic4_query(body.basic4) if body.basic4 is not None else None
    result = provide(
        container.factory,
        container.clock,
        container.provision_table,
        agency_id,
        body.affair,
        resident_code=body.resident_code,
        my_number=body.my_number,
        basic4=basic4,
    )
    return ProvisionOut.of(result)


@router.get(
    "/disclosure/{resident_code}",
    tags=[JLIS_TAG],
    summary="提供記録の開示 (本人からの請求)",
    description="その人についての提供記録を、住民票コードが変わる前のものも含めて返します。開示したこと自体もアクセス記録に残ります。",
    response_model=DisclosureOut,
)
def disclosure_api(
    resident_code: str, request: Request, principal: Principal = Depends(OPERATOR)
) -> DisclosureOut:
    container = get_container(request)
    with transaction(container.factory) as s:
        entries = disclosure(s, container, principal, resident_code)
    return DisclosureOut(
        resident_code=resident_code.strip(), entries=[ProvisionLogOut.of(e) for e in entries]
    )


@router.get(
    "/provision/log",
    tags=[JLIS_TAG],
    summary="提供記録 (新しい順)",
    response_model=list[ProvisionLogOut],
)
def provision_log_api(
    request: Request, limit: int = 200, principal: Principal = Depends(OPERATOR)
) -> list[ProvisionLogOut]:
    container = get_container(request)
    with transaction(container.factory) as s:
        return [ProvisionLogOut.of(e) for e in provision_log(s, container, principal, limit=limit)]


@router.get(
    "/propagation",
    tags=[JLIS_TAG],
    summary="伝播状況 (都道府県ごとの未配送件数と保存件数)",
    response_model=PropagationOut,
)
def propagation(request: Request, _principal: Principal = Depends(OPERATOR)) -> PropagationOut:
    container = get_container(request)
    with container.factory() as s:
        state = network_state(s, container.geography)
    return PropagationOut(
        national=NationalOut.of(state.national), prefectures=[PrefectureOut.of(p) for p in state.prefectures]
    )


@router.get(
    "/audit/chains",
    tags=[JLIS_TAG],
    summary="監査ログのハッシュ連鎖の検証",
    response_model=list[ChainOut],
)
def audit_chains(request: Request, _principal: Principal = Depends(OPERATOR)) -> list[ChainOut]:
    container = get_container(request)
    with container.factory() as s:
        return verify_chains(s)
