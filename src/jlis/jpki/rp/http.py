"""The network, behind a two-method interface: the SDK fetches CRLs and OCSP answers through a
:class:`Fetcher`, so tests and in-process users hand it any ``httpx.Client`` (Starlette's TestClient
is one) and nothing else in the SDK touches sockets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx

MAX_REPLY_BYTES = 256 * 1024 * 1024  # a national full CRL of a few million entries still fits


@dataclass(frozen=True)
class HttpReply:
    status: int
    content_type: str
    body: bytes


class Fetcher(Protocol):
    def get(self, url: str, headers: Mapping[str, str]) -> HttpReply: ...

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpReply: ...


class FetchFailed(OSError):
    """The server could not be reached (the caller turns it into a named, fail-closed error)."""


class HttpxFetcher:
    """A :class:`Fetcher` over an ``httpx.Client`` (a new one with ``timeout`` when none is given)."""

    def __init__(self, client: httpx.Client | None = None, *, timeout: float = 10.0) -> None:
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def _send(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> HttpReply:
        try:
            reply = self._client.request(method, url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{method} {url}: {exc}") from None
        if len(reply.content) > MAX_REPLY_BYTES:
            raise FetchFailed(f"{method} {url}: reply larger than {MAX_REPLY_BYTES} bytes")
        return HttpReply(reply.status_code, reply.headers.get("content-type", ""), reply.content)

    def get(self, url: str, headers: Mapping[str, str]) -> HttpReply:
        return self._send("GET", url, None, headers)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        return self._send("POST", url, body, headers)

    def close(self) -> None:
        self._client.close()
