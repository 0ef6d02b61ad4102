"""The middle server at the municipal counter (統合端末): a resident's replicas, the 住民票関係情報
refresh, the 符号 acquisition, and one registration form per category (what a business system would
send). Staff of the 団体 in the path only; every read of the register and of the replicas is audited.

Templates live in ``templates/`` and are addressed as ``middle/…`` (the web layer's template
folders must list ``"middle"``; see docs/linkage-middle.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from jlis.auth.models import Principal, PrincipalKind
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import InvalidInput, JlisError
from jlis.linkage.middle.models import municipality_member
from jlis.linkage.middle.schemas import ItemType, ReplicaSchema
from jlis.linkage.middle.service import MiddleServer
from jlis.linkage.middle.sync import sync_resident
from jlis.web.deps import csrf_form, get_container, page_principal
from jlis.web.templating import render, submit_form

router = APIRouter(prefix="/counter/{lg_code}/middle", include_in_schema=False)

DONE_MESSAGES = {
    "sync": "住民票関係情報の副本を更新しました。",
    "link": "符号を取得しました。",
    "registered": "副本を登録しました。",
}
BOOL_CHOICES = (("", "(なし)"), ("true", "あり・はい"), ("false", "なし・いいえ"))


def page_staff(
    lg_code: str, principal: Principal = Depends(page_principal(PrincipalKind.MUNICIPAL_STAFF))
) -> Principal:
    principal.require_staff_of(lg_code)
    return principal


def _base(container: Container, lg_code: str) -> dict[str, Any]:
    m = container.geography.municipality(lg_code)
    return {
        "lg_code": lg_code,
        "municipality": container.geography.prefecture(m.pref_code).name + m.full_name,
    }


def _url(lg_code: str, resident_id: int, done: str | None = None) -> str:
    return f"/counter/{lg_code}/middle/residents/{resident_id}" + (f"?done={done}" if done else "")


def form_data(schema: ReplicaSchema, form: dict[str, str]) -> dict[str, object]:
    """A registration from the form's text: blank is absent, numbers and booleans parsed; the
    schema then judges the values like any registration."""
    data: dict[str, object] = {}
    for name, spec in schema.items.items():
        raw = (form.get(name) or "").strip()
        if not raw:
            continue
        if spec.type is ItemType.INTEGER:
            text = raw.replace(",", "").translate(str.maketrans("０１２３４５６７８９", "0123456789"))
            if not text.lstrip("-").isdigit() or len(text) > 18:
                raise InvalidInput(f"items.{name}", "must be an integer")
            data[name] = int(text)
        elif spec.type is ItemType.BOOLEAN:
            if raw not in ("true", "false"):
                raise InvalidInput(f"items.{name}", "must be true or false")
            data[name] = raw == "true"
        else:
            data[name] = raw
    return data


def _overview(
    request: Request,
    lg_code: str,
    resident_id: int,
    principal: Principal,
    *,
    done: str = "",
    error: JlisError | None = None,
) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        registry = container.registry(s, lg_code, principal.actor)
        resident = registry.get(resident_id, purpose="副本照会")
        middle = MiddleServer(s, container.clock, municipality_member(lg_code), actor=principal.actor)
        lid = middle.find_local_id(resident.resident_code)
        replicas = middle.replicas(lid, purpose="副本照会") if lid else []
        linked = bool(lid and middle.code_for(lid))
        categories = middle.categories()
    ctx = {
        **_base(container, lg_code),
        "title": "中間サーバー 副本",
        "resident": resident,
        "local_id": lid,
        "linked": linked,
        "replicas": [(r, middle.schemas[r.category]) for r in replicas],
        "categories": categories,
        "done": DONE_MESSAGES.get(done),
    }
    return render(request, "middle/resident.html", ctx, error=error)


@router.get("/residents/{resident_id}")
def resident_page(
    request: Request,
    lg_code: str,
    resident_id: int,
    done: str = "",
    principal: Principal = Depends(page_staff),
) -> Response:
    return _overview(request, lg_code, resident_id, principal, done=done)


@router.post("/residents/{resident_id}/sync")
def sync_page(
    request: Request,
    lg_code: str,
    resident_id: int,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    container = get_container(request)

    def run() -> str:
        with transaction(container.factory) as s:
            registry = container.registry(s, lg_code, principal.actor)
            sync_resident(s, container.clock, registry, resident_id, actor=principal.actor)
        return _url(lg_code, resident_id, "sync")

    return submit_form(run, lambda exc: _overview(request, lg_code, resident_id, principal, error=exc))


@router.post("/residents/{resident_id}/link")
def link_page(
    request: Request,
    lg_code: str,
    resident_id: int,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    container = get_container(request)

    def run() -> str:
        with transaction(container.factory) as s:
            resident = container.registry(s, lg_code, principal.actor).get(resident_id, purpose="符号取得")
            middle = MiddleServer(s, container.clock, municipality_member(lg_code), actor=principal.actor)
            middle.link(middle.local_id_for(resident.resident_code), secret=container.secret)
        return _url(lg_code, resident_id, "link")

    return submit_form(run, lambda exc: _overview(request, lg_code, resident_id, principal, error=exc))


def _form(
    request: Request,
    lg_code: str,
    resident_id: int,
    category: str,
    principal: Principal,
    *,
    values: dict[str, str] | None = None,
    error: JlisError | None = None,
) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        resident = container.registry(s, lg_code, principal.actor).get(resident_id, purpose="副本登録")
        middle = MiddleServer(s, container.clock, municipality_member(lg_code), actor=principal.actor)
        schema = middle.schema(category)
        if values is None:
            lid = middle.find_local_id(resident.resident_code)
            version = middle.current_version(lid, category) if lid else 0
            current = middle.replica(lid, category, purpose="副本登録").data if lid and version else {}
            values = {
                k: ("true" if v is True else "false" if v is False else str(v)) for k, v in current.items()
            }
    ctx = {
        **_base(container, lg_code),
        "title": f"副本の登録 — {schema.label}",
        "resident": resident,
        "schema": schema,
        "ItemType": ItemType,
        "bool_choices": BOOL_CHOICES,
    }
    return render(request, "middle/register.html", ctx, values=values, error=error)


@router.get("/residents/{resident_id}/replicas/{category}")
def register_page(
    request: Request,
    lg_code: str,
    resident_id: int,
    category: str,
    principal: Principal = Depends(page_staff),
) -> Response:
    return _form(request, lg_code, resident_id, category, principal)


@router.post("/residents/{resident_id}/replicas/{category}")
def register_submit(
    request: Request,
    lg_code: str,
    resident_id: int,
    category: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    container = get_container(request)

    def run() -> str:
        with transaction(container.factory) as s:
            resident = container.registry(s, lg_code, principal.actor).get(resident_id, purpose="副本登録")
            middle = MiddleServer(s, container.clock, municipality_member(lg_code), actor=principal.actor)
            data = form_data(middle.schema(category), form)
            middle.register_replica(middle.local_id_for(resident.resident_code), category, data)
        return _url(lg_code, resident_id, "registered")

    return submit_form(
        run, lambda exc: _form(request, lg_code, resident_id, category, principal, values=form, error=exc)
    )
