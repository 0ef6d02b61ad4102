"""The OCSP hot path as plain ASGI, in front of FastAPI's router.

Relying parties call ``POST /jpki/ocsp/{sign,auth}`` far more than anything else, and nearly every
call is the RFC 5019 shape: one certificate, no nonce, from a verifier whose token was checked a
moment ago. For that call FastAPI's routing and dependency solving cost about three times the work
of the answer itself (bench/RESULTS.md). This middleware answers it directly: the verifier from the
token cache, the pre-signed answer from the responder's memory, the status-query record queued (or
awaited, with ``durable_log``) exactly as the route does. Anything else — no cached token, a
refusal, a nonce, several certificates, a miss, a body too large — is handed to the app unchanged,
with the body it has read replayed, so the route stays the one definition of the behaviour and this
is only a shortcut to the same answers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jlis.errors import InvalidInput
from jlis.jpki.ocsp import MAX_REQUEST_BYTES
from jlis.jpki.verifiers import PURPOSE_HEADER, QueryRecord, check_purpose

PATHS = {"/jpki/ocsp/sign": "sign", "/jpki/ocsp/auth": "auth"}
OCSP_RESPONSE = b"application/ocsp-response"
_PURPOSE = PURPOSE_HEADER.lower().encode("latin-1")


def _purpose(raw: bytes | None) -> str | None:
    """The declared purpose as the route reads it; None when it would need the route's fallback."""
    try:
        return check_purpose(unquote(raw.decode("latin-1")) if raw else None)
    except (InvalidInput, UnicodeDecodeError):
        return None


class OcspFastPath:
    def __init__(self, app: ASGIApp, services: Any) -> None:
        """``services(app)`` gives the running :class:`jlis.jpki.api.RevocationServices`."""
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ca_kind = PATHS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if ca_kind is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        svc = self.services(scope["app"])
        auth = headers.get(b"authorization")
        caller = svc.auth.cached(auth.decode("latin-1") if auth is not None else None)
        purpose = _purpose(headers.get(_PURPOSE))
        if (
            caller is None
            or caller.refusal is not None
            or purpose is None
            or length is None
            or not length.isdigit()
            or int(length) > MAX_REQUEST_BYTES
            or not caller.verifier.may_query(ca_kind)
        ):
            await self.app(scope, receive, send)
            return
        body, more, tail = await _read(receive, int(length))
        complete = not more and tail is None and len(body) == int(length)
        hit = svc.responder.cached(ca_kind, body) if complete else None
        if hit is None:
            await self.app(scope, _replay(body, more, tail, receive), send)
            return
        record = QueryRecord(
            svc.container.clock.now(),
            caller.verifier.id,
            purpose,
            "ocsp",
            ca_kind,
            hit.serials[0],
            hit.results[0],
        )
        try:
            if svc.durable_log:
                await svc.log.record_async(record)
            else:
                svc.log.enqueue(record)
        except Exception:  # fails closed, as the route: no answer without its record
            await self.app(scope, _replay(body, more, tail, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", OCSP_RESPONSE),
                    (b"content-length", str(len(hit.der)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": hit.der})


async def _read(receive: Receive, declared: int) -> tuple[bytes, bool, Message | None]:
    """(the body read, whether more of it is still to come, a non-body message that came instead).
    Stops once past the declared length: a client sending more is left to the app."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, message
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if not more or size > declared:
            return b"".join(chunks), more, None


def _replay(body: bytes, more: bool, tail: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then carries on with the real one."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]
    if tail is not None:
        pending.append(tail)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
