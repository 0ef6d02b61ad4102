"""The middle server at the counter: a resident's replicas, the refresh, the 符号, a registration
form, refusals shown on the form, and scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from jinja2 import FileSystemLoader
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.auth import passwords
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import InvalidInput
from jlis.juki.network import build_relay
from jlis.linkage.hub.members import MemberKind, MemberService
from jlis.linkage.middle import pages as middle_pages
from jlis.linkage.middle.pages import form_data
from jlis.linkage.middle.schemas import replica_schema
from jlis.linkage.middle.tables import ReplicaRow
from jlis.web import create_app
from jlis.web.deps import check_route_guards

from ...web.support import CHIYODA, FAST_HASHER, STAFF_A, STAFF_B, WebWorld, make_container, world_users

TEMPLATES = Path(middle_pages.__file__).parent / "templates"


@pytest.fixture
def world(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    previous = passwords.use_hasher(FAST_HASHER)
    try:
        container = make_container(factory, clock, tmp_path)
        world_users(container)
        app = create_app(container)
        app.include_router(middle_pages.router)
        check_route_guards(app.routes)
        # what jlis.web.templating.TEMPLATE_DIRS will list once the pages are mounted
        app.state.templates.loader.mapping["middle"] = FileSystemLoader(str(TEMPLATES))
        with TestClient(app, base_url="https://testserver") as client:
            yield WebWorld(container, client)
    finally:
        passwords.use_hasher(previous)


def replicas(world: WebWorld) -> int:
    with world.factory() as s:
        return int(s.execute(select(func.count()).select_from(ReplicaRow)).scalar_one())


def test_replicas_at_the_counter(world: WebWorld) -> None:
    person = world.resident()
    base = f"/counter/{CHIYODA}/middle/residents/{person.id}"
    client = world.login(STAFF_A)
    page = client.get(base)
    assert page.status_code == 200, page.text
    assert "未付番" in page.text and "副本はまだありません" in page.text and "地方税関係情報" in page.text
    token = world.page_csrf(base)
    r = client.post(base + "/sync", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == base + "?done=sync"
    page = client.get(base + "?done=sync")
    assert "住民票関係情報の副本を更新しました" in page.text and "第1版" in page.text
    assert person.name.full in page.text and "131016000000001" in page.text

    form_url = base + "/replicas/local_tax"
    form = client.get(form_url)
    assert form.status_code == 200 and "合計所得金額（必須）" in form.text
    good = {"csrf_token": token, "tax_year": "2026", "total_income": "3,200,000", "tax_exempt": "false"}
    bad = client.post(form_url, data=good | {"total_income": "三百万"})
    assert bad.status_code == 422 and "items.total_income" in bad.text and "三百万" in bad.text
    assert replicas(world) == 1
    r = client.post(form_url, data=good, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == base + "?done=registered"
    page = client.get(base)
    assert "3,200,000" in page.text and "地方税関係情報" in page.text
    assert "2026" in client.get(form_url).text  # the form shows the current version

    # 符号: the municipality must be a registered member first; the refusal is shown on the page
    r = client.post(base + "/link", data={"csrf_token": token})
    assert r.status_code == 404 and "member" in r.text
    build_relay(world.factory, world.clock, world.container.geography).drain()
    with transaction(world.factory) as s:
        MemberService(s, world.clock, actor="op", key_dir=world.container.settings.resolved_key_dir).register(
            f"lg-{CHIYODA}", "千代田区", MemberKind.MUNICIPALITY
        )
    r = client.post(base + "/link", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert 'id="link-status">取得済' in client.get(base).text


def test_scope_and_csrf(world: WebWorld) -> None:
    person = world.resident()
    base = f"/counter/{CHIYODA}/middle/residents/{person.id}"
    client = world.login(STAFF_B)
    assert client.get(base).status_code == 403
    client = world.login(STAFF_A)
    assert client.post(base + "/sync", data={"csrf_token": "forged"}).status_code == 403
    assert replicas(world) == 0
    assert client.get(base + "/replicas/pension").status_code == 409  # not kept by a municipality


def test_form_data() -> None:
    schema = replica_schema("nhi")
    assert form_data(
        schema, {"insured": "true", "annual_premium": "１２,０００", "copayment": "30", "lost_on": ""}
    ) == {
        "insured": True,
        "annual_premium": 12000,
        "copayment": "30",
    }
    with pytest.raises(InvalidInput, match="must be true or false"):
        form_data(schema, {"insured": "yes"})
