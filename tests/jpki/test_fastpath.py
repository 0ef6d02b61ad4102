"""The OCSP hot path in front of FastAPI answers the common request exactly as the route would, with
its status-query record, and hands everything else to the app with the body intact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509 import ocsp
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.jpki.fastpath import OcspFastPath
from jlis.jpki.tables import AUTH, SIGN

from .revocation_fixtures import JpkiWeb
from .test_api import OCSP_REQ, ocsp_request, queries


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[JpkiWeb]:
    with JpkiWeb.start(factory, clock, tmp_path) as w:
        yield w


class Inner:
    """Stands for the FastAPI app behind the middleware: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


def call(
    web: JpkiWeb,
    inner: Inner,
    path: str,
    chunks: list[bytes],
    headers: dict[str, str],
    declared: int | None = None,
) -> tuple[int, bytes]:
    middleware = OcspFastPath(inner, services=lambda _app: web.services())
    length = sum(map(len, chunks)) if declared is None else declared
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()] + [
        (b"content-length", str(length).encode())
    ]
    scope = {"type": "http", "method": "POST", "path": path, "headers": raw, "app": web.app}
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_the_common_request_is_answered_in_front_of_the_app_with_its_record(web: JpkiWeb) -> None:
    sign, _ = web.pki.card()
    req = ocsp_request(sign, web.pki.ca_cert(SIGN))
    headers = web.headers("bank-a-api", **OCSP_REQ)
    first = web.client.post("/jpki/ocsp/sign", content=req, headers=headers)  # the route; caches the token
    inner = Inner()
    status, body = call(web, inner, "/jpki/ocsp/sign", [req[:10], req[10:]], headers)
    assert inner.bodies == [] and status == 200
    assert body == first.content
    assert ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.GOOD
    web.services().log.flush()
    records = queries(web, channel="ocsp")
    assert len(records) == 2 and {r["serial"] for r in records} == {sign.serial}


def test_everything_else_reaches_the_app_with_its_body(web: JpkiWeb) -> None:
    sign, auth = web.pki.card()
    req = ocsp_request(sign, web.pki.ca_cert(SIGN))
    bank = web.headers("bank-a-api", **OCSP_REQ)
    web.client.post("/jpki/ocsp/sign", content=req, headers=bank)
    with_nonce = ocsp_request(sign, web.pki.ca_cert(SIGN), nonce=b"n" * 16)
    auth_req = ocsp_request(auth, web.pki.ca_cert(AUTH))
    cases = [
        ("/jpki/ocsp/sign", [with_nonce], bank, None),  # a nonce: signed on the spot by the route
        ("/jpki/ocsp/sign", [req], OCSP_REQ, None),  # no token
        ("/jpki/ocsp/sign", [req], {"Authorization": "Bearer jlis_at_unknown", **OCSP_REQ}, None),
        ("/jpki/ocsp/auth", [auth_req], bank, None),  # a 署名検証者 asking the authentication CA
        ("/jpki/ocsp/sign", [req, b"extra"], bank, len(req)),  # more than declared
        ("/jpki/ocsp/sign", [b"garbage"], bank, None),
    ]
    for path, chunks, headers, declared in cases:
        inner = Inner()
        status, body = call(web, inner, path, chunks, headers, declared)
        assert (status, body) == (299, b"app"), (path, headers)
        assert inner.bodies == [b"".join(chunks)]
