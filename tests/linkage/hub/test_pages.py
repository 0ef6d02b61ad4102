"""The operator's page of linkage members: list, registration with the key shown once, refusals
re-shown with what was typed, (de)activation; other principals are kept out."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jinja2 import FileSystemLoader
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.linkage.hub import pages
from jlis.linkage.hub.members import MemberService

from ...web.support import OPERATOR, STAFF_A, WebWorld, csrf_of


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        app: Any = w.client.app
        app.include_router(pages.router)
        # What jlis.web.templating.TEMPLATE_DIRS["linkage_hub"] gives the app once it is mounted.
        app.state.templates.loader.mapping[pages.TEMPLATE_PREFIX] = FileSystemLoader(str(pages.TEMPLATE_DIR))
        yield w


PAGE = "/jlis/linkage/members"


def test_register_show_the_key_once_and_deactivate(web: WebWorld) -> None:
    client = web.login(OPERATOR)
    page = client.get(PAGE)
    assert page.status_code == 200 and "登録された機関はありません" in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "member_id": "lg-131016",
        "name": "千代田区",
        "kind": "municipality",
        "lg_code": "",
        "username": "",
        "password": "",
    }
    done = client.post(PAGE, data=form)
    assert done.status_code == 201, done.text
    key = re.search(r'<code class="mono">([A-Za-z0-9+/=]{44})</code>', done.text)
    assert key is not None
    with web.factory() as s:
        svc = MemberService(s, web.clock, actor="t", key_dir=web.container.settings.resolved_key_dir)
        assert svc.request_key("lg-131016") == base64.b64decode(key.group(1))
    again = client.get(PAGE)
    assert 'data-member="lg-131016"' in again.text and key.group(1) not in again.text  # shown once

    off = client.post(
        f"{PAGE}/lg-131016/deactivate", data={"csrf_token": csrf_of(again.text)}, follow_redirects=False
    )
    assert off.status_code == 303 and "deactivated" in off.headers["location"]
    with web.factory() as s:
        assert not MemberService(s, web.clock, actor="t", key_dir=Path(".")).get("lg-131016").active


def test_a_refusal_is_shown_with_what_was_typed(web: WebWorld) -> None:
    client = web.login(OPERATOR)
    token = csrf_of(client.get(PAGE).text)
    bad = client.post(
        PAGE,
        data={
            "csrf_token": token,
            "member_id": "lg-131017",
            "name": "どこか",
            "kind": "municipality",
            "password": "secret-pw",
        },
    )
    assert bad.status_code == 422 and 'value="どこか"' in bad.text and "secret-pw" not in bad.text
    wrong = client.post(f"{PAGE}/nenkin/explode", data={"csrf_token": token})
    assert wrong.status_code == 422
    no_csrf = client.post(PAGE, data={"member_id": "nenkin", "name": "x", "kind": "agency"})
    assert no_csrf.status_code == 403


def test_only_operators(web: WebWorld) -> None:
    client = web.login(STAFF_A)
    assert client.get(PAGE).status_code == 403
    client.cookies.clear()
    anonymous = client.get(PAGE, follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
