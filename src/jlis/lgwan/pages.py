"""The J-LIS operator's page of the organisation CA (LGPKI 組織認証局): its generations, the 職責証明書
of every municipality, and forms to issue and revoke them (``/jlis/lgwan``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader

from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.db import read_only, transaction
from jlis.errors import Forbidden, JlisError, Unauthenticated
from jlis.lgwan.ca import REVOCATION_REASONS, OrganisationCA, default_title
from jlis.web.deps import (
    CSRF_FIELD,
    csrf_form,
    current_page_principal,
    get_container,
    page_principal,
    session_token,
)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(prefix="/jlis/lgwan", include_in_schema=False)
OPERATOR = page_principal(PrincipalKind.JLIS_OPERATOR)
REASON_LABELS = {
    "unspecified": "理由なし",
    "keyCompromise": "鍵の危殆化",
    "affiliationChanged": "職責の変更",
    "superseded": "更新による置換",
    "cessationOfOperation": "業務の終了",
}


def _environment(request: Request) -> Environment:
    env: Environment | None = getattr(request.app.state, "lgwan_templates", None)
    if env is None:
        base: Environment = request.app.state.templates
        assert base.loader is not None
        env = base.overlay(
            loader=ChoiceLoader([PrefixLoader({"lgwan": FileSystemLoader(str(TEMPLATE_DIR))}), base.loader])
        )
        request.app.state.lgwan_templates = env
    return env


def _ca(request: Request, s: Any) -> OrganisationCA:
    c = get_container(request)
    return OrganisationCA(s, c.clock, c.keystore, c.settings.resolved_public_url, rng=c.rng)


def _page(
    request: Request,
    *,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
    notice: str = "",
) -> HTMLResponse:
    container = get_container(request)
    with container.factory() as s:
        read_only(s)
        ca = _ca(request, s)
        generations = ca.generations()
        roles = ca.roles()
    token = session_token(request)
    principal = current_page_principal(request)
    ctx: dict[str, Any] = {
        "request": request,
        "principal": principal,
        "kinds": PrincipalKind,
        "csrf_field": CSRF_FIELD,
        "csrf_token": auth.csrf_token_for(token) if token and principal else "",
        "error": error,
        "values": values or {},
        "title": "LGPKI 組織認証局",
        "notice": notice,
        "generations": generations,
        "roles": roles,
        "reasons": [(r, REASON_LABELS[r]) for r in REVOCATION_REASONS],
        "now": container.clock.now(),
    }
    html = _environment(request).get_template("lgwan/ca.html").render(ctx)
    return HTMLResponse(html, status_code=error.http_status if error is not None else 200)


@router.get("")
def ca_page(request: Request, _principal: Principal = Depends(OPERATOR)) -> Response:
    return _page(request, notice=request.query_params.get("notice", ""))


def _submit(request: Request, run: Any, values: dict[str, str]) -> Response:
    try:
        notice = run()
    except (Forbidden, Unauthenticated):
        raise
    except JlisError as exc:
        return _page(request, error=exc, values=values)
    return RedirectResponse(f"/jlis/lgwan?notice={notice}", status_code=303)


@router.post("/roles")
def issue_role(
    request: Request,
    form: dict[str, str] = Depends(csrf_form),
    principal: Principal = Depends(OPERATOR),
) -> Response:
    lg_code = form.get("lg_code", "").strip()
    title = form.get("title", "").strip()

    def run() -> str:
        with transaction(get_container(request).factory) as s:
            _ca(request, s).issue_role(lg_code, title or default_title(lg_code), actor=principal.actor)
        return "issued"

    return _submit(request, run, {"lg_code": lg_code, "title": title})


@router.post("/roles/{serial}/revoke")
def revoke_role(
    request: Request,
    serial: str,
    form: dict[str, str] = Depends(csrf_form),
    principal: Principal = Depends(OPERATOR),
) -> Response:
    def run() -> str:
        with transaction(get_container(request).factory) as s:
            _ca(request, s).revoke(serial, form.get("reason", ""), actor=principal.actor)
        return "revoked"

    return _submit(request, run, {})
