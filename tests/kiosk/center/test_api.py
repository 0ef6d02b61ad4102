"""The center's HTTP API for kiosks: a whole flow with a real card, and the refusals as 409s."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from jlis.jpki.rp.login import Challenge, respond
from jlis.kiosk.center import api as center_api
from jlis.kiosk.center.card import card_answer
from jlis.kiosk.center.errors import CenterRefused
from jlis.kiosk.center.tables import CenterLogRow
from jlis.web import create_app
from jlis.web.deps import check_route_guards

from .conftest import AUTH_PIN, KIOSK, CenterWorld, pdf_text


@pytest.fixture
def client(center_world: CenterWorld) -> Iterator[TestClient]:
    app = create_app(center_world.container)
    if not any(getattr(r, "path", "").startswith(center_api.PATH) for r in app.routes):
        app.include_router(center_api.router)  # as the lead mounts it
    check_route_guards(app.routes)
    app.state.jpki_revocation = center_world.revocation
    app.state.kiosk_center = center_world.center
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _headers(w: CenterWorld, session: str | None = None, kiosk: str = KIOSK) -> dict[str, str]:
    h = {"Authorization": f"Bearer {w.setup.kiosk_tokens[kiosk]}"}
    if session:
        h["X-Kiosk-Session"] = session
    return h


def test_whole_flow_over_http(center_world: CenterWorld, client: TestClient) -> None:
    w = center_world
    holder = w.holder(family="田中", given="一郎")
    base = center_api.PATH
    r = client.post(f"{base}/sessions", headers=_headers(w))
    assert r.status_code == 200, r.text
    answer = respond(holder.reader, Challenge.from_text(r.json()["challenge"]), AUTH_PIN).to_dict()
    r = client.post(
        f"{base}/sessions/login", headers=_headers(w), json={"challenge": r.json()["challenge"], **answer}
    )
    assert r.status_code == 200, r.text
    session = r.json()["session"]
    assert r.json()["municipality"] == "東京都千代田区"
    menu = client.get(f"{base}/menu", headers=_headers(w, session)).json()
    assert {k: v for k, v in menu["items"][0].items() if k in ("kind", "label", "fee")} == {
        "kind": "resident",
        "label": "住民票の写し",
        "fee": 200,
    }
    r = client.post(
        f"{base}/requests", headers=_headers(w, session), json={"kind": "resident", "household": True}
    )
    assert r.status_code == 200, r.text
    rid, fee = r.json()["request_id"], r.json()["fee"]
    r = client.post(f"{base}/requests/{rid}/payment", headers=_headers(w, session), json={"amount": fee - 10})
    assert r.status_code == 409 and r.json()["code"] == "payment_mismatch"
    r = client.post(f"{base}/requests/{rid}/payment", headers=_headers(w, session), json={"amount": fee})
    assert r.status_code == 200, r.text
    # another kiosk cannot use this session
    r = client.post(f"{base}/requests/{rid}/issue", headers=_headers(w, session, "K-0002"))
    assert r.status_code == 409 and r.json()["code"] == "session_unknown"
    r = client.post(f"{base}/requests/{rid}/issue", headers=_headers(w, session))
    assert r.status_code == 200, r.text
    body = r.json()
    pdf = base64.b64decode(body["pdf_base64"])
    assert "田中" in pdf_text(pdf) and rid in pdf_text(pdf)
    v = client.get(
        "/api/v1/kiosk/verify", params={"n": body["certificate_number"], "c": body["verification_code"]}
    )
    assert v.status_code == 200 and v.json()["verdict"] == "valid"
    assert client.delete(f"{base}/sessions/current", headers=_headers(w, session)).status_code == 204
    assert client.get(f"{base}/menu", headers=_headers(w, session)).json()["code"] == "session_unknown"
    outcomes = [(r.outcome, r.code) for r in w.rows(CenterLogRow)]
    assert outcomes == [
        ("refused", "payment_mismatch"),
        ("refused", "session_unknown"),
        ("issued", None),
        ("refused", "session_unknown"),
    ]


def test_kiosk_token_is_required(center_world: CenterWorld, client: TestClient) -> None:
    r = client.post(f"{center_api.PATH}/sessions")
    assert r.status_code == 401
    r = client.post(f"{center_api.PATH}/sessions", headers={"Authorization": "Bearer " + "x" * 43})
    assert r.status_code == 401


def test_card_error_is_logged_and_refused(center_world: CenterWorld, client: TestClient) -> None:
    w = center_world
    r = client.post(f"{center_api.PATH}/sessions", headers=_headers(w))
    r = client.post(
        f"{center_api.PATH}/sessions/card-error",
        headers=_headers(w),
        json={"challenge": r.json()["challenge"], "error": "wrong_pin", "tries_left": 1},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "wrong_pin" and "残り1回" in r.json()["message"]
    assert [row.code for row in w.rows(CenterLogRow)] == ["wrong_pin"]


def test_a_kiosk_cannot_register_honseki_use_itself(center_world: CenterWorld, client: TestClient) -> None:
    """Only the 本籍 municipality's staff register a 本籍地利用登録, by approving an application: the
    kiosk has no route that registers one."""
    w = center_world
    session = w.login(w.holder())
    r = client.post(
        f"{center_api.PATH}/honseki-use",
        headers=_headers(w, session.token),
        json={"honseki_lg_code": "131016"},
    )
    assert r.status_code in (404, 405)


def test_every_route_is_guarded_by_the_kiosk_token() -> None:
    from jlis.web.deps import iter_api_routes, route_guards

    routes = iter_api_routes(list(center_api.router.routes))
    assert len(routes) == 9
    for route in routes:
        assert route_guards(route) == [(center_api.KIOSK_GUARD,)], route.path


def test_center_on_its_own_node_asks_ocsp_over_http(center_world: CenterWorld, client: TestClient) -> None:
    """The center as a separate node: OCSP over HTTP with the verifier's bearer token and purpose;
    the JPKI side records the query under the verifier kiosk-center, purpose コンビニ交付."""
    from jlis.jpki.rp.http import HttpxFetcher
    from jlis.jpki.tables import StatusQueryRow
    from jlis.kiosk.center.service import CENTER_ID, PURPOSE, IssuanceCenter

    from .conftest import VERIFIER_PASSWORD

    w = center_world
    holder = w.holder()  # (moves the clock on a day: the token comes after)
    r = client.post("/api/v1/token", json={"username": CENTER_ID, "password": VERIFIER_PASSWORD})
    assert r.status_code == 200, r.text
    remote = IssuanceCenter(
        w.container,
        None,
        ocsp=HttpxFetcher(client),
        ocsp_token=r.json()["access_token"],
        ocsp_url="https://testserver/jpki/ocsp/auth",
    )
    challenge = remote.open_session(KIOSK)
    session = remote.authenticate(challenge, card_answer(remote, challenge, holder.reader, AUTH_PIN))
    issued = remote.issue(session, remote.pay(remote.request(session, "resident")))
    assert issued.certificate_number
    w.revocation.log.flush()
    (query,) = w.rows(StatusQueryRow)
    assert (query.verifier_id, query.purpose, query.result) == (CENTER_ID, PURPOSE, "good")
    # without the token the responder refuses, and the center fails closed
    bare = IssuanceCenter(
        w.container, None, ocsp=HttpxFetcher(client), ocsp_url="https://testserver/jpki/ocsp/auth"
    )
    challenge = bare.open_session(KIOSK)
    answer = card_answer(bare, challenge, holder.reader, AUTH_PIN)
    with pytest.raises(CenterRefused) as info:
        bare.authenticate(challenge, answer)
    assert info.value.code == "card_status_unknown"
