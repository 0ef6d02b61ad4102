"""The J-LIS operator's page of linkage members: the list, registration (the request key shown once,
on the answer to the registration itself) and activation/deactivation.

Templates live under ``templates/`` beside this module, mounted in the shared environment under
the prefix ``linkage_hub`` (``jlis.web.templating.TEMPLATE_DIRS``)."""

from __future__ import annotations

import base64
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, JlisError, Unauthenticated
from jlis.linkage.hub.members import MemberService
from jlis.web.deps import csrf_form, get_container, page_principal
from jlis.web.templating import render

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_PREFIX = "linkage_hub"
router = APIRouter(prefix="/jlis/linkage", include_in_schema=False)
OPERATOR = page_principal(PrincipalKind.JLIS_OPERATOR)
TITLE = "情報連携の機関"


def _service(request: Request, s: Session, principal: Principal) -> MemberService:
    container = get_container(request)
    return MemberService(
        s,
        container.clock,
        actor=principal.actor,
        key_dir=container.settings.resolved_key_dir,
    )


def _page(
    request: Request,
    principal: Principal,
    *,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
    notice: str = "",
    registered: str = "",
    request_key: str = "",
) -> Response:
    container = get_container(request)
    with container.factory() as s:
        members = _service(request, s, principal).list()
    return render(
        request,
        f"{TEMPLATE_PREFIX}/members.html",
        {
            "title": TITLE,
            "members": members,
            "notice": notice,
            "registered": registered,
            "request_key": request_key,
        },
        error=error,
        values=values,
        status_code=201 if request_key else None,
    )


@router.get("/members")
def members_page(request: Request, notice: str = "", principal: Principal = Depends(OPERATOR)) -> Response:
    return _page(request, principal, notice=notice[:100])


@router.post("/members")
def register_member_page(
    request: Request, form: dict[str, str] = Depends(csrf_form), principal: Principal = Depends(OPERATOR)
) -> Response:
    container = get_container(request)
    username = form.get("username", "").strip() or None
    password = form.get("password", "") or None
    try:
        with transaction(container.factory) as s:
            member, key = _service(request, s, principal).register(
                form.get("member_id", ""),
                form.get("name", ""),
                form.get("kind", "").strip(),
                lg_code=form.get("lg_code", "").strip() or None,
                username=username,
                password=password,
            )
    except (Forbidden, Unauthenticated):
        raise
    except JlisError as exc:
        values = {k: v for k, v in form.items() if k != "password"}
        return _page(request, principal, error=exc, values=values)
    # The key is shown in the answer to the registration and nowhere else (no redirect: a URL
    # would keep it in the history).
    return _page(
        request,
        principal,
        notice=f"registered:{member.id}",
        registered=member.id,
        request_key=base64.b64encode(key).decode("ascii"),
    )


@router.post("/members/{member_id}/{action}")
def set_active_page(
    member_id: str,
    action: str,
    request: Request,
    _form: dict[str, str] = Depends(csrf_form),
    principal: Principal = Depends(OPERATOR),
) -> Response:
    if action not in ("activate", "deactivate"):
        return _page(request, principal, error=InvalidInput("action", "must be activate or deactivate"))
    container = get_container(request)
    try:
        with transaction(container.factory) as s:
            _service(request, s, principal).set_active(member_id, action == "activate")
    except (Forbidden, Unauthenticated):
        raise
    except JlisError as exc:
        return _page(request, principal, error=exc)
    return RedirectResponse(f"/jlis/linkage/members?notice={action}d:{member_id}", status_code=303)
