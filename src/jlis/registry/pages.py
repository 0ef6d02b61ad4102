"""The municipal counter (統合端末): search, the 住民票, and one form per kind of 異動.

Staff see their own 団体 only: the path names the 団体 and the guard refuses any other, and the
register answers a resident of another 団体 exactly like a missing one. A refused form is shown again
with what was typed and the message naming the item and the rule; nothing of it was written.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar, Union, get_args, get_origin

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from jlis.auth.models import Principal, PrincipalKind
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, JlisError, Unauthenticated
from jlis.registry.api import (
    BirthIn,
    CertificateIn,
    CodeChangeIn,
    CorrectionIn,
    DeathIn,
    MoveInIn,
    MoveOutIn,
    NameChangeIn,
    PlacementIn,
    RelocationIn,
    SpecialMoveInIn,
    apply_birth,
    apply_code_change,
    apply_correction,
    apply_death,
    apply_move_in,
    apply_move_out,
    apply_name_change,
    apply_relocation,
    apply_special_move_in,
    counter_desk,
)
from jlis.registry.models import ResidentView, Status
from jlis.registry.service import RegistryService
from jlis.web.deps import csrf_form, get_container, page_principal, poke_relay
from jlis.web.templating import render, submit_form

router = APIRouter(prefix="/counter/{lg_code}", include_in_schema=False)

M = TypeVar("M", bound=BaseModel)

DONE_MESSAGES = {
    "birth": "出生を記録しました。",
    "move-in": "転入を記録しました。",
    "special-move-in": "転入 (特例) を記録しました。",
    "move-out": "転出を記録しました。",
    "relocation": "転居を記録しました。",
    "death": "死亡を記録しました。",
    "name-change": "氏名変更を記録しました。",
    "correction": "職権修正を記録しました。",
    "code-change": "住民票コードを変更しました。新しい個人番号も付番されています。",
}
NAME_CHANGE_CAUSES = ("婚姻", "離婚", "養子縁組", "離縁", "家庭裁判所の許可", "戸籍の訂正")
CORRECTION_ITEMS = (
    ("family_name", "氏"),
    ("given_name", "名"),
    ("family_kana", "氏の振り仮名"),
    ("given_kana", "名の振り仮名"),
    ("former_surname", "旧氏"),
    ("former_surname_kana", "旧氏の振り仮名"),
    ("alias", "通称"),
    ("birth_date", "生年月日"),
    ("sex", "性別 (male / female)"),
    ("banchi", "番地"),
    ("relationship", "続柄"),
    ("honseki", "本籍"),
)


def page_staff(
    lg_code: str, principal: Principal = Depends(page_principal(PrincipalKind.MUNICIPAL_STAFF))
) -> Principal:
    principal.require_staff_of(lg_code)
    return principal


# ------------------------------------------------------------------------------------------ helpers


def _is_type(annotation: Any, wanted: type) -> bool:
    if annotation is wanted:
        return True
    origin = get_origin(annotation)
    return origin in (Union, types.UnionType) and wanted in get_args(annotation)


def model_from_form(model: type[M], form: dict[str, str], prefix: str = "") -> M:
    """Build a request model from form text: checkboxes are booleans, blank optional items are
    None, a number that is not one is refused naming the item."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = prefix + name
        raw = form.get(key, "")
        ann = info.annotation
        title = info.title or name
        if ann is bool:
            data[name] = raw.lower() in ("on", "true", "1", "yes")
        elif _is_type(ann, int):
            text = raw.strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
            if not text:
                data[name] = None
            elif text.isdigit() and len(text) <= 18:
                data[name] = int(text)
            else:
                raise InvalidInput(title, "must be a number")
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            continue  # nested models are built by the caller
        elif _is_type(ann, type(None)):
            data[name] = raw if raw.strip() else None
        elif key in form or info.is_required():
            data[name] = raw
    try:
        return model.model_validate(data)
    except ValidationError as exc:  # only a shape error of our own form can land here
        err = exc.errors()[0]
        raise InvalidInput(".".join(map(str, err["loc"])), str(err["msg"])) from None


def _svc(s: Any, container: Container, lg_code: str, principal: Principal) -> RegistryService:
    return container.registry(s, lg_code, principal.actor)


def _municipality_name(container: Container, lg_code: str) -> str:
    m = container.geography.municipality(lg_code)
    return container.geography.prefecture(m.pref_code).name + m.full_name


def _base(container: Container, lg_code: str) -> dict[str, Any]:
    return {"lg_code": lg_code, "municipality": _municipality_name(container, lg_code)}


Loader = Callable[[RegistryService], dict[str, Any]]
Extra = Callable[[RegistryService, ResidentView], dict[str, Any]]


def _form_page(
    request: Request,
    lg_code: str,
    principal: Principal,
    template: str,
    title: str,
    loader: Loader | None,
    *,
    values: dict[str, str] | None = None,
    error: JlisError | None = None,
) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        ctx = _base(container, lg_code)
        if loader is not None:
            ctx.update(loader(_svc(s, container, lg_code, principal)))
    ctx["title"] = title
    return render(request, template, ctx, values=values, error=error)


def _submit(
    request: Request,
    lg_code: str,
    principal: Principal,
    form: dict[str, str],
    template: str,
    title: str,
    loader: Loader | None,
    action: Callable[[RegistryService], str],
    resident: int | None = None,
) -> Response:
    """Run ``action`` in one transaction and go to the URL it returns; on a refusal the transaction
    has rolled back and the form comes back with the message (scope errors go to the error page).
    ``resident``: the record the action changes (the desk reads it ahead with its group's)."""
    container = get_container(request)

    def run() -> str:
        desk = counter_desk(request.app)
        target = desk.run(lambda s: action(_svc(s, container, lg_code, principal)), hint=resident)
        poke_relay(request)
        return target

    return submit_form(
        run,
        lambda exc: _form_page(request, lg_code, principal, template, title, loader, values=form, error=exc),
    )


def _resident_url(lg_code: str, resident_id: int, done: str | None = None) -> str:
    return f"/counter/{lg_code}/residents/{resident_id}" + (f"?done={done}" if done else "")


def _resident_loader(resident_id: int, purpose: str, extra: Extra | None = None) -> Loader:
    def load(svc: RegistryService) -> dict[str, Any]:
        resident = svc.get(resident_id, purpose=purpose)
        ctx: dict[str, Any] = {"resident": resident}
        if extra is not None:
            ctx.update(extra(svc, resident))
        return ctx

    return load


# ------------------------------------------------------------------------------------------ search and 住民票


@router.get("")
def counter_home(
    request: Request,
    lg_code: str,
    q: str = "",
    include_removed: str = "",
    principal: Principal = Depends(page_staff),
) -> Response:
    container = get_container(request)
    results: list[ResidentView] | None = None
    error: JlisError | None = None
    if q.strip():
        try:
            with transaction(container.factory) as s:
                results = _svc(s, container, lg_code, principal).search(
                    q, include_removed=bool(include_removed)
                )
        except (Forbidden, Unauthenticated):
            raise
        except JlisError as exc:
            error = exc
    ctx = {
        **_base(container, lg_code),
        "title": "住民検索",
        "q": q,
        "include_removed": bool(include_removed),
        "results": results,
    }
    return render(request, "registry/search.html", ctx, error=error)


@router.get("/residents/{resident_id}")
def resident_page(
    request: Request,
    lg_code: str,
    resident_id: int,
    done: str = "",
    principal: Principal = Depends(page_staff),
) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        svc = _svc(s, container, lg_code, principal)
        resident = svc.get(resident_id, purpose="住民票表示")
        members = svc.household_members(resident.household_id)
        history = svc.history(resident_id)
    ctx = {
        **_base(container, lg_code),
        "title": "住民票",
        "resident": resident,
        "members": members,
        "history": list(reversed(history)),
        "done": DONE_MESSAGES.get(done),
        "Status": Status,
    }
    return render(request, "registry/resident.html", ctx)


@router.get("/municipalities")
def municipality_suggest(
    request: Request, lg_code: str, q: str = "", _principal: Principal = Depends(page_staff)
) -> Response:
    """Destination suggestions for the 転出 form: municipalities that keep a register."""
    container = get_container(request)
    geo = container.geography
    key = q.strip()
    found = []
    if key:
        for m in geo.municipalities(hosting_only=True):
            name = geo.prefecture(m.pref_code).name + m.full_name
            if key in name or m.kana.startswith(key) or m.lg_code.startswith(key):
                found.append({"value": m.lg_code, "label": f"{m.lg_code} {name}"})
            if len(found) >= 30:
                break
    return JSONResponse(found)


# ---------------------------------------------------------------------------------- changes of one resident


def _resident_action(
    slug: str,
    title: str,
    template: str,
    model: type[BaseModel],
    apply: Callable[[RegistryService, int, Any], Any],
    *,
    purpose: str,
    extra: Extra | None = None,
    build: Callable[[dict[str, str], RegistryService, int], BaseModel] | None = None,
) -> None:
    """Register the GET (form) and POST (record) routes of one kind of 異動 of a resident."""

    def loader_for(resident_id: int) -> Loader:
        return _resident_loader(resident_id, purpose, extra)

    def show(
        request: Request, lg_code: str, resident_id: int, principal: Principal = Depends(page_staff)
    ) -> Response:
        return _form_page(request, lg_code, principal, template, title, loader_for(resident_id))

    def record(
        request: Request,
        lg_code: str,
        resident_id: int,
        principal: Principal = Depends(page_staff),
        form: dict[str, str] = Depends(csrf_form),
    ) -> Response:
        def action(svc: RegistryService) -> str:
            body = build(form, svc, resident_id) if build else model_from_form(model, form)
            apply(svc, resident_id, body)
            return _resident_url(lg_code, resident_id, slug)

        loader = loader_for(resident_id)
        return _submit(request, lg_code, principal, form, template, title, loader, action, resident_id)

    show.__name__ = f"{slug.replace('-', '_')}_form"
    record.__name__ = f"{slug.replace('-', '_')}_submit"
    router.add_api_route(f"/residents/{{resident_id}}/{slug}", show, methods=["GET"])
    router.add_api_route(f"/residents/{{resident_id}}/{slug}", record, methods=["POST"])


def _svc_towns(svc: RegistryService) -> list[Any]:
    return list(svc.geo.towns(svc.lg_code))


def _relocation_extra(svc: RegistryService, resident: ResidentView) -> dict[str, Any]:
    return {"towns": _svc_towns(svc)}


def _move_out_extra(svc: RegistryService, resident: ResidentView) -> dict[str, Any]:
    # A 世帯主 who leaves others behind may name the new 世帯主 at once.
    others = (
        [m for m in svc.household_members(resident.household_id) if m.id != resident.id]
        if resident.is_head
        else []
    )
    return {"others": others}


def _correction_build(form: dict[str, str], svc: RegistryService, resident_id: int) -> BaseModel:
    """The form shows every correctable item with its current value; the items changed are the
    correction."""
    current = _correctable_values(svc.get(resident_id, purpose="職権修正"))
    fields = {key: form.get(key, "") for key, _ in CORRECTION_ITEMS if form.get(key, "") != current[key]}
    return CorrectionIn(
        fields=fields, reason=form.get("reason", ""), corrected_on=form.get("corrected_on") or None
    )


def _correctable_values(r: ResidentView) -> dict[str, str]:
    return {
        "family_name": r.name.family,
        "given_name": r.name.given,
        "family_kana": r.name.family_kana,
        "given_kana": r.name.given_kana,
        "former_surname": r.former_surname or "",
        "former_surname_kana": r.former_surname_kana or "",
        "alias": r.alias or "",
        "birth_date": r.birth_date.isoformat(),
        "sex": r.sex.value,
        "banchi": r.address.banchi,
        "relationship": r.relationship,
        "honseki": r.honseki or "",
    }


def _correction_extra(svc: RegistryService, resident: ResidentView) -> dict[str, Any]:
    return {"items": CORRECTION_ITEMS, "current": _correctable_values(resident)}


_resident_action(
    "relocation",
    "転居届",
    "registry/relocation.html",
    RelocationIn,
    apply_relocation,
    purpose="転居入力",
    extra=_relocation_extra,
)
_resident_action(
    "move-out",
    "転出届",
    "registry/move_out.html",
    MoveOutIn,
    apply_move_out,
    purpose="転出入力",
    extra=_move_out_extra,
)
_resident_action("death", "死亡届", "registry/death.html", DeathIn, apply_death, purpose="死亡入力")
_resident_action(
    "name-change",
    "氏名変更",
    "registry/name_change.html",
    NameChangeIn,
    apply_name_change,
    purpose="氏名変更入力",
    extra=lambda _svc, _r: {"causes": NAME_CHANGE_CAUSES},
)
_resident_action(
    "correction",
    "職権修正",
    "registry/correction.html",
    CorrectionIn,
    apply_correction,
    purpose="職権修正入力",
    extra=_correction_extra,
    build=_correction_build,
)
_resident_action(
    "code-change",
    "住民票コード変更",
    "registry/code_change.html",
    CodeChangeIn,
    apply_code_change,
    purpose="住民票コード変更入力",
)


# ------------------------------------------------------------------------------------------ new records


def _birth_loader(household_id: int) -> Loader:
    def load(svc: RegistryService) -> dict[str, Any]:
        return {"household_id": household_id, "members": svc.household_members(household_id)}

    return load


@router.get("/households/{household_id}/birth")
def birth_form(
    request: Request, lg_code: str, household_id: int, principal: Principal = Depends(page_staff)
) -> Response:
    return _form_page(
        request, lg_code, principal, "registry/birth.html", "出生届", _birth_loader(household_id)
    )


@router.post("/households/{household_id}/birth")
def birth_submit(
    request: Request,
    lg_code: str,
    household_id: int,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(svc: RegistryService) -> str:
        view = apply_birth(svc, household_id, model_from_form(BirthIn, form))
        return _resident_url(lg_code, view.id, "birth")

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "registry/birth.html",
        "出生届",
        _birth_loader(household_id),
        action,
    )


def _placement_from_form(form: dict[str, str]) -> PlacementIn:
    # The form asks for the 世帯番号 shown on the 住民票; the register numbers households by id.
    return model_from_form(PlacementIn, {**form, "household_id": form.get("household_no", "")})


def _move_in_loader(svc: RegistryService) -> dict[str, Any]:
    return {"towns": _svc_towns(svc)}


@router.get("/move-in")
def move_in_form(request: Request, lg_code: str, principal: Principal = Depends(page_staff)) -> Response:
    return _form_page(
        request, lg_code, principal, "registry/move_in.html", "転入届 (転出証明書)", _move_in_loader
    )


@router.post("/move-in")
def move_in_submit(
    request: Request,
    lg_code: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(svc: RegistryService) -> str:
        body = MoveInIn(
            certificate=model_from_form(CertificateIn, form, prefix="cert_"),
            placement=_placement_from_form(form),
            moved_on=form.get("moved_on", ""),
            notified_on=form.get("notified_on") or None,
        )
        return _resident_url(lg_code, apply_move_in(svc, body).id, "move-in")

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "registry/move_in.html",
        "転入届 (転出証明書)",
        _move_in_loader,
        action,
    )


def _special_loader(svc: RegistryService) -> dict[str, Any]:
    return {"towns": _svc_towns(svc), "certificates": svc.received_certificates()}


@router.get("/special-move-in")
def special_move_in_form(
    request: Request, lg_code: str, principal: Principal = Depends(page_staff)
) -> Response:
    return _form_page(
        request, lg_code, principal, "registry/special_move_in.html", "転入届の特例", _special_loader
    )


@router.post("/special-move-in")
def special_move_in_submit(
    request: Request,
    lg_code: str,
    principal: Principal = Depends(page_staff),
    form: dict[str, str] = Depends(csrf_form),
) -> Response:
    def action(svc: RegistryService) -> str:
        body = SpecialMoveInIn(
            certificate_no=form.get("certificate_no", ""),
            placement=_placement_from_form(form),
            moved_on=form.get("moved_on", ""),
            notified_on=form.get("notified_on") or None,
        )
        return _resident_url(lg_code, apply_special_move_in(svc, body).id, "special-move-in")

    return _submit(
        request,
        lg_code,
        principal,
        form,
        "registry/special_move_in.html",
        "転入届の特例",
        _special_loader,
        action,
    )
