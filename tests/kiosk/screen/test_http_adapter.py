"""The screen over the center's HTTP API (a kiosk apart from the center): the same pages, the same
refusals, through ``/api/v1/kiosk/center`` with the kiosk's bearer token."""

from __future__ import annotations

import pytest

from jlis.db import transaction
from jlis.kiosk.center import api as center_api
from jlis.kiosk.center.service import register_kiosk
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.screen.http_adapter import HttpCenter
from jlis.web.deps import check_route_guards

from .conftest import KioskScreenWeb, pdf_text

TOKEN = "kiosk-http-token-" + "x" * 40


@pytest.fixture
def http_kiosk(kiosk_web: KioskScreenWeb) -> KioskScreenWeb:
    k = kiosk_web
    app = k.client.app
    paths = {getattr(r, "path", "") for r in app.routes}  # type: ignore[attr-defined]
    if f"{center_api.PATH}/sessions" not in paths:  # until the lead mounts the center's API
        app.include_router(center_api.router)  # type: ignore[attr-defined]
        check_route_guards(app.routes)  # type: ignore[attr-defined]
    with transaction(k.world.factory) as s:
        register_kiosk(s, k.world.clock, "K-HTTP", "HTTP 端末", actor="test", token_source=lambda: TOKEN)
    app.state.kiosk_screen_center = HttpCenter(k.client, TOKEN, k.world.clock)  # type: ignore[attr-defined]
    app.state.kiosk_screen = None  # type: ignore[attr-defined]
    return k


def test_the_whole_flow_over_http(http_kiosk: KioskScreenWeb) -> None:
    k = http_kiosk
    holder = k.holder(family="小林", given="直人")
    k.start()
    k.set_card(holder)
    r = k.enter_pin("9999")
    assert r.status_code == 409 and "暗証番号が違います" in r.text and "残り2回" in r.text
    assert k.enter_pin().headers["location"] == "/kiosk/menu"
    assert "東京都千代田区" in k.client.get("/kiosk/menu").text
    k.choose("resident", {"scope": "household", "copies": "2"})
    assert "400円" in k.client.get("/kiosk/fee").text
    assert k.pay().headers["location"] == "/kiosk/printed"
    text = pdf_text(k.client.get("/kiosk/document.pdf").content)
    assert "小林" in text and "直人" in text
    rows = k.world.rows(CenterLogRow)
    assert [(r.kiosk_id, r.outcome, r.code) for r in rows] == [
        ("K-HTTP", "refused", "wrong_pin"),
        ("K-HTTP", "issued", None),
    ]
    k.post("/kiosk/finish", page="/kiosk/printed")


def test_refusals_over_http_keep_their_code_and_message(http_kiosk: KioskScreenWeb) -> None:
    k = http_kiosk
    k.sign_in(k.holder())
    k.choose("seal")  # no 印鑑登録
    r = k.pay()
    assert r.status_code == 409 and "印鑑登録がないため" in r.text
    r = k.choose("koseki", {"honseki_lg_code": "999999"})  # not on the master's list: the screen refuses
    assert r.status_code == 422 and "本籍地の市区町村を一覧から選んでください" in r.text


def test_an_unknown_kiosk_token(http_kiosk: KioskScreenWeb) -> None:
    k = http_kiosk
    k.client.app.state.kiosk_screen_center = HttpCenter(k.client, "not-a-token" * 4, k.world.clock)  # type: ignore[attr-defined]
    k.client.app.state.kiosk_screen = None  # type: ignore[attr-defined]
    holder = k.holder()
    k.start()
    r = k.set_card(holder)
    assert r.status_code == 409 and 'data-code="unknown_kiosk"' in r.text


def test_honseki_use_application_over_http(http_kiosk: KioskScreenWeb) -> None:
    from jlis.kiosk.issuer.tables import HonsekiApplicationRow
    from jlis.kiosk.screen.pages import APPLIED

    from .test_honseki_use import APPLICATION, _apply, _honseki_elsewhere

    k = http_kiosk
    k.sign_in(_honseki_elsewhere(k))
    assert 'id="honseki-use"' in k.client.get("/kiosk/menu").text  # the menu's flag over HTTP
    r = _apply(k, APPLICATION)
    assert r.status_code == 200 and APPLIED in r.text and "東京都千代田区" in r.text
    r = _apply(k, APPLICATION)
    assert r.status_code == 409 and "本籍地利用登録の申請はすでに受け付けています" in r.text
    (row,) = k.world.rows(HonsekiApplicationRow)
    assert (row.state, row.kiosk_id) == ("pending", "K-HTTP")
