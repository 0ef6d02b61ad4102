"""``jlis bcl``: a backup, its verification, a restore into a replacement database; a disaster from
declaration to an approved application; refusals as exit status 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from jlis.bcl.cli import app
from jlis.db import Base, make_engine
from jlis.registry.tables import ResidentRow

from .conftest import CHIYODA, SHINJUKU, BclWorld


@pytest.fixture
def cli(bcl_world: BclWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BclWorld:
    monkeypatch.setenv("JLIS_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("JLIS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("JLIS_CONFIG", raising=False)
    return bcl_world


def run(w: BclWorld, *args: str) -> tuple[int, str]:
    url = w.factory.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, f"--database-url={url}"])
    return result.exit_code, result.output


def test_backup_verify_and_restore_into_a_replacement(cli: BclWorld, tmp_path: Path) -> None:
    people = [cli.person(CHIYODA, banchi=f"{i}番1号") for i in range(1, 4)]
    code, out = run(cli, "backup", "--lg-code", CHIYODA)
    assert code == 0 and "3 residents" in out, out
    backup_id = out.split()[0]
    assert (tmp_path / "data" / "bcl-backups" / CHIYODA / f"{backup_id}.jlbk").is_file()
    code, out = run(cli, "verify", backup_id, "--against-live")
    assert code == 0 and "ok" in out and "live register: same" in out, out
    code, out = run(cli, "list", "--lg-code", CHIYODA)
    assert code == 0 and backup_id in out and "kept" in out
    target = tmp_path / "replacement.sqlite3"
    engine = make_engine(f"sqlite:///{target}")
    Base.metadata.create_all(engine)
    code, out = run(cli, "restore", backup_id, "--target-url", f"sqlite:///{target}")
    assert code == 0 and "restored 131016: 3 residents" in out, out
    with engine.connect() as conn:
        codes = set(conn.execute(select(ResidentRow.resident_code)).scalars())
    engine.dispose()
    assert codes == {p.resident_code for p in people}
    code, out = run(cli, "restore", backup_id, "--target-url", f"sqlite:///{target}")
    assert code == 2 and "already has 3 residents" in out
    # a damaged file: exit status 1 with the finding
    next((tmp_path / "data" / "bcl-backups" / CHIYODA).glob("*.jlbk")).write_bytes(b"x" * 64)
    code, out = run(cli, "verify", backup_id)
    assert code == 1 and "damaged" in out


def test_schedule_set_list_and_run(cli: BclWorld) -> None:
    cli.person(CHIYODA)
    code, out = run(cli, "schedule", "set", "--lg-code", CHIYODA, "--every-minutes", "60", "--keep", "2")
    assert code == 0 and "every 60 min, keep 2" in out, out
    code, out = run(cli, "schedule", "run")
    assert code == 0 and out.startswith(CHIYODA), out
    code, out = run(cli, "schedule", "list")
    assert code == 0 and "active every 60 min" in out and "last 131016-" in out
    code, out = run(cli, "schedule", "set", "--lg-code", CHIYODA, "--every-minutes", "1")
    assert code == 2


def test_a_disaster_from_declaration_to_an_approved_application(cli: BclWorld) -> None:
    head = cli.person(CHIYODA)
    day = cli.clock.today().isoformat()
    code, out = run(cli, "disaster", "declare", "--name", "地震", "--cause", "earthquake", "--date", day,
                    "--area", f"{CHIYODA}:{cli.town(CHIYODA, 0)}")  # fmt: skip
    assert code == 0, out
    did = out.split()[0]
    code, out = run(cli, "disaster", "build", "--disaster", did, "--lg-code", CHIYODA)
    assert code == 0 and "1 listed" in out, out
    code, out = run(cli, "disaster", "victims", "--disaster", did, "--lg-code", CHIYODA)
    assert head.resident_code in out
    code, out = run(cli, "disaster", "dwellings", "--disaster", did, "--lg-code", CHIYODA)
    assert code == 0 and "未調査" in out
    dwelling = out.split()[0]
    code, out = run(cli, "disaster", "survey", dwelling, "--ratio", "35", "--date", day)
    assert code == 0 and "中規模半壊" in out, out
    code, out = run(cli, "disaster", "apply", "--disaster", did, "--lg-code", CHIYODA,
                    "--resident-code", head.resident_code)  # fmt: skip
    assert code == 0 and "受付" in out, out
    application = out.split()[0]
    code, out = run(cli, "disaster", "decide", application, "--lg-code", CHIYODA)
    assert code == 0 and "交付決定 中規模半壊" in out, out
    code, out = run(cli, "disaster", "list")
    assert code == 0 and did in out
    code, out = run(cli, "disaster", "close", did, "--lg-code", SHINJUKU)
    assert code == 2 and "error:" in out
    bad_date = ["--name", "x", "--cause", "earthquake", "--date", "2026-02-30", "--area", CHIYODA]
    code, out = run(cli, "disaster", "declare", *bad_date)
    assert code == 2 and re.search("発生日", out)
