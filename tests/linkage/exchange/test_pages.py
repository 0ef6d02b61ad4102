"""The member's query terminal (/linkage/query) and the operator's view of the chains
(/jlis/linkage/records), on the app as deployed: a lawful query answered and listed, a refusal
shown with its rule and recorded, the chains verified; other principals kept out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.juki import bulk_load_national
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.models import HUB_KEEPER
from jlis.linkage.hub.codes import acquire_code
from jlis.linkage.hub.members import MemberKind, MemberService
from jlis.linkage.middle.service import MiddleServer

from ...web.support import OPERATOR, PASSWORD, STAFF_A, WebWorld, csrf_of
from .conftest import CHIYODA, TAX, identity

PERSON = "12345678903"  # a valid 住民票コード (check digit)


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as w:
        yield w


def _world(web: WebWorld) -> str:
    """日本年金機構 and 千代田区 as members with accounts; a person with a 地方税 replica at 千代田区.
    Returns 日本年金機構's code for the person."""
    c = web.container
    with transaction(web.factory) as s:
        bulk_load_national(s, [identity(PERSON, web.clock.now())])
        svc = MemberService(s, web.clock, actor="op", key_dir=c.settings.resolved_key_dir)
        nenkin, _ = svc.register(
            "nenkin", "日本年金機構", MemberKind.AGENCY, username="linkage-nenkin", password=PASSWORD
        )
        chiyoda, _ = svc.register(CHIYODA, "千代田区", MemberKind.MUNICIPALITY, lg_code="131016")
    with transaction(web.factory) as s:
        code = acquire_code(s, web.clock, c.secret, nenkin, PERSON)
        own = acquire_code(s, web.clock, c.secret, chiyoda, PERSON)
        middle = MiddleServer(s, web.clock, CHIYODA, actor="business-system")
        local = middle.local_id_for(PERSON)
        middle.store_code(local, own)
        middle.register_replica(local, "local_tax", TAX)
    return code


def _rule_index(page: str, affair_text: str, category: str) -> str:
    for value, label in re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', page):
        if affair_text in label and category in label:
            return value
    raise AssertionError(f"no rule for {affair_text} / {category}")


def test_a_member_queries_from_its_page_and_sees_the_answer_and_its_records(web: WebWorld) -> None:
    code = _world(web)
    client = web.login("linkage-nenkin")
    assert client.get("/", follow_redirects=False).headers["location"] == "/linkage/query"
    page = client.get("/linkage/query")
    assert page.status_code == 200 and "記録はありません" in page.text
    rule = _rule_index(page.text, "国民年金法", "地方税関係情報")
    form = {
        "csrf_token": csrf_of(page.text),
        "rule": rule,
        "code": code,
        "provider": CHIYODA,
        "items": "tax_year",
    }
    answered = client.post("/linkage/query", data=form)
    assert answered.status_code == 200, answered.text
    assert 'id="answer"' in answered.text and "2026" in answered.text and "total_income" not in answered.text
    assert "provided" in answered.text  # the member's own record, listed below

    # A code 日本年金機構 was never given: refused, shown with its rule, recorded, nothing disclosed
    refused = client.post("/linkage/query", data={**form, "code": "0" * 32})
    assert refused.status_code in (403, 404) and 'id="answer"' not in refused.text
    assert '<th class="mono">tax_year</th>' not in refused.text and 'class="alert' in refused.text
    with web.factory() as s:
        outcomes = [r.outcome.value for r in store.records(s, "nenkin")]
    assert outcomes == ["provided", "refused"]


def test_the_operator_verifies_every_chain_and_others_are_kept_out(web: WebWorld) -> None:
    code = _world(web)
    member = web.login("linkage-nenkin")
    page = member.get("/linkage/query")
    rule = _rule_index(page.text, "国民年金法", "地方税関係情報")
    member.post(
        "/linkage/query",
        data={"csrf_token": csrf_of(page.text), "rule": rule, "code": code, "provider": CHIYODA, "items": ""},
    )
    assert member.get("/jlis/linkage/records", follow_redirects=False).status_code in (303, 403)
    operator = web.login(OPERATOR)
    view = operator.get("/jlis/linkage/records")
    assert view.status_code == 200
    for keeper in (HUB_KEEPER, "nenkin", CHIYODA):
        assert f'data-keeper="{keeper}"' in view.text
    verified = operator.post("/jlis/linkage/records/verify", data={"csrf_token": csrf_of(view.text)})
    assert verified.status_code == 200 and verified.text.count("正常 (1 件)") == 3
    assert web.login(STAFF_A).get("/linkage/query", follow_redirects=False).status_code in (303, 403)
