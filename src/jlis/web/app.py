"""The FastAPI application: pages, the JSON API under /api/v1 and its OpenAPI docs at /docs."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jlis.container import Container
from jlis.jpki.fastpath import OcspFastPath
from jlis.web import errors
from jlis.web.deps import check_route_guards, public
from jlis.web.templating import build_environment

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 1_000_000  # the largest legitimate request is a form of a few kilobytes
# Same origin only: no inline script or style in any template, so none is allowed.
CSP = b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"

OPENAPI_TAGS = [
    {"name": "認証", "description": "パスワードとベアラートークン"},
    {"name": "既存住基 (市区町村)", "description": "市区町村職員が自団体の住民票を照会・異動する"},
    {
        "name": "住基ネット (本人確認情報の提供)",
        "description": "別表第一の機関が、認められた事務について照会する",
    },
    {"name": "住基ネット (J-LIS)", "description": "J-LIS 運用者: 伝播状況と提供記録の開示"},
    {
        "name": "マイナンバーカード (市区町村)",
        "description": "交付通知書・交付・一時停止の解除・再交付・返納・継続利用",
    },
    {"name": "マイナンバーカード (24時間コールセンター)", "description": "紛失・盗難時の一時停止"},
    {"name": "マイナンバーカード (J-LIS)", "description": "申請受付・製造・発送・特急発行の管理"},
]

DESCRIPTION = """jlis の HTTP API。すべての呼び出しは `POST /api/v1/token` で得たベアラートークンを使い、\
呼び出せる主体の種類 (市区町村職員・J-LIS 運用者・提供先機関) が経路ごとに決まっています。

誤りはすべて次の形の JSON で返ります。`field` は項目、`rule` は破った規則です。

```json
{"error": "invalid_input", "message": "生年月日: must be a real date (YYYY-MM-DD)",
 "field": "生年月日", "rule": "must be a real date (YYYY-MM-DD)"}
```
"""


class SecurityHeaders:
    """Headers for every answer: no framing, no sniffing, no caching of personal data, and a
    same-origin content policy for the pages (the Swagger UI at /docs loads its own assets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _too_large(send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not path.startswith(("/static/", "/static-docs/")):
                    headers.append((b"cache-control", b"no-store"))
                if not path.startswith(("/docs", "/openapi.json", "/static-docs")):
                    headers.append(
                        (
                            b"content-security-policy",
                            CSP,
                        )
                    )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _too_large(send: Send) -> None:
    body = (
        b'{"error":"invalid_input","message":"request body too large","field":"body",'
        b'"rule":"at most ' + str(MAX_BODY_BYTES).encode() + b' bytes"}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _offline_docs_assets() -> Path | None:
    """Swagger UI's files from the ``fastapi-offline`` package, when it is installed: jlis runs on
    a laptop or a closed network (LGWAN), where the CDN that FastAPI's /docs loads is out of reach."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    static = Path(spec.origin).parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def _serve_docs_offline(app: FastAPI, assets: Path) -> None:
    app.mount("/static-docs", StaticFiles(directory=assets), name="static-docs")

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(public)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="jlis API",
            swagger_js_url="/static-docs/swagger-ui-bundle.js",
            swagger_css_url="/static-docs/swagger-ui.css",
            swagger_favicon_url="/static-docs/favicon.png",
        )


def create_app(container: Container, *, relay_worker: bool = False) -> FastAPI:
    """The web face of one jlis. With ``relay_worker`` a background thread delivers the outbox
    (CS → prefecture → nation) while the app runs; without it, something else must drain it."""
    from jlis.auth import api as auth_api
    from jlis.bcl import api as bcl_api
    from jlis.bcl import pages as bcl_pages
    from jlis.card import api as card_api
    from jlis.card import pages as card_pages
    from jlis.jpki import api as jpki_api
    from jlis.jpki import pages as jpki_pages
    from jlis.jpki.rp import server as jpki_login
    from jlis.juki import api as juki_api
    from jlis.juki import pages as juki_pages
    from jlis.kiosk.center import api as center_api
    from jlis.kiosk.issuer import api as issuer_api
    from jlis.kiosk.pdf import api as kiosk_pdf_api
    from jlis.kiosk.pdf import pages as kiosk_pdf_pages
    from jlis.kiosk.screen import pages as kiosk_screen_pages
    from jlis.lgwan import api as lgwan_api
    from jlis.lgwan import pages as lgwan_pages
    from jlis.linkage.exchange import api as exchange_api
    from jlis.linkage.exchange import pages as exchange_pages
    from jlis.linkage.hub import api as hub_api
    from jlis.linkage.hub import pages as hub_pages
    from jlis.linkage.middle import api as middle_api
    from jlis.linkage.middle import pages as middle_pages
    from jlis.linkage.portal import api as portal_api
    from jlis.linkage.portal import disaster as portal_disaster
    from jlis.linkage.portal import pages as portal_pages
    from jlis.registry import api as registry_api
    from jlis.registry import pages as registry_pages
    from jlis.web import pages as web_pages

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker: Any = None
        if relay_worker:
            from jlis.juki.network import RelayWorker
            from jlis.stack import build_stack_relay

            worker = RelayWorker(build_stack_relay(container))
            worker.start()
        app.state.relay_worker = worker
        registry_api.start_services(app)
        jpki_api.start_services(app)
        exchange_api.start_services(app)
        try:
            yield
        finally:
            registry_api.stop_services(app)  # the queued counter actions are committed first
            if worker is not None:
                worker.stop()
            # Commits the grouped linkage queries and writes the queued OCSP status-query records
            # before the process ends.
            exchange_api.stop_services(app)
            jpki_api.stop_services(app)

    offline_docs = _offline_docs_assets()
    app = FastAPI(
        title="jlis",
        summary="地方公共団体情報システム機構 (J-LIS) のシステムのオープンソース実装",
        description=DESCRIPTION,
        version="0.1.0",
        openapi_tags=OPENAPI_TAGS
        + jpki_api.OPENAPI_TAGS
        + portal_api.OPENAPI_TAGS
        + bcl_api.OPENAPI_TAGS
        + issuer_api.OPENAPI_TAGS
        + kiosk_pdf_api.OPENAPI_TAGS,
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None if offline_docs else "/docs",
    )
    app.state.container = container
    app.state.templates = build_environment()
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if offline_docs:
        _serve_docs_offline(app, offline_docs)
    # FastAPI matches routes in order, and each miss costs: the OCSP and CRL routes, which relying
    # parties call most by far, come first (bench/ocsp_bench.py measured 952 → 1,597 answers/s).
    for router in (
        jpki_api.router,
        web_pages.router,
        auth_api.router,
        registry_api.router,
        registry_pages.router,
        juki_api.router,
        juki_pages.router,
        card_api.router,
        card_api.hotline_router,
        card_api.jlis_router,
        card_pages.router,
        jpki_api.api_router,
        jpki_pages.router,
        jpki_login.router,
        *portal_api.ROUTERS,
        portal_pages.router,
        portal_pages.staff_router,
        portal_disaster.router,
        portal_disaster.api_router,
        *bcl_api.ROUTERS,
        bcl_pages.router,
        issuer_api.router,
        center_api.router,
        hub_api.jlis_router,
        hub_api.router,
        hub_pages.router,
        exchange_api.router,
        exchange_pages.router,
        middle_api.router,
        middle_api.member_router,
        middle_pages.router,
        kiosk_pdf_api.router,
        kiosk_pdf_api.staff_router,
        kiosk_pdf_pages.router,
        kiosk_screen_pages.router,
        lgwan_api.router,
        lgwan_pages.router,
    ):
        app.include_router(router)
    check_route_guards(app.routes)
    # Inside SecurityHeaders (added last, so outermost): its answers get the same headers.
    app.add_middleware(OcspFastPath, services=jpki_api.services_of)
    app.add_middleware(SecurityHeaders)
    return app
