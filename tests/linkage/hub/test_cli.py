"""``jlis linkage members|codes``: registering members, one acquisition, a 符号一斉取得 over a
municipality's register, and refusals as exit status 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from jlis.audit import AuditLog
from jlis.clock import FixedClock
from jlis.linkage.hub.cli import app
from jlis.linkage.hub.tables import HubCodeRow
from jlis.masters import Geography, load_geography

from ...juki.factories import CHIYODA, SHINJUKU, World


@pytest.fixture(scope="module")
def geo() -> Geography:
    return load_geography()


@pytest.fixture
def world(
    factory: sessionmaker[Session],
    clock: FixedClock,
    geo: Geography,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> World:
    monkeypatch.setenv("JLIS_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("JLIS_CONFIG", raising=False)
    return World(factory, clock, geo)


def run(w: World, *args: str) -> tuple[int, str]:
    url = w.factory.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, f"--database-url={url}"])
    return result.exit_code, result.output


def test_members_and_codes_from_the_command_line(world: World) -> None:
    people = [world.person(CHIYODA) for _ in range(3)]
    world.person(SHINJUKU)  # not Chiyoda's: not in its bulk run
    world.drain()
    code, out = run(world, "members", "seed", "--lg-code", CHIYODA, "--lg-code", SHINJUKU)
    assert code == 0 and "7 members" in out and "lg-131016" in out, out
    code, out = run(world, "members", "add", "cfa", "こども家庭庁", "--kind", "agency")
    assert code == 0 and re.search(r"request key \(shown once\): [A-Za-z0-9+/]{43}=", out), out
    code, out = run(world, "members", "list")
    assert code == 0 and "こども家庭庁" in out and "myna-portal" in out, out

    code, out = run(
        world, "codes", "acquire", "--member", "nenkin", "--resident-code", people[0].resident_code
    )
    assert code == 0 and re.search(r"nenkin serial \d{12}: [0-9A-F]{32}$", out.strip()), out

    code, out = run(world, "codes", "bulk", "--member", f"lg-{CHIYODA}", "--batch", "2")
    assert code == 0 and "3 codes for lg-131016" in out and "2 serials, 0 unknown, 0 invalid" in out, out
    with world.factory() as s:
        assert s.execute(select(func.count()).select_from(HubCodeRow)).scalar_one() == 4
        [access] = AuditLog("access").entries(s, subject=CHIYODA)
    assert access.details == {"member": "lg-131016", "residents": 3, "purpose": "符号一斉取得"}

    code, out = run(world, "members", "disable", "nenkin")
    assert code == 0 and "nenkin: disabled" in out
    code, out = run(
        world, "codes", "acquire", "--member", "nenkin", "--resident-code", people[0].resident_code
    )
    assert code == 2 and "not active" in out, out


def test_bulk_from_a_file_and_refusals(world: World, tmp_path: Path) -> None:
    person = world.person(CHIYODA)
    world.drain()
    assert run(world, "members", "seed")[0] == 0
    listing = tmp_path / "codes.txt"
    listing.write_text(f"{person.resident_code}\n12345678903\n123\n\n", "utf-8")
    code, out = run(world, "codes", "bulk", "--member", "jasso", "--file", str(listing))
    assert code == 0 and "1 codes for jasso" in out and "1 unknown, 1 invalid" in out, out
    assert "unknown: 12345678903" in out and "invalid: 123" in out
    code, out = run(world, "codes", "bulk", "--member", "jasso")
    assert code == 2 and "only a municipality has residents" in out, out
    code, out = run(world, "codes", "acquire", "--member", "nobody", "--resident-code", person.resident_code)
    assert code == 2 and "member not found" in out, out
    code, out = run(world, "members", "add", "lg-131016", "千代田区", "--kind", "agency")
    assert code == 2 and "municipalities" in out, out
