"""Fixtures of the certificate-PDF tests: the organisation CA from tests/lgwan (pooled keys), a
content factory and the register over a test session."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.container import Container
from jlis.kiosk.content import CertificateContent, CertificateKind, Row, Section
from jlis.kiosk.pdf.service import CertificateDocuments
from jlis.lgwan.ca import OrganisationCA
from jlis.web import create_app
from jlis.web.deps import check_route_guards

from ...lgwan import conftest as lgwan
from ...lgwan.conftest import BASE_URL, CHIYODA, CHIYODA_TITLE, SHINJUKU, PooledKeyStore
from ...web.support import FAST_HASHER, make_container, world_users

__all__ = ["BASE_URL", "CHIYODA", "CHIYODA_TITLE", "SHINJUKU", "PooledKeyStore"]

# The LGPKI fixtures, shared with tests/lgwan.
pooled_keystore = lgwan.pooled_keystore
org_ca = lgwan.org_ca
chiyoda_role = lgwan.chiyoda_role

SUBJECT = "髙橋 𠮷郎"


def make_content(
    number: str = "131016-2026-000001",
    request_id: str = "REQ-0001",
    *,
    subject: str = SUBJECT,
    lg_code: str = CHIYODA,
    rows: int = 0,
    **overrides: object,
) -> CertificateContent:
    people = [
        Section(
            "世帯主",
            (
                Row("氏名", subject),
                Row("生年月日", "平成2年2月17日"),
                Row("性別", "男"),
                Row("続柄", "世帯主"),
                Row("住所", "東京都千代田区千代田1丁目1番1号"),
            ),
        )
    ]
    people += [
        Section(f"世帯員 {i + 1}", (Row("氏名", f"髙橋 子{i + 1}"), Row("続柄", "子"))) for i in range(rows)
    ]
    values: dict[str, object] = {
        "kind": CertificateKind.RESIDENT,
        "title": "住民票の写し",
        "lg_code": lg_code,
        "issuer_title": CHIYODA_TITLE,
        "subject_name": subject,
        "request_id": request_id,
        "certificate_number": number,
        "issued_on": dt.date(2026, 11, 26),
        "sections": tuple(people),
        "attestation": "この写しは、住民票の原本と相違ないことを証明する。",
        "notes": ("個人番号の記載を省略しています。",),
    }
    values.update(overrides)
    return CertificateContent(**values)  # type: ignore[arg-type]


@pytest.fixture
def documents(
    clock: FixedClock, org_ca: Callable[[Session], OrganisationCA]
) -> Callable[[Session], CertificateDocuments]:
    def make(session: Session) -> CertificateDocuments:
        return CertificateDocuments(session, clock, org_ca(session), base_url=BASE_URL, rng=random.Random(3))

    return make


@contextmanager
def web_app(
    factory: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    keystore: PooledKeyStore,
    extra: tuple[APIRouter, ...] = (),
) -> Iterator[tuple[TestClient, Container]]:
    """The app with this package's routers mounted as the lead will mount them (until they are in
    ``create_app``), the test's database and the pooled key store; the users of tests/web."""
    from jlis.kiosk.pdf import api as pdf_api
    from jlis.kiosk.pdf import pages as pdf_pages
    from jlis.lgwan import api as lgwan_api

    previous = passwords.use_hasher(FAST_HASHER)
    try:
        container = make_container(factory, clock, tmp_path)
        container.__dict__["keystore"] = keystore
        world_users(container)
        app = create_app(container)
        paths = {getattr(r, "path", "") for r in app.routes}
        for router in (pdf_api.router, pdf_api.staff_router, pdf_pages.router, lgwan_api.router, *extra):
            if not any(getattr(r, "path", None) in paths for r in router.routes):
                app.include_router(router)
        check_route_guards(app.routes)
        with TestClient(app, base_url="https://testserver") as client:
            yield client, container
    finally:
        passwords.use_hasher(previous)
