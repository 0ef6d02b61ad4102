"""HTTP API of certificate verification (public) and of document withdrawal (municipal staff).

- ``GET  /api/v1/kiosk/verify?n=<証明書番号>&c=<照合番号>`` — anyone: the verdict for a number + code;
- ``POST /api/v1/kiosk/verify/pdf`` (body: the PDF, ``application/pdf``) — anyone: the verdict for a
  file, validated with pyHanko;
- ``POST /api/v1/municipalities/{lg_code}/kiosk/documents/{number}/revoke`` — staff of the issuing
  municipality: withdraw a document issued in error.

Answers carry the verdict, the kind, the municipality, the issue date and the SHA-256 — never
personal data. Verification changes nothing, so it needs no principal (a rate limit belongs in front
of a public deployment; docs/kiosk-pdf.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.errors import InvalidInput
from jlis.kiosk.pdf.service import documents_for
from jlis.kiosk.pdf.verification import MAX_PDF_BYTES
from jlis.web.deps import api_principal, get_container, public

TAG_PUBLIC = "証明書の検証 (公開)"
TAG_STAFF = "コンビニ交付 証明書 (市区町村)"
OPENAPI_TAGS = [
    {
        "name": TAG_PUBLIC,
        "description": "証明書番号と照合番号、または PDF から、発行された証明書かを確かめる",
    },
    {"name": TAG_STAFF, "description": "誤って発行した証明書の取消 (発行した市区町村の職員)"},
]

router = APIRouter(prefix="/api/v1/kiosk/verify", tags=[TAG_PUBLIC])
staff_router = APIRouter(prefix="/api/v1/municipalities/{lg_code}/kiosk/documents", tags=[TAG_STAFF])


class RevokeRequest(BaseModel):
    reason: str = Field(description="取消の理由 (200 文字以内)")


@router.get("", dependencies=[Depends(public)])
def verify_code(request: Request, n: str = "", c: str = "") -> dict[str, Any]:
    """証明書番号 (n) と照合番号 (c) で確かめる。番号が未登録でも照合番号の誤りでも同じ答え (invalid)。"""
    container = get_container(request)
    with transaction(container.factory) as s:
        return documents_for(s, container).verify_code(n, c).to_dict()


@router.post("/pdf", dependencies=[Depends(public)])
async def verify_pdf(request: Request) -> dict[str, Any]:
    """PDF そのもの (本文が PDF) を確かめる: 署名・改ざん・失効・発行台帳。"""
    body = await request.body()
    if not body:
        raise InvalidInput("pdf", "the request body must be the PDF")
    if len(body) > MAX_PDF_BYTES:
        raise InvalidInput("pdf", f"at most {MAX_PDF_BYTES} bytes")
    container = get_container(request)

    def run() -> dict[str, Any]:
        with transaction(container.factory) as s:
            return documents_for(s, container).verify_pdf(body).to_dict()

    return await run_in_threadpool(run)


@staff_router.post("/{number}/revoke")
def revoke(
    request: Request,
    lg_code: str,
    number: str,
    body: RevokeRequest,
    principal: Principal = Depends(api_principal(PrincipalKind.MUNICIPAL_STAFF)),
) -> dict[str, Any]:
    """発行した証明書を取り消す (以後の検証で revoked)。"""
    principal.require_staff_of(lg_code)
    container = get_container(request)
    with transaction(container.factory) as s:
        docs = documents_for(s, container)
        result = docs.revoke(number, principal=principal, reason=body.reason)
        if result.lg_code != lg_code:  # pragma: no cover - revoke() already checked the scope
            raise InvalidInput("lg_code", "must be the issuing municipality")
        return result.to_dict()
