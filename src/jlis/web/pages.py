"""Sign-in, sign-out and the start page that sends each principal to its own screen."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.db import transaction
from jlis.errors import Unauthenticated
from jlis.web.deps import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_form,
    current_page_principal,
    get_container,
    page_principal,
    public,
    safe_next,
    session_token,
)
from jlis.web.templating import render

router = APIRouter(include_in_schema=False)

ANY_SIGNED_IN = tuple(PrincipalKind)


def home_for(principal: Principal) -> str:
    if principal.kind is PrincipalKind.MUNICIPAL_STAFF and principal.lg_code:
        return f"/counter/{principal.lg_code}"
    if principal.kind is PrincipalKind.JLIS_OPERATOR:
        return "/jlis"
    if principal.kind is PrincipalKind.LINKAGE_MEMBER:
        return "/linkage/query"
    return "/account"


def _login_page(
    request: Request,
    *,
    next_path: str,
    error: Unauthenticated | None = None,
    username: str = "",
    status_code: int = 200,
) -> Response:
    # Login CSRF (double submit): a third-party page cannot sign the browser in as someone else,
    # because it can neither read nor set this cookie.
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "web/login.html",
        {"title": "サインイン", "login_csrf": token, "next_path": next_path},
        status_code=status_code,
        error=error,
        values={"username": username},
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=3600,
        path="/login",
    )
    return response


@router.get("/", dependencies=[Depends(public)])
def home(request: Request) -> Response:
    principal = current_page_principal(request)
    return RedirectResponse(home_for(principal) if principal else "/login", status_code=303)


@router.get("/healthz", dependencies=[Depends(public)])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/login", dependencies=[Depends(public)])
def login_form(request: Request, next: str = "/") -> Response:
    principal = current_page_principal(request)
    if principal is not None:
        return RedirectResponse(safe_next(next) if next != "/" else home_for(principal), status_code=303)
    return _login_page(request, next_path=safe_next(next))


@router.post("/login", dependencies=[Depends(public)])
async def login_submit(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or "/"))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = str(form.get(CSRF_FIELD) or "")
    if not cookie or not hmac.compare_digest(cookie, sent):
        err = Unauthenticated(
            "フォームの有効期限が切れました。もう一度サインインしてください。",
            field=CSRF_FIELD,
            rule="must match the sign-in form",
        )
        return _login_page(request, next_path=next_path, error=err, username=username, status_code=403)
    container = get_container(request)

    def sign_in() -> tuple[Principal, auth.IssuedSecret]:
        with transaction(container.factory) as s:
            principal = auth.authenticate(s, username, password)
            return principal, auth.open_session(s, principal, now=container.clock.now())

    try:
        # argon2 takes a fifth of a second of CPU: keep it off the event loop.
        principal, issued = await run_in_threadpool(sign_in)
    except Unauthenticated:
        err = Unauthenticated(
            "ユーザー名またはパスワードが違います。", field="password", rule="must match an enabled user"
        )
        return _login_page(request, next_path=next_path, error=err, username=username, status_code=401)
    target = next_path if next_path != "/" else home_for(principal)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=int(auth.SESSION_TTL.total_seconds()),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request,
    _principal: Principal = Depends(page_principal(*ANY_SIGNED_IN)),
    _form: dict[str, str] = Depends(csrf_form),
) -> Response:
    token = session_token(request)
    if token:
        with transaction(get_container(request).factory) as s:
            auth.close_session(s, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account")
def account(request: Request, principal: Principal = Depends(page_principal(*ANY_SIGNED_IN))) -> Response:
    """The landing page of principals without a screen of their own (agencies use the API)."""
    return render(request, "web/account.html", {"title": "アカウント", "me": principal})
