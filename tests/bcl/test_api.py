"""The BCL API as the lead mounts it: staff of a municipality run their part of a disaster and its
shelters; the J-LIS operator declares wide-area disasters and backs registers up."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy.orm import Session, sessionmaker

from jlis.bcl import api as bcl_api
from jlis.bcl.backup import DirectoryStore
from jlis.clock import FixedClock
from jlis.jpki.rp.login import Challenge
from jlis.web.deps import check_route_guards

from ..web.support import AGENCY, OPERATOR, STAFF_A, STAFF_B, WebWorld, assert_error
from .conftest import CHIYODA, SHINJUKU, BclPki

BASE = f"/api/v1/municipalities/{CHIYODA}/bcl"


@pytest.fixture
def web(factory: sessionmaker[Session], clock: FixedClock, tmp_path: Path) -> Iterator[WebWorld]:
    with WebWorld.start(factory, clock, tmp_path) as world:
        app = world.client.app
        for r in bcl_api.ROUTERS:
            app.include_router(r)  # type: ignore[attr-defined]
        check_route_guards(app.routes)  # type: ignore[attr-defined]
        app.state.bcl_store = DirectoryStore(tmp_path / "store")  # type: ignore[attr-defined]
        yield world


def test_a_disaster_from_declaration_to_a_decision(web: WebWorld) -> None:
    h = web.headers(STAFF_A)
    head = web.resident(CHIYODA)
    day = (web.clock.today() - dt.timedelta(days=2)).isoformat()
    r = web.client.post(
        f"{BASE}/disasters", json={"name": "地震", "cause": "earthquake", "occurred_on": day}, headers=h
    )
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    assert web.client.get(f"{BASE}/disasters", headers=h).json()[0]["id"] == did
    r = web.client.post(f"{BASE}/disasters/{did}/victims/build", headers=h)
    assert r.status_code == 200 and r.json()["listed"] == 1, r.text
    [victim] = web.client.get(f"{BASE}/disasters/{did}/victims", headers=h).json()
    assert victim["resident_code"] == head.resident_code and victim["name"] == head.name.full
    [dwelling] = web.client.get(f"{BASE}/disasters/{did}/dwellings", headers=h).json()
    assert dwelling["grade"] is None
    r = web.client.post(
        f"{BASE}/dwellings/{dwelling['id']}/surveys",
        json={"damage_ratio": 52, "surveyed_on": web.clock.today().isoformat()},
        headers=h,
    )
    assert r.status_code == 201 and r.json()["grade"] == "total", r.text
    r = web.client.post(
        f"{BASE}/disasters/{did}/applications", json={"resident_code": head.resident_code}, headers=h
    )
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    listed = web.client.get(f"{BASE}/disasters/{did}/applications?status=received", headers=h).json()
    assert [a["id"] for a in listed] == [app_id]
    assert_error(
        web.client.get(f"{BASE}/disasters/{did}/applications?status=maybe", headers=h), 422, "status"
    )
    r = web.client.post(f"{BASE}/applications/{app_id}/decision", json={"approve": True}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["grade"] == "total"
    assert_error(
        web.client.post(f"{BASE}/applications/{app_id}/decision", json={"approve": True}, headers=h),
        409,
        "状態",
    )


def test_scope_of_the_staff_routes(web: WebWorld) -> None:
    web.resident(CHIYODA)
    day = web.clock.today().isoformat()
    body = {"name": "地震", "cause": "earthquake", "occurred_on": day}
    assert_error(
        web.client.post(f"{BASE}/disasters", json=body, headers=web.headers(STAFF_B)),
        403,
        "地方公共団体コード",
    )
    assert web.client.post(f"{BASE}/disasters", json=body, headers=web.headers(OPERATOR)).status_code == 403
    assert web.client.post(f"{BASE}/disasters", json=body).status_code == 401
    did = web.client.post(f"{BASE}/disasters", json=body, headers=web.headers(STAFF_A)).json()["id"]
    other = f"/api/v1/municipalities/{SHINJUKU}/bcl/disasters/{did}/victims/build"
    assert_error(web.client.post(other, headers=web.headers(STAFF_B)), 409, "地方公共団体コード")
    bad = {**body, "cause": "meteor"}
    assert_error(
        web.client.post(f"{BASE}/disasters", json=bad, headers=web.headers(STAFF_A)), 422, "災害の原因"
    )
    extra = {**body, "surprise": 1}
    assert web.client.post(f"{BASE}/disasters", json=extra, headers=web.headers(STAFF_A)).status_code == 422


def test_shelter_check_in_and_out_over_http(web: WebWorld, bcl_pki: BclPki) -> None:
    h = web.headers(STAFF_A)
    person = web.resident(CHIYODA)
    cert = bcl_pki.auth_certificate(person)
    r = web.client.post(
        f"{BASE}/shelters", json={"name": "体育館", "address": "千代田区一番町", "capacity": 50}, headers=h
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    r = web.client.post(
        f"{BASE}/shelters/{sid}/check-in", json={"certificate_serial": cert.serial}, headers=h
    )
    assert r.status_code == 201 and r.json()["resident_code"] == person.resident_code, r.text
    assert_error(
        web.client.post(
            f"{BASE}/shelters/{sid}/check-in", json={"certificate_serial": cert.serial}, headers=h
        ),
        409,
        "入所",
    )
    [occupant] = web.client.get(f"{BASE}/shelters/{sid}/occupants", headers=h).json()
    assert occupant["name"] == person.name.full
    r = web.client.post(
        f"{BASE}/shelters/{sid}/check-out", json={"certificate_serial": cert.serial}, headers=h
    )
    assert r.status_code == 200 and r.json()["checked_out_at"], r.text
    assert web.client.post(f"{BASE}/shelters/{sid}/close", headers=h).json()["open"] is False
    shinjuku = f"/api/v1/municipalities/{SHINJUKU}/bcl/shelters/{sid}/occupants"
    assert web.client.get(shinjuku, headers=web.headers(STAFF_B)).status_code == 403


def test_backups_and_wide_area_disasters_for_the_operator(web: WebWorld) -> None:
    web.resident(CHIYODA)
    op = web.headers(OPERATOR)
    r = web.client.post(f"/api/v1/jlis/bcl/backups/{CHIYODA}", headers=op)
    assert r.status_code == 201 and r.json()["counts"]["residents"] == 1, r.text
    backup_id = r.json()["id"]
    r = web.client.get(f"/api/v1/jlis/bcl/backup/{backup_id}/verify?against_live=true", headers=op)
    assert r.status_code == 200 and r.json()["ok"] and r.json()["matches_live"], r.text
    assert [b["id"] for b in web.client.get(f"/api/v1/jlis/bcl/backups/{CHIYODA}", headers=op).json()] == [
        backup_id
    ]
    staff_backup = web.client.post(f"{BASE}/backups", headers=web.headers(STAFF_A))
    assert staff_backup.status_code == 201
    assert len(web.client.get(f"{BASE}/backups", headers=web.headers(STAFF_A)).json()) == 2
    assert (
        web.client.post(f"/api/v1/jlis/bcl/backups/{CHIYODA}", headers=web.headers(AGENCY)).status_code == 403
    )
    body = {
        "name": "南海トラフ地震",
        "cause": "earthquake",
        "occurred_on": web.clock.today().isoformat(),
        "area": [{"lg_code": CHIYODA}, {"lg_code": SHINJUKU}],
    }
    r = web.client.post("/api/v1/jlis/bcl/disasters", json=body, headers=op)
    assert r.status_code == 201 and [a["lg_code"] for a in r.json()["area"]] == [CHIYODA, SHINJUKU], r.text
    r = web.client.post(f"/api/v1/jlis/bcl/disasters/{r.json()['id']}/close", headers=op)
    assert r.status_code == 200 and r.json()["closed"] is True


def _answer(
    challenge_text: str, certificate_der: bytes, key: Any, action: str = "check_in"
) -> dict[str, str]:
    """What the card at the reception terminal sends: its certificate and its signature over the
    challenge (PKCS#1 v1.5 with SHA-256, as the chip signs a DigestInfo)."""
    signature = key.sign(Challenge.from_text(challenge_text).to_bytes(), padding.PKCS1v15(), hashes.SHA256())

    def b64u(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return {"challenge": challenge_text, "certificate": b64u(certificate_der), "signature": b64u(signature),
            "action": action}  # fmt: skip


def test_check_in_and_out_proven_by_the_card_signature(web: WebWorld, bcl_pki: BclPki) -> None:
    h = web.headers(STAFF_A)
    person = web.resident(CHIYODA)
    cert = bcl_pki.auth_certificate(person)
    key = bcl_pki.pki.key_for(cert, 1)
    shelters = [
        web.client.post(
            f"{BASE}/shelters", json={"name": n, "address": "千代田区", "capacity": 9}, headers=h
        ).json()["id"]
        for n in ("体育館", "公民館")
    ]
    gym = f"{BASE}/shelters/{shelters[0]}"

    def challenge(path: str = gym) -> str:
        r = web.client.post(f"{path}/card-challenge", headers=h)
        assert r.status_code == 200, r.text
        return str(r.json()["challenge"])

    answer = _answer(challenge(), cert.der, key)
    r = web.client.post(f"{gym}/card", json=answer, headers=h)
    assert r.status_code == 201 and r.json()["resident_code"] == person.resident_code, r.text
    # the same answer again: its nonce is on record
    assert_error(web.client.post(f"{gym}/card", json=answer, headers=h), 409, "challenge.nonce")
    # an answer made for the other shelter is refused at the gym
    other = _answer(challenge(f"{BASE}/shelters/{shelters[1]}"), cert.der, key)
    assert_error(web.client.post(f"{gym}/card", json=other, headers=h), 409, "challenge.audience")
    # another key than the certificate's
    forged = _answer(challenge(), cert.der, bcl_pki.pki.key_for(cert, 2))
    assert_error(web.client.post(f"{gym}/card", json=forged, headers=h), 422, "response.signature")
    r = web.client.post(f"{gym}/card", json=_answer(challenge(), cert.der, key, "check_out"), headers=h)
    assert r.status_code == 201 and r.json()["checked_out_at"], r.text
    assert web.client.get(f"{gym}/occupants", headers=h).json() == []
    assert web.client.post(f"{gym}/card-challenge", headers=web.headers(STAFF_B)).status_code == 403


def test_a_resident_applies_online_with_the_card(web: WebWorld, bcl_pki: BclPki) -> None:
    h = web.headers(STAFF_A)
    person = web.resident(CHIYODA)
    stranger = web.resident(CHIYODA, given="次郎", given_kana="ジロウ")
    cert = bcl_pki.auth_certificate(person)
    key = bcl_pki.pki.key_for(cert, 1)
    day = (web.clock.today() - dt.timedelta(days=2)).isoformat()
    did = web.client.post(
        f"{BASE}/disasters", json={"name": "地震", "cause": "earthquake", "occurred_on": day}, headers=h
    ).json()["id"]
    web.client.post(f"{BASE}/disasters/{did}/victims/build", headers=h)

    def answer(**extra: str) -> dict[str, str]:
        r = web.client.post("/api/v1/bcl/resident/challenge")
        assert r.status_code == 200, r.text
        body = _answer(r.json()["challenge"], cert.der, key)
        body.pop("action")
        return {**body, **extra}

    r = web.client.post("/api/v1/bcl/resident/applications", json=answer(disaster_id=did))
    assert r.status_code == 201 and r.json()["channel"] == "online", r.text
    assert r.json()["resident_code"] == person.resident_code
    status = web.client.post("/api/v1/bcl/resident/status", json=answer())
    assert status.status_code == 200, status.text
    assert [d["id"] for d in status.json()["disasters"]] == [did]
    assert [a["status"] for a in status.json()["applications"]] == ["received"]
    assert_error(web.client.post("/api/v1/bcl/resident/applications", json=answer(disaster_id=did)), 409,
                 "罹災証明書申請")  # fmt: skip
    # a challenge made for a shelter is refused here, and a forged signature too
    gym = {"name": "体育館", "address": "千代田区", "capacity": 9}
    shelter = web.client.post(f"{BASE}/shelters", json=gym, headers=h).json()["id"]
    wrong = web.client.post(f"{BASE}/shelters/{shelter}/card-challenge", headers=h).json()["challenge"]
    body = {**_answer(wrong, cert.der, key), "disaster_id": did}
    body.pop("action")
    assert_error(web.client.post("/api/v1/bcl/resident/applications", json=body), 409, "challenge.audience")
    forged = {**answer(disaster_id=did), "signature": "AAAA"}
    assert web.client.post("/api/v1/bcl/resident/applications", json=forged).status_code == 422
    assert stranger.resident_code not in {a["resident_code"] for a in status.json()["applications"]}
