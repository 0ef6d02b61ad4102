"""HTTP API of jlis.bcl. Three routers, each with its own principal:

- :data:`router` — ``/api/v1/municipalities/{lg_code}/bcl``: staff of that municipality run their part
  of a disaster (declaration over their own towns, the victim register, surveys, counter
  applications and decisions, shelters and card check-in) and back up their own register;
- :data:`jlis_router` — ``/api/v1/jlis/bcl``: a J-LIS operator declares disasters over several
  municipalities, closes them, and takes, lists and verifies backups of any municipality;
- :data:`resident_router` — ``/api/v1/bcl/resident``: a resident applies online for a 罹災証明書 and
  follows their applications, each call proven by their card (a signature over a challenge, no
  password): the card is the credential, so the routes are public.

A restore is deliberately not offered over HTTP: it writes a whole register into a database the
operator names, and is run from the operator's console (``jlis bcl restore``). The portal
(マイナポータル) may call :class:`jlis.bcl.disasters.ResidentDesk` directly after its own card login
instead of the resident routes. Each call is one transaction; refusals answer with the field and
the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl.backup import Backups, DirectoryStore, backup_key
from jlis.bcl.disasters import DisasterService, ResidentDesk, list_disasters
from jlis.bcl.identity import card_holder
from jlis.bcl.models import ApplicationStatus, AreaPart
from jlis.bcl.shelters import Shelters
from jlis.db import transaction
from jlis.errors import InvalidInput
from jlis.registry.models import parse_date
from jlis.web.deps import api_principal, get_container, public, staff_of_path

TAG_STAFF = "被災者支援・バックアップ (市区町村)"
TAG_JLIS = "自治体基盤クラウド (J-LIS)"
TAG_RESIDENT = "罹災証明書のオンライン申請 (カードで本人確認)"

router = APIRouter(prefix="/api/v1/municipalities/{lg_code}/bcl", tags=[TAG_STAFF])
jlis_router = APIRouter(prefix="/api/v1/jlis/bcl", tags=[TAG_JLIS])
RESIDENT_PATH = "/api/v1/bcl/resident"
resident_router = APIRouter(prefix=RESIDENT_PATH, tags=[TAG_RESIDENT])

T = TypeVar("T")


operator = api_principal(PrincipalKind.JLIS_OPERATOR)


def _run(request: Request, action: Callable[[Session], T]) -> Any:
    container = get_container(request)
    with transaction(container.factory) as s:
        return jsonable_encoder(action(s))


def _disasters(request: Request, principal: Principal, action: Callable[[DisasterService], T]) -> Any:
    container = get_container(request)
    return _run(
        request, lambda s: action(DisasterService(s, container.clock, container.geography, principal))
    )


def _shelters(request: Request, principal: Principal, action: Callable[[Shelters], T]) -> Any:
    clock = get_container(request).clock
    return _run(request, lambda s: action(Shelters(s, clock, principal)))


def backup_store(request: Request) -> DirectoryStore:
    """The backup store: ``app.state.bcl_store`` when set at start-up, else ``<data_dir>/bcl-backups``."""
    store: DirectoryStore | None = getattr(request.app.state, "bcl_store", None)
    if store is None:
        store = DirectoryStore(Path(get_container(request).settings.data_dir) / "bcl-backups")
        request.app.state.bcl_store = store
    return store


def _backups(request: Request, principal: Principal, action: Callable[[Backups], T]) -> Any:
    container = get_container(request)
    store, key = backup_store(request), backup_key(container.secret)
    return _run(request, lambda s: action(Backups(s, container.clock, store, key, principal)))


# ------------------------------------------------------------------------------------ models


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DisasterIn(Strict):
    name: str = Field(title="災害名", examples=["令和8年11月豪雨"])
    cause: str = Field(title="災害の原因", description="earthquake, heavy_rain, typhoon, flood, ...")
    occurred_on: str = Field(title="発生日", description="YYYY-MM-DD")
    town_ids: list[str] = Field(
        default_factory=list, title="町字", description="empty: the whole municipality"
    )


class AreaIn(Strict):
    lg_code: str
    town_ids: list[str] = Field(default_factory=list)


class JlisDisasterIn(Strict):
    name: str
    cause: str
    occurred_on: str
    area: list[AreaIn]


class VictimIn(Strict):
    resident_code: str = Field(title="住民票コード")
    town_id: str = Field(title="被災住家の町字")
    banchi: str = Field(title="番地")


class SurveyIn(Strict):
    damage_ratio: float = Field(title="損害割合 (%)")
    surveyed_on: str = Field(title="調査日", description="YYYY-MM-DD")
    round: int = Field(1, title="調査区分", description="1: 第1次調査, 2: 第2次調査")
    note: str | None = Field(None, title="備考")


class ApplicationIn(Strict):
    resident_code: str = Field(title="住民票コード")


class DecisionIn(Strict):
    approve: bool
    reason: str | None = Field(None, title="却下理由")


class ShelterIn(Strict):
    name: str
    address: str
    capacity: int
    disaster_id: str | None = None


class CardLoginIn(Strict):
    challenge: str = Field(max_length=400, description="card-challenge が返した文字列")
    certificate: str = Field(max_length=20_000, description="利用者証明用電子証明書 (DER, base64url)")
    signature: str = Field(max_length=2_000, description="チャレンジへの署名 (base64url)")
    action: Literal["check_in", "check_out"] = "check_in"


class CardIn(Strict):
    certificate_serial: str = Field(title="利用者証明用電子証明書のシリアル番号", description="hex")


# ------------------------------------------------------------------------------------ staff: disasters


@router.get("/disasters")
def disasters_of(lg_code: str, request: Request, principal: Principal = Depends(staff_of_path)) -> Any:
    return _run(request, lambda s: list_disasters(s, lg_code=lg_code))


@router.post("/disasters", status_code=201)
def declare(
    lg_code: str, body: DisasterIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    return _disasters(
        request,
        principal,
        lambda svc: svc.declare(
            name=body.name,
            cause=body.cause,
            occurred_on=parse_date("発生日", body.occurred_on),
            area=[AreaPart(lg_code, tuple(body.town_ids))],
        ),
    )


@router.post("/disasters/{disaster_id}/victims/build")
def build_victims(
    lg_code: str, disaster_id: str, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    return _disasters(request, principal, lambda svc: svc.build_victim_register(disaster_id, lg_code))


@router.get("/disasters/{disaster_id}/victims")
def victims(
    lg_code: str,
    disaster_id: str,
    request: Request,
    household_no: str | None = None,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    return _disasters(
        request, principal, lambda svc: svc.victims(disaster_id, lg_code, household_no=household_no)
    )


@router.post("/disasters/{disaster_id}/victims", status_code=201)
def add_victim(
    lg_code: str,
    disaster_id: str,
    body: VictimIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    return _disasters(
        request,
        principal,
        lambda svc: svc.add_victim(
            disaster_id, lg_code, body.resident_code, town_id=body.town_id, banchi=body.banchi
        ),
    )


@router.get("/disasters/{disaster_id}/dwellings")
def dwellings(
    lg_code: str, disaster_id: str, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    return _disasters(request, principal, lambda svc: svc.dwellings(disaster_id, lg_code))


@router.post("/dwellings/{dwelling_id}/surveys", status_code=201)
def survey(
    lg_code: str,
    dwelling_id: int,
    body: SurveyIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    return _disasters(
        request,
        principal,
        lambda svc: svc.record_survey(
            dwelling_id,
            damage_ratio=body.damage_ratio,
            surveyed_on=parse_date("調査日", body.surveyed_on),
            round=body.round,
            note=body.note,
        ),
    )


@router.get("/dwellings/{dwelling_id}/surveys")
def surveys(
    lg_code: str, dwelling_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    return _disasters(request, principal, lambda svc: svc.surveys(dwelling_id))


@router.post("/disasters/{disaster_id}/applications", status_code=201)
def apply(
    lg_code: str,
    disaster_id: str,
    body: ApplicationIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    return _disasters(
        request, principal, lambda svc: svc.apply_at_counter(disaster_id, lg_code, body.resident_code)
    )


@router.get("/disasters/{disaster_id}/applications")
def applications(
    lg_code: str,
    disaster_id: str,
    request: Request,
    status: str | None = None,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    wanted = None
    if status:
        if status not in {s.value for s in ApplicationStatus}:
            raise InvalidInput("status", f"must be one of {', '.join(s.value for s in ApplicationStatus)}")
        wanted = ApplicationStatus(status)
    return _disasters(request, principal, lambda svc: svc.applications(disaster_id, lg_code, status=wanted))


@router.post("/applications/{application_id}/decision")
def decide(
    lg_code: str,
    application_id: str,
    body: DecisionIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    return _disasters(
        request, principal, lambda svc: svc.decide(application_id, approve=body.approve, reason=body.reason)
    )


# ------------------------------------------------------------------------------------ staff: shelters


@router.get("/shelters")
def shelters(lg_code: str, request: Request, principal: Principal = Depends(staff_of_path)) -> Any:
    return _shelters(request, principal, lambda sh: sh.of_municipality(lg_code))


@router.post("/shelters", status_code=201)
def open_shelter(
    lg_code: str, body: ShelterIn, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    return _shelters(
        request,
        principal,
        lambda sh: sh.open(
            lg_code,
            name=body.name,
            address=body.address,
            capacity=body.capacity,
            disaster_id=body.disaster_id,
        ),
    )


@router.post("/shelters/{shelter_id}/close")
def close_shelter(
    lg_code: str, shelter_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    return _shelters(request, principal, lambda sh: sh.close(shelter_id))


@router.post("/shelters/{shelter_id}/check-in", status_code=201)
def check_in(
    lg_code: str,
    shelter_id: int,
    body: CardIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    return _shelters(request, principal, lambda sh: sh.check_in(shelter_id, body.certificate_serial))


def shelter_audience(request: Request, lg_code: str, shelter_id: int) -> str:
    """What a card signs at a shelter's reception: this instance, the municipality and the shelter,
    so an answer made for one shelter (or for a portal login) is refused at another."""
    base = get_container(request).settings.resolved_public_url
    return f"{base}/api/v1/municipalities/{lg_code}/bcl/shelters/{shelter_id}"


@router.post("/shelters/{shelter_id}/card-challenge")
def card_challenge(
    lg_code: str, shelter_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    """A challenge for the card at the reception terminal (kept in this process, used once)."""
    from jlis.jpki.rp.server import login_desk

    container = get_container(request)
    _shelters(request, principal, lambda sh: sh.get(shelter_id))  # the staff's own shelter
    challenge = login_desk(request).issue(shelter_audience(request, lg_code, shelter_id), container.clock)
    return {"challenge": challenge.to_text(), "expires_at": challenge.expires_at.isoformat()}


@router.post("/shelters/{shelter_id}/card", status_code=201)
def check_in_or_out_by_card(
    lg_code: str,
    shelter_id: int,
    body: CardLoginIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    """入所 or 退所 proven by the card itself: its authentication certificate and its signature over
    a challenge of :func:`card_challenge`, verified here (chain to this instance's authentication
    CA, status in its certificate table, the audience of this shelter, the nonce used once)."""
    from jlis.jpki.rp.login import LoginResponse
    from jlis.jpki.rp.server import login_desk, verify_card_answer

    container = get_container(request)
    desk = login_desk(request)
    challenge = desk.take(body.challenge)
    response = LoginResponse.from_dict({"certificate": body.certificate, "signature": body.signature})

    def act(s: Session) -> Any:
        result = verify_card_answer(
            s, container, desk, challenge, response, shelter_audience(request, lg_code, shelter_id)
        )
        shelters = Shelters(s, container.clock, principal)
        if body.action == "check_out":
            return shelters.check_out(shelter_id, result.serial)
        return shelters.check_in(shelter_id, result.serial)

    return _run(request, act)


@router.post("/shelters/{shelter_id}/check-out")
def check_out(
    lg_code: str,
    shelter_id: int,
    body: CardIn,
    request: Request,
    principal: Principal = Depends(staff_of_path),
) -> Any:
    return _shelters(request, principal, lambda sh: sh.check_out(shelter_id, body.certificate_serial))


@router.get("/shelters/{shelter_id}/occupants")
def occupants(
    lg_code: str, shelter_id: int, request: Request, principal: Principal = Depends(staff_of_path)
) -> Any:
    return _shelters(request, principal, lambda sh: sh.occupants(shelter_id))


# ------------------------------------------------------------------------------------ staff: backups


@router.post("/backups", status_code=201)
def take_backup(lg_code: str, request: Request, principal: Principal = Depends(staff_of_path)) -> Any:
    return _backups(request, principal, lambda b: b.take(lg_code))


@router.get("/backups")
def backups_of(lg_code: str, request: Request, principal: Principal = Depends(staff_of_path)) -> Any:
    return _backups(request, principal, lambda b: b.catalogue(lg_code))


# ------------------------------------------------------------------------------------ J-LIS


@jlis_router.post("/disasters", status_code=201)
def declare_wide(body: JlisDisasterIn, request: Request, principal: Principal = Depends(operator)) -> Any:
    return _disasters(
        request,
        principal,
        lambda svc: svc.declare(
            name=body.name,
            cause=body.cause,
            occurred_on=parse_date("発生日", body.occurred_on),
            area=[AreaPart(a.lg_code, tuple(a.town_ids)) for a in body.area],
        ),
    )


@jlis_router.post("/disasters/{disaster_id}/close")
def close_disaster(disaster_id: str, request: Request, principal: Principal = Depends(operator)) -> Any:
    return _disasters(request, principal, lambda svc: svc.close(disaster_id))


@jlis_router.post("/backups/{lg_code}", status_code=201)
def take_backup_of(lg_code: str, request: Request, principal: Principal = Depends(operator)) -> Any:
    return _backups(request, principal, lambda b: b.take(lg_code))


@jlis_router.get("/backups/{lg_code}")
def catalogue(lg_code: str, request: Request, principal: Principal = Depends(operator)) -> Any:
    return _backups(request, principal, lambda b: b.catalogue(lg_code, include_pruned=True))


@jlis_router.get("/backup/{backup_id}/verify")
def verify_backup(
    backup_id: str, request: Request, against_live: bool = False, principal: Principal = Depends(operator)
) -> Any:
    return _backups(request, principal, lambda b: b.verify(backup_id, against_live=against_live))


# ------------------------------------------------------------------------------------ the resident


class ResidentCardIn(Strict):
    challenge: str = Field(max_length=400, description="/challenge が返した文字列")
    certificate: str = Field(max_length=20_000, description="利用者証明用電子証明書 (DER, base64url)")
    signature: str = Field(max_length=2_000, description="チャレンジへの署名 (base64url)")


class ResidentApplicationIn(ResidentCardIn):
    disaster_id: str = Field(title="災害ID", examples=["D20261120-01"])


def _resident_audience(request: Request) -> str:
    return f"{get_container(request).settings.resolved_public_url}{RESIDENT_PATH}"


def _as_resident(request: Request, body: ResidentCardIn, action: Callable[[ResidentDesk], T]) -> Any:
    """Verify the card's answer (signature, chain, status, audience, nonce once), find its holder
    (a card's or a smartphone's authentication certificate) and act as that resident."""
    from jlis.jpki.rp.login import LoginResponse
    from jlis.jpki.rp.server import login_desk, verify_card_answer

    container = get_container(request)
    desk = login_desk(request)
    challenge = desk.take(body.challenge)
    response = LoginResponse.from_dict({"certificate": body.certificate, "signature": body.signature})

    def act(s: Session) -> Any:
        result = verify_card_answer(s, container, desk, challenge, response, _resident_audience(request))
        holder = card_holder(s, result.serial, container.clock.now(), allow_phone=True)
        return action(ResidentDesk(s, container.clock, holder))

    return _run(request, act)


@resident_router.post("/challenge", dependencies=[Depends(public)], summary="カードで署名するチャレンジ")
def resident_challenge(request: Request) -> Any:
    from jlis.jpki.rp.server import login_desk

    challenge = login_desk(request).issue(_resident_audience(request), get_container(request).clock)
    return {"challenge": challenge.to_text(), "expires_at": challenge.expires_at.isoformat()}


@resident_router.post(
    "/applications", status_code=201, dependencies=[Depends(public)], summary="罹災証明書の交付申請"
)
def resident_apply(body: ResidentApplicationIn, request: Request) -> Any:
    return _as_resident(request, body, lambda desk: desk.apply(body.disaster_id))


@resident_router.post("/status", dependencies=[Depends(public)], summary="被災した災害と申請の状況")
def resident_status(body: ResidentCardIn, request: Request) -> Any:
    return _as_resident(
        request, body, lambda desk: {"disasters": desk.disasters(), "applications": desk.applications()}
    )


ROUTERS = (router, jlis_router, resident_router)
OPENAPI_TAGS = [
    {
        "name": TAG_STAFF,
        "description": "市区町村職員が、自団体の災害 (被災者台帳・被害認定調査・罹災証明書の申請と決定)、"
        "避難所 (カードで入所・退所)、住民記録のバックアップを扱う",
    },
    {
        "name": TAG_JLIS,
        "description": "J-LIS 運用者が、広域の災害を登録し、各団体の住民記録をバックアップ・検証する",
    },
    {
        "name": TAG_RESIDENT,
        "description": "住民が、マイナンバーカードの署名だけで罹災証明書を申請し、状況を確かめる",
    },
]
