"""The app as a whole: guards on every route, sign-in and sign-out, CSRF, error formats, headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth.models import PrincipalKind
from jlis.clock import FixedClock
from jlis.web.deps import (
    KIOSK_VISIT,
    PUBLIC,
    check_route_guards,
    iter_api_routes,
    kiosk_visit,
    route_guards,
)

from .support import CHIYODA, OPERATOR, PASSWORD, STAFF_A, WebWorld, assert_error, csrf_of

PUBLIC_ROUTES = {
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/api/v1/token"),
    ("GET", "/docs"),  # the app serves it itself when Swagger UI is installed locally (fastapi-offline)
    ("GET", "/jpki/ca/{ca_kind}/g{generation:int}.cer"),  # the JPKI roots are published
    # Card login: the caller is not signed in yet; the card's signature is what authenticates.
    ("POST", "/api/v1/jpki/login/challenge"),
    ("POST", "/api/v1/jpki/login/verify"),
    ("POST", "/api/v1/portal/login/challenge"),
    ("POST", "/api/v1/portal/login/verify"),
    ("GET", "/portal/login"),
    ("POST", "/portal/login"),
    ("POST", "/portal/logout"),  # ends whatever session the cookie names; nothing to protect
    # A 罹災証明書 application and its status: the card's signature over the challenge authenticates.
    ("POST", "/api/v1/bcl/resident/challenge"),
    ("POST", "/api/v1/bcl/resident/applications"),
    ("POST", "/api/v1/bcl/resident/status"),
    # Public verification of a certificate PDF: says valid/invalid/revoked and a hash, no personal data.
    ("GET", "/api/v1/kiosk/verify"),
    ("POST", "/api/v1/kiosk/verify/pdf"),
    ("GET", "/verify"),
    ("POST", "/verify"),
    # The organisation CA's certificates and CRL are published, as the JPKI roots.
    ("GET", "/lgwan/ca/crl"),
    ("GET", "/lgwan/ca/certificates"),
}
# The kiosk screen: anyone standing at the copier may start (and is shown goodbye); every other page
# is a visit's, guarded by kiosk_visit: the visit's own cookie and form token (the card and its PIN
# authenticate, at the center).
KIOSK_START_ROUTES = {
    ("GET", "/kiosk"),
    ("GET", "/kiosk/screen.css"),
    ("POST", "/kiosk/start"),
    ("GET", "/kiosk/bye"),
}


def _kiosk_screen(path: str) -> bool:
    return path == "/kiosk" or path.startswith("/kiosk/")


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        yield w


def test_every_route_declares_who_may_call_it(world: WebWorld) -> None:
    routes = iter_api_routes(world.client.app.router.routes)  # type: ignore[attr-defined]
    assert len(routes) > 40
    for route in routes:
        guards = route_guards(route)
        assert len(guards) == 1, f"{route.path}: exactly one guard, got {guards}"
        for method in route.methods:
            if _kiosk_screen(route.path):
                start = (method, route.path) in KIOSK_START_ROUTES
                assert guards[0] == ((PUBLIC,) if start else (KIOSK_VISIT,)), f"{method} {route.path}"
                continue
            is_public = guards[0] == (PUBLIC,)
            assert is_public == ((method, route.path) in PUBLIC_ROUTES), f"{method} {route.path}"
        if route.path.startswith(("/api/v1/municipalities", "/counter")):
            assert guards[0] == (PrincipalKind.MUNICIPAL_STAFF,), route.path
        if route.path.startswith(("/jlis", "/api/v1/disclosure", "/api/v1/propagation", "/api/v1/audit")):
            assert guards[0] == (PrincipalKind.JLIS_OPERATOR,), route.path
        if route.path.startswith("/api/v1/provision/query"):
            assert guards[0] == (PrincipalKind.AGENCY,), route.path


def test_an_unguarded_route_stops_the_app_from_being_built() -> None:
    router = APIRouter()

    @router.get("/oops")
    def oops() -> None: ...

    with pytest.raises(RuntimeError, match="oops"):
        check_route_guards(router.routes)


def test_the_kiosk_guard_is_accepted_on_the_kiosk_screen_only(world: WebWorld) -> None:
    routes = iter_api_routes(world.client.app.router.routes)  # type: ignore[attr-defined]
    kiosk = [r for r in routes if route_guards(r) == [(KIOSK_VISIT,)]]
    assert kiosk and all(r.path.startswith("/kiosk/") for r in kiosk)
    assert {(m, r.path) for r in routes for m in r.methods} >= KIOSK_START_ROUTES
    assert {("POST", "/kiosk/pay"), ("GET", "/kiosk/document.pdf")} <= {
        (m, r.path) for r in kiosk for m in r.methods
    }
    router = APIRouter()

    @router.get("/api/v1/elsewhere", dependencies=[Depends(kiosk_visit)])
    def elsewhere() -> None: ...

    with pytest.raises(RuntimeError, match="kiosk_visit guard outside the kiosk screen"):
        check_route_guards(router.routes)


def test_sign_in_sends_staff_to_their_counter_and_out_again(world: WebWorld) -> None:
    c = world.client
    r = c.get("/counter/131016", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/counter/131016"
    page = c.get("/login?next=/counter/131016")
    assert "サインイン" in page.text
    r = c.post(
        "/login",
        data={
            "username": STAFF_A,
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "/counter/131016",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/counter/131016"
    cookie = r.headers["set-cookie"]
    assert (
        "jlis_session=" in cookie and "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    )
    home = c.get("/counter/131016")
    assert home.status_code == 200 and "住民検索" in home.text and STAFF_A in home.text
    token = csrf_of(home.text)
    assert c.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False).status_code == 403
    r = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.get("/counter/131016", follow_redirects=False).status_code == 303


def test_wrong_password_re_shows_the_form(world: WebWorld) -> None:
    c = world.client
    page = c.get("/login")
    r = c.post(
        "/login", data={"username": STAFF_A, "password": "nope nope", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 401 and "ユーザー名またはパスワードが違います" in r.text
    assert f'value="{STAFF_A}"' in r.text and "jlis_session" not in r.headers.get("set-cookie", "")


def test_sign_in_needs_the_form_token(world: WebWorld) -> None:
    c = world.client
    c.get("/login")
    r = c.post("/login", data={"username": STAFF_A, "password": PASSWORD, "csrf_token": "guess"})
    assert r.status_code == 403 and "jlis_session" not in r.headers.get("set-cookie", "")


def test_next_is_never_another_site(world: WebWorld) -> None:
    c = world.client
    page = c.get("/login")
    r = c.post(
        "/login",
        data={
            "username": STAFF_A,
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/counter/131016"


def test_operator_lands_on_the_jlis_view_and_may_not_use_a_counter(world: WebWorld) -> None:
    c = world.login(OPERATOR)
    r = c.get("/", follow_redirects=False)
    assert r.headers["location"] == "/jlis"
    assert c.get("/jlis").status_code == 200
    r = c.get(f"/counter/{CHIYODA}")
    assert r.status_code == 403 and "権限がありません" in r.text


def test_staff_may_not_open_the_jlis_view(world: WebWorld) -> None:
    c = world.login(STAFF_A)
    assert c.get("/jlis").status_code == 403
    assert c.get("/jlis/disclosure?resident_code=12345678901").status_code == 403


def test_api_needs_a_bearer_token(world: WebWorld) -> None:
    r = world.client.get(f"/api/v1/municipalities/{CHIYODA}/residents?q=ヤマダ")
    body = assert_error(r, 401, "Authorization")
    assert body["error"] == "unauthenticated" and r.headers["www-authenticate"] == "Bearer"
    r = world.client.get(
        f"/api/v1/municipalities/{CHIYODA}/residents?q=ヤマダ",
        headers={"Authorization": "Bearer jlis_at_forged"},
    )
    assert_error(r, 401, "Authorization", "valid")


def test_token_endpoint(world: WebWorld) -> None:
    r = world.client.post("/api/v1/token", json={"username": STAFF_A, "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["principal"]["lg_code"] == CHIYODA
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert world.client.get("/api/v1/me", headers=headers).json()["username"] == STAFF_A
    assert world.client.delete("/api/v1/token", headers=headers).status_code == 204
    assert world.client.get("/api/v1/me", headers=headers).status_code == 401
    assert_error(
        world.client.post("/api/v1/token", json={"username": STAFF_A, "password": "wrong one"}),
        401,
        "password",
    )
    assert_error(
        world.client.post("/api/v1/token", json={"username": STAFF_A}), 422, "body.password", "required"
    )


def test_token_expires(world: WebWorld) -> None:
    headers = world.headers(STAFF_A)
    world.clock.advance(hours=1, seconds=1)
    assert_error(world.client.get("/api/v1/me", headers=headers), 401, "Authorization")


def test_a_session_cookie_is_not_an_api_credential(world: WebWorld) -> None:
    c = world.login(STAFF_A)
    assert c.get("/api/v1/me").status_code == 401


def test_unknown_api_path_and_method_answer_in_the_house_format(world: WebWorld) -> None:
    assert_error(world.client.get("/api/v1/nothing-here"), 404, "path")
    assert_error(world.client.put("/api/v1/token"), 405, "method")


def test_malformed_json_names_the_body(world: WebWorld) -> None:
    r = world.client.post("/api/v1/token", content=b"{not json", headers={"Content-Type": "application/json"})
    body = assert_error(r, 422, "body", "valid JSON")
    assert body["error"] == "invalid_input"


def test_oversize_body_is_refused_before_it_is_read(world: WebWorld) -> None:
    r = world.client.post(
        "/api/v1/token", content=b"x" * 1_100_000, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 413, "body", "bytes")


def test_security_headers(world: WebWorld) -> None:
    r = world.client.get("/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    css = world.client.get("/static/jlis.css")
    assert css.status_code == 200 and "cache-control" not in css.headers


def test_openapi_describes_the_api_only(world: WebWorld) -> None:
    spec = world.client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/api/v1/municipalities/{lg_code}/residents/{resident_id}/relocation" in paths
    assert "/api/v1/provision/query" in paths and "/api/v1/token" in paths
    assert not any(p.startswith(("/counter", "/jlis", "/login")) for p in paths)
    op = paths["/api/v1/municipalities/{lg_code}/residents/{resident_id}/relocation"]["post"]
    assert op["summary"] == "転居" and op["tags"] == ["既存住基 (市区町村)"]
    assert "RelocationIn" in spec["components"]["schemas"]
    assert world.client.get("/docs").status_code == 200


def test_healthz(world: WebWorld) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
