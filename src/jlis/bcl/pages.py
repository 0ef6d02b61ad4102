"""The counter's disaster pages (統合端末 — 被災者支援): the municipality's disasters and shelters,
one disaster with its victim register, dwellings, surveys and 罹災証明書 applications, and one
shelter's reception (check-in and check-out with the card).

Staff see their own municipality only (the path names it; the services refuse anything else). A
refused form comes back with the message naming the item and the rule, and with what was typed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from jlis.auth.models import Principal, PrincipalKind
from jlis.bcl.disasters import DisasterService, get_disaster, list_disasters
from jlis.bcl.models import AreaPart, DamageGrade, DisasterCause, SurveyRound
from jlis.bcl.shelters import Shelters
from jlis.db import transaction
from jlis.errors import InvalidInput, JlisError
from jlis.registry.models import parse_date
from jlis.web.deps import csrf_form, get_container, page_principal
from jlis.web.templating import render, submit_form

router = APIRouter(prefix="/counter/{lg_code}/bcl", include_in_schema=False)
TEMPLATE_DIR = Path(__file__).parent / "templates"  # the lead maps "bcl" to it in TEMPLATE_DIRS

DONE_MESSAGES = {
    "declared": "災害を登録しました。",
    "built": "被災者台帳を作成しました。",
    "surveyed": "被害認定調査の結果を記録しました。",
    "applied": "罹災証明書の申請を受け付けました。",
    "decided": "申請を決定しました。",
    "opened": "避難所を開設しました。",
    "checked_in": "入所を受け付けました。",
    "checked_out": "退所を受け付けました。",
    "closed": "避難所を閉鎖しました。",
}

Loader = Callable[[Session, Principal], dict[str, Any]]


def page_staff(
    lg_code: str, principal: Principal = Depends(page_principal(PrincipalKind.MUNICIPAL_STAFF))
) -> Principal:
    principal.require_staff_of(lg_code)
    return principal


def _municipality(request: Request, lg_code: str) -> str:
    geo = get_container(request).geography
    m = geo.municipality(lg_code)
    return geo.prefecture(m.pref_code).name + m.full_name


def _render(
    request: Request,
    lg_code: str,
    principal: Principal,
    template: str,
    title: str,
    loader: Loader,
    *,
    done: str = "",
    values: dict[str, str] | None = None,
    error: JlisError | None = None,
) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        ctx: dict[str, Any] = {"lg_code": lg_code, "municipality": _municipality(request, lg_code)}
        ctx.update(loader(s, principal))
    ctx["title"] = title
    ctx["done"] = DONE_MESSAGES.get(done)
    return render(request, template, ctx, values=values, error=error)


def _submit(
    request: Request,
    lg_code: str,
    principal: Principal,
    form: dict[str, str],
    template: str,
    title: str,
    loader: Loader,
    action: Callable[[Session], str],
) -> Response:
    container = get_container(request)

    def run() -> str:
        with transaction(container.factory) as s:
            return action(s)

    return submit_form(
        run, lambda exc: _render(request, lg_code, principal, template, title, loader, values=form, error=exc)
    )


def _service(request: Request, s: Session, principal: Principal) -> DisasterService:
    container = get_container(request)
    return DisasterService(s, container.clock, container.geography, principal)


def _int(form: dict[str, str], name: str, field: str) -> int:
    try:
        return int(form.get(name, "").strip())
    except ValueError:
        raise InvalidInput(field, "must be a whole number") from None


def _float(form: dict[str, str], name: str, field: str) -> float:
    try:
        return float(form.get(name, "").strip())
    except ValueError:
        raise InvalidInput(field, "must be a number") from None


# ------------------------------------------------------------------------------------ the index


def _index_loader(request: Request, lg_code: str) -> Loader:
    def load(s: Session, principal: Principal) -> dict[str, Any]:
        clock = get_container(request).clock
        return {
            "disasters": list_disasters(s, lg_code=lg_code),
            "shelters": Shelters(s, clock, principal).of_municipality(lg_code),
            "causes": list(DisasterCause),
            "towns": get_container(request).geography.towns(lg_code),
            "today": clock.today(),
        }

    return load


@router.get("")
def index(
    request: Request, lg_code: str, done: str = "", principal: Principal = Depends(page_staff)
) -> Response:
    return _render(
        request,
        lg_code,
        principal,
        "bcl/index.html",
        "被災者支援",
        _index_loader(request, lg_code),
        done=done,
    )


@router.post("/disasters")
def declare(
    request: Request,
    lg_code: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(s: Session) -> str:
        towns = tuple(t for t in form.get("town_ids", "").replace(",", " ").split() if t)
        view = _service(request, s, principal).declare(
            name=form.get("name", ""),
            cause=form.get("cause", ""),
            occurred_on=parse_date("発生日", form.get("occurred_on", "")),
            area=[AreaPart(lg_code, towns)],
        )
        return f"/counter/{lg_code}/bcl/disasters/{view.id}?done=declared"

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "bcl/index.html",
        "被災者支援",
        _index_loader(request, lg_code),
        action,
    )


@router.post("/shelters")
def open_shelter(
    request: Request,
    lg_code: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(s: Session) -> str:
        view = Shelters(s, get_container(request).clock, principal).open(
            lg_code,
            name=form.get("name", ""),
            address=form.get("address", ""),
            capacity=_int(form, "capacity", "収容人数"),
            disaster_id=form.get("disaster_id") or None,
        )
        return f"/counter/{lg_code}/bcl/shelters/{view.id}?done=opened"

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "bcl/index.html",
        "被災者支援",
        _index_loader(request, lg_code),
        action,
    )


# ------------------------------------------------------------------------------------ one disaster


def _disaster_loader(request: Request, lg_code: str, disaster_id: str) -> Loader:
    def load(s: Session, principal: Principal) -> dict[str, Any]:
        svc = _service(request, s, principal)
        view = get_disaster(s, disaster_id)
        return {
            "disaster": view,
            "victims": svc.victims(disaster_id, lg_code),
            "dwellings": svc.dwellings(disaster_id, lg_code),
            "applications": svc.applications(disaster_id, lg_code),
            "today": get_container(request).clock.today(),
            "grades": list(DamageGrade),
        }

    return load


def _disaster_post(
    request: Request,
    lg_code: str,
    disaster_id: str,
    principal: Principal,
    form: dict[str, str],
    work: Callable[[DisasterService], str],
) -> Response:
    def action(s: Session) -> str:
        done = work(_service(request, s, principal))
        return f"/counter/{lg_code}/bcl/disasters/{disaster_id}?done={done}"

    loader = _disaster_loader(request, lg_code, disaster_id)
    return _submit(request, lg_code, principal, form, "bcl/disaster.html", "災害", loader, action)


@router.get("/disasters/{disaster_id}")
def disaster_page(
    request: Request,
    lg_code: str,
    disaster_id: str,
    done: str = "",
    principal: Principal = Depends(page_staff),
) -> Response:
    loader = _disaster_loader(request, lg_code, disaster_id)
    return _render(request, lg_code, principal, "bcl/disaster.html", "災害", loader, done=done)


@router.post("/disasters/{disaster_id}/build")
def build(
    request: Request,
    lg_code: str,
    disaster_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def work(svc: DisasterService) -> str:
        svc.build_victim_register(disaster_id, lg_code)
        return "built"

    return _disaster_post(request, lg_code, disaster_id, principal, form, work)


@router.post("/disasters/{disaster_id}/survey")
def survey(
    request: Request,
    lg_code: str,
    disaster_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def work(svc: DisasterService) -> str:
        svc.record_survey(
            _int(form, "dwelling_id", "被災住家"),
            damage_ratio=_float(form, "damage_ratio", "損害割合"),
            surveyed_on=parse_date("調査日", form.get("surveyed_on", "")),
            round=SurveyRound.parse(form.get("round", "1")),
            note=form.get("note") or None,
        )
        return "surveyed"

    return _disaster_post(request, lg_code, disaster_id, principal, form, work)


@router.post("/disasters/{disaster_id}/apply")
def apply(
    request: Request,
    lg_code: str,
    disaster_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def work(svc: DisasterService) -> str:
        svc.apply_at_counter(disaster_id, lg_code, form.get("resident_code", ""))
        return "applied"

    return _disaster_post(request, lg_code, disaster_id, principal, form, work)


@router.post("/disasters/{disaster_id}/decide")
def decide(
    request: Request,
    lg_code: str,
    disaster_id: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def work(svc: DisasterService) -> str:
        svc.decide(
            form.get("application_id", ""),
            approve=form.get("decision") == "approve",
            reason=form.get("reason"),
        )
        return "decided"

    return _disaster_post(request, lg_code, disaster_id, principal, form, work)


# ------------------------------------------------------------------------------------ one shelter


def _shelter_loader(request: Request, shelter_id: int) -> Loader:
    def load(s: Session, principal: Principal) -> dict[str, Any]:
        shelters = Shelters(s, get_container(request).clock, principal)
        occupants = shelters.occupants(shelter_id)
        return {"shelter": shelters.get(shelter_id), "occupants": occupants}

    return load


@router.get("/shelters/{shelter_id}")
def shelter_page(
    request: Request,
    lg_code: str,
    shelter_id: int,
    done: str = "",
    principal: Principal = Depends(page_staff),
) -> Response:
    loader = _shelter_loader(request, shelter_id)
    return _render(request, lg_code, principal, "bcl/shelter.html", "避難所受付", loader, done=done)


@router.post("/shelters/{shelter_id}/reception")
def reception(
    request: Request,
    lg_code: str,
    shelter_id: int,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    """入所 / 退所 / 閉鎖: the reader hands over the card's authentication certificate serial."""

    def action(s: Session) -> str:
        shelters = Shelters(s, get_container(request).clock, principal)
        what = form.get("action", "")
        if what == "check_in":
            shelters.check_in(shelter_id, form.get("certificate_serial", ""))
            done = "checked_in"
        elif what == "check_out":
            shelters.check_out(shelter_id, form.get("certificate_serial", ""))
            done = "checked_out"
        elif what == "close":
            shelters.close(shelter_id)
            done = "closed"
        else:
            raise InvalidInput("action", "must be check_in, check_out or close")
        return f"/counter/{lg_code}/bcl/shelters/{shelter_id}?done={done}"

    loader = _shelter_loader(request, shelter_id)
    return _submit(request, lg_code, principal, form, "bcl/shelter.html", "避難所受付", loader, action)
