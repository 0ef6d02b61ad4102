"""Dependencies for routes: the container, the calling principal, CSRF-checked form data.

Deny by default: every route takes exactly one of :func:`api_principal`, :func:`page_principal`,
:func:`public` or :func:`kiosk_visit`, and :func:`check_route_guards` refuses to build an app in
which a route has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile

from jlis.auth import service as auth
from jlis.auth.models import Principal, PrincipalKind
from jlis.container import Container
from jlis.db import transaction
from jlis.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "jlis_session"
LOGIN_CSRF_COOKIE = "jlis_login_csrf"
CSRF_FIELD = "csrf_token"

bearer_scheme = HTTPBearer(auto_error=False, description="POST /api/v1/token で得たトークン")

# Attribute set on every guard dependency; check_route_guards looks for it.
GUARD_ATTR = "jlis_accepts"
PUBLIC = "public"
KIOSK_VISIT = "kiosk_visit"
KIOSK_PREFIX = "/kiosk"  # the kiosk screen (jlis.kiosk.screen.pages), the only user of kiosk_visit


class LoginRequired(Unauthenticated):
    """A page asked for a principal and there is none: the handler redirects to /login."""


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def public() -> None:
    """Marks a route that anyone may call (sign-in, the token endpoint, health)."""


setattr(public, GUARD_ATTR, (PUBLIC,))


def kiosk_visit() -> None:
    """Marks a page of the kiosk screen (``/kiosk/...``) that serves one visit of a resident at the
    copier: no sign-in (the card and its PIN authenticate, at the issuance center); the route needs
    the visit's own cookie, and on a POST the form token derived from it, which the kiosk screen
    checks against its visits (no visit: back to the start screen; a wrong form token: 403). Only
    the start screen and its stylesheet (and the start of a visit, the goodbye screen) are
    :func:`public`. :func:`check_route_guards` refuses this guard outside ``/kiosk``."""


setattr(kiosk_visit, GUARD_ATTR, (KIOSK_VISIT,))


def _kinds_text(kinds: tuple[PrincipalKind, ...]) -> str:
    return " or ".join(k.value for k in kinds)


def api_principal(*kinds: PrincipalKind) -> Callable[..., Principal]:
    """A bearer-token principal of one of ``kinds``: 401 without a valid token, 403 for another kind."""
    if not kinds:
        raise ValueError("a guard must accept at least one principal kind")

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated(
                "a bearer token is required (POST /api/v1/token)",
                field="Authorization",
                rule="must be 'Bearer <token>'",
            )
        container = get_container(request)
        with transaction(container.factory) as s:
            principal = auth.principal_for_token(s, credentials.credentials, now=container.clock.now())
        if principal is None:
            raise Unauthenticated(
                "the token is unknown, expired or revoked",
                field="Authorization",
                rule="must be a valid, unexpired token",
            )
        principal.require_kind(*kinds)
        request.state.principal = principal
        return principal

    setattr(dependency, GUARD_ATTR, kinds)
    dependency.__name__ = f"api_principal_{'_'.join(k.value for k in kinds)}"
    return dependency


def staff_of_path(
    lg_code: str, principal: Principal = Depends(api_principal(PrincipalKind.MUNICIPAL_STAFF))
) -> Principal:
    """Municipal staff acting for the 団体 in the path (``/…/{lg_code}/…``), and no other."""
    principal.require_staff_of(lg_code)
    return principal


def poke_relay(request: Request) -> None:
    """After a committed change: let the app's relay worker (if it runs one) deliver it now rather
    than at its next tick. Only a latency hint; the outbox holds the change either way."""
    worker = getattr(request.app.state, "relay_worker", None)
    if worker is not None:
        worker.poke()


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def current_page_principal(request: Request) -> Principal | None:
    """The principal of the session cookie, if any (no kind check: for the layout and /login)."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    container = get_container(request)
    token = session_token(request)
    principal = None
    if token:
        with transaction(container.factory) as s:
            principal = auth.principal_for_session(s, token, now=container.clock.now())
    request.state.principal = principal
    return principal


def page_principal(*kinds: PrincipalKind) -> Callable[..., Principal]:
    """A signed-in page principal of one of ``kinds``: to /login without a session, 403 otherwise."""
    if not kinds:
        raise ValueError("a guard must accept at least one principal kind")

    def dependency(request: Request) -> Principal:
        principal = current_page_principal(request)
        if principal is None:
            raise LoginRequired("sign-in required", field="session", rule="must be signed in")
        principal.require_kind(*kinds)
        return principal

    setattr(dependency, GUARD_ATTR, kinds)
    dependency.__name__ = f"page_principal_{'_'.join(k.value for k in kinds)}"
    return dependency


async def csrf_form(request: Request) -> dict[str, str]:
    """The posted form as text fields, after checking its CSRF token against the session cookie.
    Fails closed: no session or a wrong token is 403 and the form is not looked at."""
    form = await request.form()
    token = session_token(request)
    if not token or not auth.csrf_matches(token, _text(form.get(CSRF_FIELD))):
        raise Forbidden(
            "the form's CSRF token does not match this session; reload the page and try again",
            field=CSRF_FIELD,
            rule="must match the session",
        )
    return {key: _text(value) for key, value in form.multi_items() if key != CSRF_FIELD}


def _text(value: Any) -> str:
    if value is None or isinstance(value, UploadFile):
        return ""
    return str(value)


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


def safe_next(value: str | None) -> str:
    """Only a local path may follow sign-in (no open redirect to another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _guards(dependant: Any) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for dep in dependant.dependencies:
        kinds = getattr(dep.call, GUARD_ATTR, None)
        if kinds is not None:
            found.append(kinds)
        found.extend(_guards(dep))
    return found


def iter_api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, through included routers (FastAPI keeps an included router as one entry
    that points at the original router)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found.extend(iter_api_routes(list(inner.routes)))
    return found


def check_route_guards(routes: list[Any]) -> None:
    """Refuse to start an app with an unguarded route: the guard is part of a route's definition."""
    api_routes = iter_api_routes(routes)
    missing = [f"{sorted(r.methods or ())} {r.path}" for r in api_routes if not _guards(r.dependant)]
    if missing:
        raise RuntimeError("routes without a principal guard (deny by default): " + ", ".join(missing))
    # The kiosk guard checks nothing itself (the kiosk screen checks its visits): it is no guard
    # anywhere else.
    stray = [
        f"{sorted(r.methods or ())} {r.path}"
        for r in api_routes
        if (KIOSK_VISIT,) in _guards(r.dependant) and not r.path.startswith(f"{KIOSK_PREFIX}/")
    ]
    if stray:
        raise RuntimeError("the kiosk_visit guard outside the kiosk screen: " + ", ".join(stray))


def route_guards(route: APIRoute) -> list[tuple[Any, ...]]:
    return _guards(route.dependant)
