"""The J-LIS operator's pages: propagation state of the network, the provision log, the audit
chains, and the disclosure of one person's provision log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.errors import Forbidden, JlisError, Unauthenticated
from jlis.juki.api import disclosure, provision_log, verify_chains
from jlis.juki.status import network_state
from jlis.web.deps import get_container, page_principal
from jlis.web.templating import render

router = APIRouter(prefix="/jlis", include_in_schema=False)
OPERATOR = page_principal(PrincipalKind.JLIS_OPERATOR)


@router.get("")
def propagation_page(request: Request, all: str = "", _principal: Principal = Depends(OPERATOR)) -> Response:
    container = get_container(request)
    with container.factory() as s:
        state = network_state(s, container.geography)
    shown = [
        p for p in state.prefectures if all or p.records or p.pending or p.fuhyo_records or p.fuhyo_pending
    ]
    return render(
        request,
        "juki/propagation.html",
        {
            "title": "伝播状況",
            "national": state.national,
            "prefectures": shown,
            "show_all": bool(all),
            "now": container.clock.now(),
        },
    )


@router.get("/provisions")
def provisions_page(request: Request, principal: Principal = Depends(OPERATOR)) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        entries = provision_log(s, container, principal, limit=200)
    return render(request, "juki/provisions.html", {"title": "提供記録", "entries": entries})


@router.get("/audit")
def audit_page(request: Request, verify: str = "", _principal: Principal = Depends(OPERATOR)) -> Response:
    container = get_container(request)
    chains = None
    if verify:
        with container.factory() as s:
            chains = verify_chains(s)
    return render(
        request,
        "juki/audit.html",
        {"title": "監査ログの検証", "chains": chains, "checked_at": container.clock.now()},
    )


@router.get("/disclosure")
def disclosure_page(
    request: Request, resident_code: str = "", principal: Principal = Depends(OPERATOR)
) -> Response:
    container = get_container(request)
    entries = None
    error: JlisError | None = None
    if resident_code.strip():
        try:
            with transaction(container.factory) as s:
                entries = disclosure(s, container, principal, resident_code)
        except (Forbidden, Unauthenticated):
            raise
        except JlisError as exc:
            error = exc
    return render(
        request,
        "juki/disclosure.html",
        {"title": "提供記録の開示", "resident_code": resident_code, "entries": entries},
        error=error,
    )
