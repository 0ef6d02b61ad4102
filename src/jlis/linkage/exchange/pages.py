"""Pages of the information linkage beyond the portal:

- ``/linkage/query`` — a member's terminal (the 中間サーバー's 照会 screen): pick one of the rules the
  legal exchange table gives the member, enter its own 符号 for the person, ask, and see the answer
  or the refusal; with the member's latest 情報提供等記録. The page signs the request with the
  member's request key on the member's behalf, as the member's business system would.
- ``/jlis/linkage/records`` — the J-LIS operator's view of every keeper's chain of 情報提供等記録
  (counts per outcome) and their verification.

Templates under ``templates/``, mounted as ``linkage_exchange`` (``jlis.web.templating``)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import read_only, transaction
from jlis.errors import InvalidInput, JlisError
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.models import QueryAnswer, sign_request
from jlis.linkage.exchange.service import exchange_hub, run_query
from jlis.linkage.hub.members import Member, MemberKind, MemberService, member_of
from jlis.masters.exchange_table import MUNICIPALITY, RESIDENCE, ExchangeRule, load_exchange_table
from jlis.web.deps import csrf_form, get_container, page_principal
from jlis.web.templating import render

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
PREFIX = "linkage_exchange"
router = APIRouter(include_in_schema=False)
MEMBER = page_principal(PrincipalKind.LINKAGE_MEMBER)
OPERATOR = page_principal(PrincipalKind.JLIS_OPERATOR)
RECENT = 20


def _rules(member: Member) -> tuple[ExchangeRule, ...]:
    return load_exchange_table().rules_for(member.id, municipality=member.kind is MemberKind.MUNICIPALITY)


def _member_page(
    request: Request,
    principal: Principal,
    *,
    answer: QueryAnswer | None = None,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    container = get_container(request)
    table = load_exchange_table()
    with container.factory() as s:
        read_only(s)
        member = member_of(s, principal)
        recent = store.records(s, member.id, limit=RECENT, newest_first=True)
    rules = [
        {
            "index": i,
            "affair": table.affair(r.affair).name,
            "category": table.category_label(r.category) or r.category,
            "provider": r.provider,
            "provider_is_any": r.provider in (MUNICIPALITY, RESIDENCE),
            "provider_name": table.member_name(r.provider) or "市区町村 (lg-団体コード)",
            "items": ", ".join(r.items),
        }
        for i, r in enumerate(_rules(member))
    ]
    return render(
        request,
        f"{PREFIX}/query.html",
        {"title": "情報照会", "member": member, "rules": rules, "answer": answer, "recent": recent},
        error=error,
        values=values,
    )


@router.get("/linkage/query")
def query_page(request: Request, principal: Principal = Depends(MEMBER)) -> Response:
    return _member_page(request, principal)


def _field(form: dict[str, str], name: str, label: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InvalidInput(label, "is required")
    return value


@router.post("/linkage/query")
def query_submit(
    request: Request, form: dict[str, str] = Depends(csrf_form), principal: Principal = Depends(MEMBER)
) -> Response:
    container = get_container(request)
    values = {k: v for k, v in form.items() if k in ("rule", "code", "provider", "items")}
    try:
        with container.factory() as s:
            member = member_of(s, principal)
            key = MemberService(
                s, container.clock, actor=principal.actor, key_dir=container.settings.resolved_key_dir
            ).request_key(member.id)
        rules = _rules(member)
        try:
            rule = rules[int(form.get("rule", ""))]
        except (ValueError, IndexError):
            raise InvalidInput("照会の根拠", "must be one of the rules listed for this member") from None
        provider = (
            _field(form, "provider", "情報提供者")
            if rule.provider in (MUNICIPALITY, RESIDENCE)
            else rule.provider
        )
        asked = [i.strip() for i in form.get("items", "").split(",") if i.strip()] or list(rule.items)
        request_ = sign_request(
            key,
            member.id,
            request_id=f"web-{container.clock.now():%Y%m%d%H%M%S}-{secrets.token_hex(6)}",
            requester_code=_field(form, "code", "符号"),
            affair=rule.affair,
            provider_id=provider,
            category=rule.category,
            items=asked,
            sent_at=container.clock.now(),
        )
        answer = run_query(
            container.factory,
            lambda s: exchange_hub(s, container),
            lambda s: member_of(s, principal),
            request_,
        )
    except JlisError as exc:
        return _member_page(request, principal, error=exc, values=values)
    return _member_page(request, principal, answer=answer, values=values)


def _records_page(request: Request, verified: dict[str, Any] | None = None) -> Response:
    container = get_container(request)
    with container.factory() as s:
        read_only(s)
        keepers = [{"keeper": k, "counts": store.summary(s, k)} for k in store.keepers(s)]
    return render(
        request,
        f"{PREFIX}/records.html",
        {"title": "情報提供等記録", "keepers": keepers, "verified": verified},
    )


@router.get("/jlis/linkage/records")
def records_page(request: Request, principal: Principal = Depends(OPERATOR)) -> Response:
    return _records_page(request)


@router.post("/jlis/linkage/records/verify")
def records_verify(
    request: Request, form: dict[str, str] = Depends(csrf_form), principal: Principal = Depends(OPERATOR)
) -> Response:
    container = get_container(request)
    with transaction(container.factory) as s:
        read_only(s)
        results = {k: store.verify(s, k) for k in store.keepers(s)}
    return _records_page(request, verified=results)
