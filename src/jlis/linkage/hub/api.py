"""HTTP API of the linkage hub. Two routers, each with its own principal:

- :data:`jlis_router` — ``/api/v1/jlis/linkage/members``: the register of members, for a J-LIS
  operator (register, list, show, activate/deactivate, a new request key);
- :data:`router` — ``/api/v1/linkage/codes``: code acquisition by a member itself (a bearer token
  of a ``linkage_member`` principal, :func:`member_of`): one person, or a batch of a 符号一斉取得.
  The member sends the 住民票コード (its 統合宛名 system's message to J-LIS over the CS) and gets
  back its own code with the 処理通番; nothing else crosses: no value, no link, no other member's
  code.

Each call is one transaction. A request key is shown once, base64 in ``request_key``.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.linkage.hub.codes import acquire, acquire_codes_bulk
from jlis.linkage.hub.members import Member, MemberService, member_of
from jlis.web.deps import api_principal, get_container

TAG_JLIS = "情報連携 機関の登録 (J-LIS)"
TAG_MEMBER = "情報連携 機関別符号の取得"
MAX_BULK = 10_000

jlis_router = APIRouter(prefix="/api/v1/jlis/linkage/members", tags=[TAG_JLIS])
router = APIRouter(prefix="/api/v1/linkage/codes", tags=[TAG_MEMBER])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "トークンがない・無効"},
    403: {"description": "権限がない (情報連携の機関でない・停止中の機関)"},
    404: {"description": "機関・住民票コードが見つからない"},
    409: {"description": "現在の状態ではできない操作 (field と rule で理由を示す)"},
    422: {"description": "入力の誤り (field と rule で項目と規則を示す)"},
}

operator = api_principal(PrincipalKind.JLIS_OPERATOR)
member_principal = api_principal(PrincipalKind.LINKAGE_MEMBER)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberIn(Strict):
    member_id: str = Field(title="機関ID", examples=["nenkin", "lg-131016"])
    name: str = Field(title="名称", examples=["日本年金機構"])
    kind: str = Field(title="種別", description="agency | municipality | portal")
    lg_code: str | None = Field(None, title="地方公共団体コード", description="市区町村のみ")
    username: str | None = Field(None, title="API 利用者名")
    password: str | None = Field(None, title="API パスワード")


class ActiveIn(Strict):
    active: bool = Field(title="有効")


class CodeIn(Strict):
    resident_code: str = Field(title="住民票コード", examples=["12345678903"])


class BulkIn(Strict):
    resident_codes: list[str] = Field(title="住民票コード", max_length=MAX_BULK)


def _member_json(m: Member) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "kind": m.kind.value, "lg_code": m.lg_code, "active": m.active}


def _members(request: Request, s: Any, principal: Principal) -> MemberService:
    container = get_container(request)
    return MemberService(
        s, container.clock, actor=principal.actor, key_dir=container.settings.resolved_key_dir
    )


@jlis_router.get("", summary="機関の一覧", responses=ERRORS)
def list_members(request: Request, principal: Principal = Depends(operator)) -> list[dict[str, Any]]:
    with transaction(get_container(request).factory) as s:
        return [_member_json(m) for m in _members(request, s, principal).list()]


@jlis_router.post("", status_code=201, summary="機関の登録 (要求鍵は一度だけ表示)", responses=ERRORS)
def register_member(
    body: MemberIn, request: Request, principal: Principal = Depends(operator)
) -> dict[str, Any]:
    with transaction(get_container(request).factory) as s:
        member, key = _members(request, s, principal).register(
            body.member_id,
            body.name,
            body.kind,
            lg_code=body.lg_code,
            username=body.username,
            password=body.password,
        )
    return {"member": _member_json(member), "request_key": base64.b64encode(key).decode("ascii")}


@jlis_router.get("/{member_id}", summary="機関", responses=ERRORS)
def get_member(member_id: str, request: Request, principal: Principal = Depends(operator)) -> dict[str, Any]:
    with transaction(get_container(request).factory) as s:
        return _member_json(_members(request, s, principal).get(member_id))


@jlis_router.post("/{member_id}/active", summary="機関の有効・停止", responses=ERRORS)
def set_active(
    member_id: str, body: ActiveIn, request: Request, principal: Principal = Depends(operator)
) -> dict[str, Any]:
    with transaction(get_container(request).factory) as s:
        return _member_json(_members(request, s, principal).set_active(member_id, body.active))


@jlis_router.post("/{member_id}/request-key", summary="要求鍵の再発行 (一度だけ表示)", responses=ERRORS)
def rotate_key(member_id: str, request: Request, principal: Principal = Depends(operator)) -> dict[str, Any]:
    with transaction(get_container(request).factory) as s:
        key = _members(request, s, principal).rotate_key(member_id)
    return {"member_id": member_id, "request_key": base64.b64encode(key).decode("ascii")}


@router.post("", summary="機関別符号の取得 (1 人)", responses=ERRORS)
def acquire_one(
    body: CodeIn, request: Request, principal: Principal = Depends(member_principal)
) -> dict[str, Any]:
    container = get_container(request)
    with transaction(container.factory) as s:
        member = member_of(s, principal)
        issued = acquire(s, container.clock, container.secret, member, body.resident_code)
    return {"member_id": member.id, "serial": issued.serial, "code": issued.codes[0]}


@router.post("/bulk", summary="符号一斉取得 (1 回 10,000 人まで)", responses=ERRORS)
def acquire_bulk(
    body: BulkIn, request: Request, principal: Principal = Depends(member_principal)
) -> dict[str, Any]:
    container = get_container(request)
    with transaction(container.factory) as s:
        member = member_of(s, principal)
    pairs: list[tuple[str, str]] = []
    report = acquire_codes_bulk(
        container.factory,
        container.clock,
        container.secret,
        member,
        body.resident_codes,
        batch=MAX_BULK,  # one transaction: all or nothing
        sink=lambda _s, batch: pairs.extend(batch),
    )
    return {
        "member_id": member.id,
        "requested": report.requested,
        "issued": report.issued,
        "codes": [{"resident_code": r, "code": c} for r, c in pairs],
        "invalid": report.invalid,
        "unknown": report.unknown,
        "serials": report.serials,
    }
