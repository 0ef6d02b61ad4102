"""The counter's disaster pages: a disaster from declaration to a decision, shelter reception with
the card, refused forms shown again with the item and the rule, staff confined to their own
municipality, CSRF on every form."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from jlis.bcl import pages as bcl_pages
from jlis.clock import FixedClock
from jlis.web import templating
from jlis.web.deps import check_route_guards

from ..web.support import STAFF_A, STAFF_B, WebWorld
from .conftest import CHIYODA, BclPki

PAGES = f"/counter/{CHIYODA}/bcl"


@pytest.fixture
def web(
    factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebWorld]:
    monkeypatch.setitem(templating.TEMPLATE_DIRS, "bcl", bcl_pages.TEMPLATE_DIR)
    with WebWorld.start(factory, clock, tmp_path) as world:
        app = world.client.app
        app.include_router(bcl_pages.router)  # type: ignore[attr-defined]
        check_route_guards(app.routes)  # type: ignore[attr-defined]
        app.state.templates = templating.build_environment()  # type: ignore[attr-defined]
        yield world


def submit(w: WebWorld, path: str, data: dict[str, str], *, csrf_from: str) -> httpx.Response:
    form = {**data, "csrf_token": w.page_csrf(csrf_from)}
    return w.client.post(path, data=form, follow_redirects=False)


def text(r: httpx.Response) -> str:
    return html.unescape(r.text)


def test_a_disaster_on_the_counter_pages(web: WebWorld) -> None:
    person = web.resident(CHIYODA)
    web.login(STAFF_A)
    assert "登録された災害はありません" in text(web.client.get(PAGES))
    day = (web.clock.today() - dt.timedelta(days=1)).isoformat()
    r = submit(web, f"{PAGES}/disasters", {"name": "令和8年豪雨", "cause": "heavy_rain", "occurred_on": day},
               csrf_from=PAGES)  # fmt: skip
    assert r.status_code == 303, r.text
    page_path = r.headers["location"].split("?")[0]
    did = page_path.rsplit("/", 1)[1]
    assert "災害を登録しました" in text(web.client.get(r.headers["location"]))
    r = submit(web, f"{page_path}/build", {}, csrf_from=page_path)
    assert r.status_code == 303
    page = text(web.client.get(page_path))
    assert person.name.full in page and person.resident_code in page and "未調査" in page
    dwelling = re.search(r'<option value="(\d+)"', page)
    assert dwelling
    # a refused survey comes back with the rule and what was typed
    bad = {
        "dwelling_id": dwelling.group(1),
        "damage_ratio": "150",
        "surveyed_on": web.clock.today().isoformat(),
    }
    r = submit(web, f"{page_path}/survey", bad, csrf_from=page_path)
    assert r.status_code == 422 and "損害割合" in text(r) and 'value="150"' in r.text
    r = submit(web, f"{page_path}/survey", {**bad, "damage_ratio": "12.5"}, csrf_from=page_path)
    assert r.status_code == 303
    assert "準半壊" in text(web.client.get(page_path))
    r = submit(web, f"{page_path}/apply", {"resident_code": person.resident_code}, csrf_from=page_path)
    assert r.status_code == 303
    app_id = f"{did}-000001"
    assert app_id in text(web.client.get(page_path))
    r = submit(
        web, f"{page_path}/decide", {"application_id": app_id, "decision": "approve"}, csrf_from=page_path
    )
    assert r.status_code == 303
    page = text(web.client.get(r.headers["location"]))
    assert "申請を決定しました" in page and "交付決定" in page
    # another municipality's staff, and a form without its CSRF token
    web.login(STAFF_B)
    assert web.client.get(page_path).status_code == 403
    web.login(STAFF_A)
    r = web.client.post(f"{page_path}/build", data={}, follow_redirects=False)
    assert r.status_code == 403


def test_shelter_reception_with_the_card(web: WebWorld, bcl_pki: BclPki) -> None:
    person = web.resident(CHIYODA)
    cert = bcl_pki.auth_certificate(person)
    web.login(STAFF_A)
    r = submit(web, f"{PAGES}/shelters", {"name": "体育館", "address": "千代田区一番町1番", "capacity": "30"},
               csrf_from=PAGES)  # fmt: skip
    assert r.status_code == 303, r.text
    shelter = r.headers["location"].split("?")[0]
    assert "避難所を開設しました" in text(web.client.get(r.headers["location"]))
    reception = f"{shelter}/reception"
    r = submit(web, reception, {"action": "check_in", "certificate_serial": cert.serial}, csrf_from=shelter)
    assert r.status_code == 303
    page = text(web.client.get(shelter))
    assert person.name.full in page and "入所者 1" in page
    r = submit(web, reception, {"action": "check_in", "certificate_serial": cert.serial}, csrf_from=shelter)
    assert r.status_code == 409 and "既にこの避難所に入所中です" in text(r)
    r = submit(web, reception, {"action": "check_in", "certificate_serial": "zz"}, csrf_from=shelter)
    assert r.status_code == 422 and "証明書シリアル番号" in text(r)
    r = submit(web, reception, {"action": "check_out", "certificate_serial": cert.serial}, csrf_from=shelter)
    assert r.status_code == 303
    r = submit(web, reception, {"action": "close"}, csrf_from=shelter)
    assert r.status_code == 303 and "避難所を閉鎖しました" in text(web.client.get(r.headers["location"]))
    assert "閉鎖" in text(web.client.get(PAGES))
