"""HTTP API of a municipality's middle server, for that municipality's business systems and staff
(``/api/v1/municipalities/{lg_code}/middle``; municipal staff of that 団体 only).

- ``GET  .../schemas``: the categories this middle server keeps and their items;
- ``POST .../addressees``: the 団体内統合宛名番号 of a 住民票コード (numbered on first use);
- ``POST .../replicas``: register a replica (validated against its schema; versioned);
- ``GET  .../replicas/{local_id}``: the person's current replicas (an audited read);
- ``GET  .../replicas/{local_id}/{category}``: one category, with ``?history=true`` every version;
- ``POST .../links/{local_id}``: acquire and store the municipality's 符号 for the person;
- ``POST .../sync``: refresh every 住民票関係情報 replica from the register.

:data:`member_router` (``/api/v1/linkage/middle``) offers the same addressee, replica and link calls
to any linkage member for its own middle server — an agency such as 日本年金機構 registering its
年金給付関係情報 — with a bearer token of its ``linkage_member`` principal
(:func:`jlis.linkage.hub.members.member_of`: an inactive member is refused).

The 符号 itself never leaves through this API: staff learn only whether a person is linked. Each
call is one transaction; a refusal names the field and the rule and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.linkage.middle.models import Replica, municipality_member
from jlis.linkage.middle.service import MiddleServer
from jlis.linkage.middle.sync import sync_juminhyo
from jlis.web.deps import api_principal, get_container, staff_of_path

TAG = "自治体中間サーバー (市区町村)"
TAG_MEMBER = "自治体中間サーバー (情報連携の機関)"
router = APIRouter(prefix="/api/v1/municipalities/{lg_code}/middle", tags=[TAG])
member_router = APIRouter(prefix="/api/v1/linkage/middle", tags=[TAG_MEMBER])
member_principal = api_principal(PrincipalKind.LINKAGE_MEMBER)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "トークンがない・無効"},
    403: {"description": "この団体の職員ではない"},
    404: {"description": "宛名番号・副本が見つからない"},
    409: {"description": "この中間サーバーでは扱わない分類など (field と rule で理由を示す)"},
    422: {"description": "入力の誤り (field と rule で項目と規則を示す)"},
}

T = TypeVar("T")


def run(request: Request, lg_code: str, principal: Principal, action: Callable[[MiddleServer], T]) -> T:
    container = get_container(request)
    with transaction(container.factory) as s:
        return action(MiddleServer(s, container.clock, municipality_member(lg_code), actor=principal.actor))


def run_member(request: Request, principal: Principal, action: Callable[[MiddleServer], T]) -> T:
    """One action at the calling member's own middle server, in one transaction."""
    from jlis.linkage.hub.members import member_of

    container = get_container(request)
    with transaction(container.factory) as s:
        member = member_of(s, principal)
        return action(MiddleServer(s, container.clock, member.id, actor=principal.actor))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddresseeIn(Strict):
    resident_code: str = Field(title="住民票コード", examples=["12345678903"])


class AddresseeOut(BaseModel):
    local_id: str = Field(title="団体内統合宛名番号")


class ReplicaIn(Strict):
    local_id: str = Field(title="団体内統合宛名番号", examples=["131016000000001"])
    category: str = Field(title="分類", examples=["local_tax"])
    data: dict[str, Any] = Field(title="項目", description="項目名 → 値 (日付は YYYY-MM-DD)")


class RegisteredOut(BaseModel):
    local_id: str
    category: str
    version: int


class ReplicaOut(BaseModel):
    category: str
    label: str
    version: int
    data: dict[str, Any]
    registered_at: str
    registered_by: str

    @classmethod
    def of(cls, replica: Replica, label: str) -> ReplicaOut:
        return cls(
            category=replica.category,
            label=label,
            version=replica.version,
            data=dict(replica.data),
            registered_at=replica.registered_at.isoformat(),
            registered_by=replica.registered_by,
        )


class ItemOut(BaseModel):
    name: str
    label: str
    type: str
    required: bool
    choices: list[str] = []


class SchemaOut(BaseModel):
    category: str
    label: str
    items: list[ItemOut]


class LinkOut(BaseModel):
    local_id: str
    linked: bool


class SyncOut(BaseModel):
    written: int = Field(title="新たに登録した副本の版の数")


def _schemas(m: MiddleServer) -> list[SchemaOut]:
    return [
        SchemaOut(
            category=s.id,
            label=s.label,
            items=[
                ItemOut(
                    name=n, label=i.label, type=i.type.value, required=i.required, choices=list(i.choices)
                )
                for n, i in s.items.items()
            ],
        )
        for s in m.categories()
    ]


def _current(m: MiddleServer, local_id: str) -> list[ReplicaOut]:
    return [ReplicaOut.of(r, m.schemas[r.category].label) for r in m.replicas(local_id)]


@router.get("/schemas", response_model=list[SchemaOut], responses=ERRORS, summary="副本の分類と項目")
def schemas(request: Request, lg_code: str, principal: Principal = Depends(staff_of_path)) -> list[SchemaOut]:
    def act(m: MiddleServer) -> list[SchemaOut]:
        return [
            SchemaOut(
                category=s.id,
                label=s.label,
                items=[
                    ItemOut(
                        name=n, label=i.label, type=i.type.value, required=i.required, choices=list(i.choices)
                    )
                    for n, i in s.items.items()
                ],
            )
            for s in m.categories()
        ]

    return run(request, lg_code, principal, act)


@router.post("/addressees", response_model=AddresseeOut, responses=ERRORS, summary="団体内統合宛名番号の付番")
def addressee(
    request: Request, lg_code: str, body: AddresseeIn, principal: Principal = Depends(staff_of_path)
) -> AddresseeOut:
    return AddresseeOut(
        local_id=run(request, lg_code, principal, lambda m: m.local_id_for(body.resident_code))
    )


@router.post("/replicas", response_model=RegisteredOut, responses=ERRORS, summary="副本の登録")
def register(
    request: Request, lg_code: str, body: ReplicaIn, principal: Principal = Depends(staff_of_path)
) -> RegisteredOut:
    version = run(
        request, lg_code, principal, lambda m: m.register_replica(body.local_id, body.category, body.data)
    )
    return RegisteredOut(local_id=body.local_id, category=body.category, version=version)


@router.get(
    "/replicas/{local_id}", response_model=list[ReplicaOut], responses=ERRORS, summary="副本の照会 (全分類)"
)
def replicas(
    request: Request, lg_code: str, local_id: str, principal: Principal = Depends(staff_of_path)
) -> list[ReplicaOut]:
    return run(request, lg_code, principal, lambda m: _current(m, local_id))


@router.get(
    "/replicas/{local_id}/{category}",
    response_model=list[ReplicaOut],
    responses=ERRORS,
    summary="副本の照会 (分類別; history=true で全版)",
)
def replica(
    request: Request,
    lg_code: str,
    local_id: str,
    category: str,
    history: bool = False,
    principal: Principal = Depends(staff_of_path),
) -> list[ReplicaOut]:
    def act(m: MiddleServer) -> list[ReplicaOut]:
        label = m.schema(category).label
        found = m.history(local_id, category) if history else [m.replica(local_id, category)]
        return [ReplicaOut.of(r, label) for r in found]

    return run(request, lg_code, principal, act)


@router.post("/links/{local_id}", response_model=LinkOut, responses=ERRORS, summary="符号の取得")
def link(
    request: Request, lg_code: str, local_id: str, principal: Principal = Depends(staff_of_path)
) -> LinkOut:
    secret = get_container(request).secret
    run(request, lg_code, principal, lambda m: m.link(local_id, secret=secret))
    return LinkOut(local_id=local_id, linked=True)


@router.post(
    "/sync", response_model=SyncOut, responses=ERRORS, summary="住民票関係情報の副本を既存住基から更新"
)
def sync(request: Request, lg_code: str, principal: Principal = Depends(staff_of_path)) -> SyncOut:
    container = get_container(request)
    with transaction(container.factory) as s:
        registry = container.registry(s, lg_code, principal.actor)
        return SyncOut(written=sync_juminhyo(s, container.clock, registry, actor=principal.actor))


# ------------------------------------------------------------------------ members' own middle server


@member_router.get("/schemas", response_model=list[SchemaOut], responses=ERRORS, summary="副本の分類と項目")
def member_schemas(request: Request, principal: Principal = Depends(member_principal)) -> list[SchemaOut]:
    return run_member(request, principal, _schemas)


@member_router.post("/addressees", response_model=AddresseeOut, responses=ERRORS, summary="宛名番号の付番")
def member_addressee(
    request: Request, body: AddresseeIn, principal: Principal = Depends(member_principal)
) -> AddresseeOut:
    return AddresseeOut(local_id=run_member(request, principal, lambda m: m.local_id_for(body.resident_code)))


@member_router.post("/replicas", response_model=RegisteredOut, responses=ERRORS, summary="副本の登録")
def member_register(
    request: Request, body: ReplicaIn, principal: Principal = Depends(member_principal)
) -> RegisteredOut:
    version = run_member(
        request, principal, lambda m: m.register_replica(body.local_id, body.category, body.data)
    )
    return RegisteredOut(local_id=body.local_id, category=body.category, version=version)


@member_router.get(
    "/replicas/{local_id}", response_model=list[ReplicaOut], responses=ERRORS, summary="副本の照会 (全分類)"
)
def member_replicas(
    request: Request, local_id: str, principal: Principal = Depends(member_principal)
) -> list[ReplicaOut]:
    return run_member(request, principal, lambda m: _current(m, local_id))


@member_router.post("/links/{local_id}", response_model=LinkOut, responses=ERRORS, summary="符号の取得")
def member_link(request: Request, local_id: str, principal: Principal = Depends(member_principal)) -> LinkOut:
    secret = get_container(request).secret
    run_member(request, principal, lambda m: m.link(local_id, secret=secret))
    return LinkOut(local_id=local_id, linked=True)
