"""The public verification page ``/verify`` (証明書の確認): enter the certificate number and the code
printed beside the QR code (the QR code opens ``/verify?n=…&c=…`` directly), or upload the PDF.

Public and read-only: no sign-in and no CSRF token (nothing changes; the form only asks). The page
shows the verdict, the kind of certificate, the municipality, the issue date and the document's
SHA-256 — never the person's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from jlis.auth.models import PrincipalKind
from jlis.db import transaction
from jlis.errors import InvalidInput, JlisError
from jlis.kiosk.pdf.service import VerificationResult, documents_for
from jlis.kiosk.pdf.verification import MAX_PDF_BYTES
from jlis.web.deps import CSRF_FIELD, current_page_principal, get_container, public

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(include_in_schema=False)


def _environment(request: Request) -> Environment:
    """The app's environment plus this package's templates as ``kiosk_pdf/…`` (built once per app)."""
    env: Environment | None = getattr(request.app.state, "kiosk_pdf_templates", None)
    if env is None:
        base: Environment = request.app.state.templates
        assert base.loader is not None
        env = base.overlay(
            loader=ChoiceLoader(
                [PrefixLoader({"kiosk_pdf": FileSystemLoader(str(TEMPLATE_DIR))}), base.loader]
            )
        )
        request.app.state.kiosk_pdf_templates = env
    return env


def _page(
    request: Request,
    *,
    result: VerificationResult | None = None,
    error: JlisError | None = None,
    values: dict[str, str] | None = None,
    municipality: str | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "request": request,
        "principal": current_page_principal(request),
        "kinds": PrincipalKind,
        "csrf_field": CSRF_FIELD,
        "csrf_token": "",
        "error": error,
        "values": values or {},
        "title": "証明書の確認",
        "result": result,
        "municipality": municipality,
    }
    html = _environment(request).get_template("kiosk_pdf/verify.html").render(ctx)
    return HTMLResponse(html, status_code=error.http_status if error is not None else 200)


def _municipality_name(request: Request, lg_code: str | None) -> str | None:
    if not lg_code:
        return None
    try:
        geo = get_container(request).geography
        muni = geo.municipality(lg_code)
        return f"{geo.prefecture(muni.pref_code).name}{muni.full_name}"
    except JlisError:
        return lg_code


@router.get("/verify", dependencies=[Depends(public)])
def verify_page(request: Request, n: str = "", c: str = "") -> HTMLResponse:
    values = {"n": n, "c": c}
    if not n and not c:
        return _page(request, values=values)
    container = get_container(request)
    try:
        with transaction(container.factory) as s:
            result = documents_for(s, container).verify_code(n, c)
    except JlisError as exc:
        return _page(request, error=exc, values=values)
    return _page(
        request, result=result, values=values, municipality=_municipality_name(request, result.lg_code)
    )


@router.post("/verify", dependencies=[Depends(public)])
async def verify_submit(request: Request) -> HTMLResponse:
    form = await request.form()
    upload = form.get("pdf")
    container = get_container(request)
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_PDF_BYTES + 1)
        if len(data) > MAX_PDF_BYTES:
            return _page(request, error=InvalidInput("pdf", f"at most {MAX_PDF_BYTES} bytes"))

        def run() -> VerificationResult:
            with transaction(container.factory) as s:
                return documents_for(s, container).verify_pdf(data)

        result = await run_in_threadpool(run)
        return _page(request, result=result, municipality=_municipality_name(request, result.lg_code))
    n = str(form.get("n") or "")
    c = str(form.get("c") or "")
    values = {"n": n, "c": c}
    try:

        def run_code() -> VerificationResult:
            with transaction(container.factory) as s:
                return documents_for(s, container).verify_code(n, c)

        result = await run_in_threadpool(run_code)
    except JlisError as exc:
        return _page(request, error=exc, values=values)
    return _page(
        request, result=result, values=values, municipality=_municipality_name(request, result.lg_code)
    )
