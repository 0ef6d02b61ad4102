"""Error answers. Under /api every refusal is JSON ``{"error", "message", "field", "rule"}`` with the
error's status; pages get a Japanese error page (forms catch their own errors and re-render).
A 500 says nothing about its cause to the caller; the log has it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from jlis.errors import JlisError, Unauthenticated
from jlis.web.deps import login_url

log = logging.getLogger(__name__)

STATUS_TITLES = {
    400: "入力に誤りがあります",
    401: "サインインが必要です",
    403: "権限がありません",
    404: "見つかりません",
    405: "この操作はできません",
    409: "現在の状態ではできない操作です",
    413: "送信された内容が大きすぎます",
    422: "入力に誤りがあります",
    500: "システムエラー",
}


def is_api(request: Request) -> bool:
    """Machine clients: the JSON API, and the JPKI endpoints relying parties fetch (CRL, OCSP, login)."""
    return request.url.path.startswith(("/api/", "/jpki/"))


def error_body(kind: str, message: str, field: str | None, rule: str | None, **extra: Any) -> dict[str, Any]:
    return {"error": kind, "message": message, "field": field, "rule": rule, **extra}


def jlis_error_body(exc: JlisError) -> dict[str, Any]:
    body = exc.to_dict()
    body.setdefault("field", None)
    body.setdefault("rule", None)
    return body


def _page(request: Request, status: int, message: str, exc: JlisError | None = None) -> Response:
    from jlis.web.templating import message_ja, render  # late: templating imports the dependencies module

    return render(
        request,
        "web/error.html",
        {
            "status": status,
            "heading": STATUS_TITLES.get(status, "エラー"),
            "message": message_ja(exc) if exc is not None else message,
            "field": exc.context.get("field") if exc is not None else None,
            "rule": exc.context.get("rule") if exc is not None else None,
        },
        status_code=status,
    )


async def handle_jlis_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, JlisError)
    if is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        return JSONResponse(jlis_error_body(exc), status_code=exc.http_status, headers=headers)
    if isinstance(exc, Unauthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(login_url(target), status_code=303)
    return _page(request, exc.http_status, exc.message, exc)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()))
        rule = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":  # the location is a character offset, not a field
            loc, rule = "body", f"must be valid JSON ({rule} at position {err.get('loc', ('', '?'))[-1]})"
        problems.append({"field": loc, "rule": rule})
    first = problems[0] if problems else {"field": "request", "rule": "invalid"}
    message = f"{first['field']}: {first['rule']}"
    if is_api(request):
        return JSONResponse(
            error_body("invalid_input", message, first["field"], first["rule"], errors=problems),
            status_code=422,
        )
    return _page(request, 422, message)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    rules = {
        404: ("path", "must name an existing resource"),
        405: ("method", "must be allowed for this path"),
    }
    field, rule = rules.get(status, ("request", str(exc.detail)))
    if is_api(request):
        return JSONResponse(
            error_body("http_error", str(exc.detail), field, rule), status_code=status, headers=exc.headers
        )
    return _page(request, status, STATUS_TITLES.get(status, str(exc.detail)))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if is_api(request):
        return JSONResponse(error_body("internal", "internal error", None, None), status_code=500)
    return _page(request, 500, "予期しないエラーが発生しました。管理者に連絡してください。")


def install(app: FastAPI) -> None:
    app.add_exception_handler(JlisError, handle_jlis_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected)
