"""HTTP API of the hub's query path, ``/api/v1/linkage``, for linkage members (a bearer token of a
``linkage_member`` principal, :func:`jlis.linkage.hub.members.member_of`):

- ``POST /queries`` — one query (情報照会). 200 with the answer (``provided`` or ``no_match``); a
  refusal is recorded, committed, and answered 403 with ``field``, ``rule`` (the refusal reason)
  and ``exchange_no``. With :func:`start_services` called at start-up, concurrent single queries
  are committed in groups (:class:`jlis.linkage.exchange.batcher.QueryBatcher`);
- ``POST /queries/batch`` — up to 1,000 queries in one transaction (一括照会); refusals are answers
  in the list (``outcome: refused`` with ``reason``), the batch itself succeeds;
- ``GET /records`` — the member's own 情報提供等記録 (newest first), optionally about one person
  by the member's own code;
- ``GET /rules`` — the rules of the legal exchange table under which the member may ask.

The request body carries the MAC (HMAC-SHA256, hex) over the canonical request with the member's
request key (:func:`jlis.linkage.exchange.models.canonical_request`): a bearer token alone does not
make a query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import read_only, transaction
from jlis.errors import InvalidInput
from jlis.linkage.exchange.batcher import QueryBatcher
from jlis.linkage.exchange.models import (
    DisclosurePolicy,
    ExchangeRecord,
    QueryAnswer,
    QueryRequest,
)
from jlis.linkage.exchange.service import MAX_BATCH, exchange_hub, run_queries, run_query
from jlis.linkage.hub.members import MemberKind, member_of
from jlis.web.deps import api_principal, get_container

TAG = "情報連携 情報照会・情報提供等記録"


def start_services(app: FastAPI) -> QueryBatcher:
    """Start the group commit of single queries (call from the app's lifespan; see batcher.py)."""
    container = app.state.container
    batcher = QueryBatcher(container.factory, lambda s: exchange_hub(s, container)).start()
    app.state.linkage_batcher = batcher
    return batcher


def stop_services(app: FastAPI) -> None:
    """Answer the queued queries, then stop the group commit."""
    batcher: QueryBatcher | None = getattr(app.state, "linkage_batcher", None)
    if batcher is not None:
        batcher.stop()
        app.state.linkage_batcher = None


router = APIRouter(prefix="/api/v1/linkage", tags=[TAG])
member_principal = api_principal(PrincipalKind.LINKAGE_MEMBER)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "トークンがない・無効"},
    403: {"description": "照会拒否 (rule に理由、exchange_no に記録の番号)・情報連携の機関でない"},
    422: {"description": "入力の誤り (field と rule で項目と規則を示す)"},
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryIn(Strict):
    request_id: str = Field(title="要求番号", description="照会機関ごとに一意", examples=["2026-000001"])
    requester_code: str = Field(title="照会機関の符号")
    affair: str = Field(title="事務", examples=["pension_benefit"])
    provider_id: str = Field(title="情報提供者", examples=["lg-131016"])
    category: str = Field(title="特定個人情報の種類", examples=["local_tax"])
    items: list[str] = Field(title="項目", examples=[["tax_year", "total_income"]])
    sent_at: str = Field(title="送信日時", description="ISO 8601, タイムゾーン付き")
    mac: str = Field(title="MAC", description="HMAC-SHA256 (16進 64桁)")
    disclosure: str = Field("immediate", title="開示区分", description="immediate | deferred | never")
    disclose_after: str | None = Field(None, title="開示日", description="deferred のとき YYYY-MM-DD")

    def request(self, where: str = "") -> QueryRequest:
        try:
            sent_at = dt.datetime.fromisoformat(self.sent_at)
        except ValueError:
            raise InvalidInput(f"{where}sent_at", "must be an ISO 8601 date and time") from None
        if sent_at.tzinfo is None:
            raise InvalidInput(f"{where}sent_at", "must carry a time zone")
        try:
            policy = DisclosurePolicy(self.disclosure)
        except ValueError:
            raise InvalidInput(f"{where}disclosure", "must be one of immediate, deferred, never") from None
        after = None
        if self.disclose_after is not None:
            try:
                after = dt.date.fromisoformat(self.disclose_after)
            except ValueError:
                raise InvalidInput(f"{where}disclose_after", "must be a date (YYYY-MM-DD)") from None
        return QueryRequest(
            request_id=self.request_id,
            requester_code=self.requester_code,
            affair=self.affair,
            provider_id=self.provider_id,
            category=self.category,
            items=tuple(self.items),
            sent_at=sent_at,
            mac=self.mac,
            disclosure=policy,
            disclose_after=after,
        )


class BatchIn(Strict):
    queries: list[QueryIn] = Field(title="照会", min_length=1, max_length=MAX_BATCH)


def answer_json(a: QueryAnswer) -> dict[str, Any]:
    return {
        "request_id": a.request_id,
        "exchange_no": a.exchange_no,
        "outcome": a.outcome.value,
        "reason": None if a.reason is None else a.reason.value,
        "message": a.message or None,
        "provider_id": a.provider_id,
        "affair": a.affair,
        "category": a.category,
        "items": list(a.items),
        "requested_at": a.requested_at.isoformat(),
        "provided_at": None if a.provided_at is None else a.provided_at.isoformat(),
        "data": dict(a.data),
    }


def record_json(r: ExchangeRecord) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "exchange_no": r.exchange_no,
        "role": r.role.value,
        "request_id": r.request_id,
        "person": r.person,
        "requester_id": r.requester_id,
        "requester_name": r.requester_name,
        "provider_id": r.provider_id,
        "provider_name": r.provider_name,
        "affair": r.affair,
        "affair_name": r.affair_name,
        "category": r.category,
        "items": list(r.items),
        "outcome": r.outcome.value,
        "reason": None if r.reason is None else r.reason.value,
        "requested_at": r.requested_at.isoformat(),
        "provided_at": None if r.provided_at is None else r.provided_at.isoformat(),
        "non_disclosure": r.non_disclosure,
        "disclosure": r.disclosure.value,
        "disclose_after": None if r.disclose_after is None else r.disclose_after.isoformat(),
        "hash": r.hash,
    }


@router.post("/queries", summary="情報照会 (1件)", responses=ERRORS)
def query(
    body: QueryIn, request: Request, principal: Principal = Depends(member_principal)
) -> dict[str, Any]:
    container = get_container(request)
    req = body.request()
    batcher: QueryBatcher | None = getattr(request.app.state, "linkage_batcher", None)
    if batcher is not None and batcher.running:
        with container.factory() as s, s.begin():
            read_only(s)
            member = member_of(s, principal)
        answer = batcher.submit(member, req)  # committed with its group before it returns
        answer.raise_if_refused()
    else:
        answer = run_query(
            container.factory,
            lambda s: exchange_hub(s, container),
            lambda s: member_of(s, principal),
            req,
        )
    return answer_json(answer)


@router.post("/queries/batch", summary="情報照会 (一括, 1,000件まで)", responses=ERRORS)
def query_batch(
    body: BatchIn, request: Request, principal: Principal = Depends(member_principal)
) -> dict[str, Any]:
    container = get_container(request)
    reqs = [q.request(f"queries[{i}].") for i, q in enumerate(body.queries)]
    answers = run_queries(
        container.factory,
        lambda s: exchange_hub(s, container),
        lambda s: member_of(s, principal),
        reqs,
    )
    return {"answers": [answer_json(a) for a in answers]}


@router.get("/records", summary="自機関の情報提供等記録", responses=ERRORS)
def records(
    request: Request,
    code: str | None = Query(None, title="自機関の符号", description="この人の記録だけ"),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(member_principal),
) -> list[dict[str, Any]]:
    container = get_container(request)
    with transaction(container.factory) as s:  # writes the access audit entry
        member = member_of(s, principal)
        hub = exchange_hub(s, container)
        return [record_json(r) for r in hub.records_of(member, code=code, limit=limit)]


@router.get("/rules", summary="照会できる組合せ (情報連携の表)", responses=ERRORS)
def rules(request: Request, principal: Principal = Depends(member_principal)) -> list[dict[str, Any]]:
    container = get_container(request)
    with transaction(container.factory) as s:
        member = member_of(s, principal)
    from jlis.masters.exchange_table import load_exchange_table

    table = load_exchange_table()
    return [
        {
            "affair": r.affair,
            "affair_name": table.affair(r.affair).name,
            "provider": r.provider,
            "category": r.category,
            "category_label": table.category_label(r.category),
            "items": list(r.items),
            "disclosure": sorted(p.value for p in r.disclosure),
        }
        for r in table.rules_for(member.id, municipality=member.kind is MemberKind.MUNICIPALITY)
    ]
