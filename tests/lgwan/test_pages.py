from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.lgwan.ca import OrganisationCA

from ..kiosk.pdf.conftest import web_app
from ..web.support import OPERATOR, PASSWORD, STAFF_A, csrf_of
from .conftest import CHIYODA, PooledKeyStore


def _login(client, username: str) -> None:  # type: ignore[no-untyped-def]
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_operator_issues_and_revokes_from_the_page(
    factory: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    pooled_keystore: PooledKeyStore,
    org_ca: Callable[[Session], OrganisationCA],
) -> None:
    from jlis.lgwan import pages

    with web_app(factory, clock, tmp_path, pooled_keystore, extra=(pages.router,)) as (client, _):
        _login(client, STAFF_A)
        assert client.get("/jlis/lgwan").status_code == 403
        _login(client, OPERATOR)
        page = client.get("/jlis/lgwan")
        assert page.status_code == 200 and "東京都千代田区長" in page.text and "G1" in page.text
        token = csrf_of(page.text)
        bad = client.post("/jlis/lgwan/roles", data={"lg_code": "131015", "csrf_token": token})
        assert bad.status_code == 422 and 'role="alert"' in bad.text
        forged = client.post("/jlis/lgwan/roles", data={"lg_code": "131041", "csrf_token": "x"})
        assert forged.status_code == 403
        issue = {"lg_code": "131041", "csrf_token": token}
        r = client.post("/jlis/lgwan/roles", data=issue, follow_redirects=False)
        assert r.status_code == 303, r.text
        after = client.get(r.headers["location"])
        assert "東京都新宿区長" in after.text and "職責証明書を発行しました" in after.text
        with transaction(factory) as s:
            serial = org_ca(s).role_for(CHIYODA).serial
        r = client.post(
            f"/jlis/lgwan/roles/{serial}/revoke",
            data={"reason": "superseded", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        row = re.search(rf'data-serial="{serial}".*?</tr>', client.get("/jlis/lgwan").text, re.S)
        assert row and "失効" in row.group(0)
