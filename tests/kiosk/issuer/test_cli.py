"""``jlis kiosk issuer``: seeding, 印鑑登録, fees, and refusals as exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from jlis.kiosk.issuer.cli import app
from jlis.kiosk.issuer.tables import KosekiRow, SealRegistrationRow, TaxAssessmentRow

from .conftest import CHIYODA, SHINJUKU, IssuerWorld, png


@pytest.fixture
def cli(world: IssuerWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> IssuerWorld:
    monkeypatch.setenv("JLIS_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("JLIS_CONFIG", raising=False)
    return world


def run(w: IssuerWorld, *args: str) -> tuple[int, str]:
    url = w.factory.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, f"--database-url={url}"])
    return result.exit_code, result.output


def count(w: IssuerWorld, table: type) -> int:
    with w.factory() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


def test_seed_is_idempotent(cli: IssuerWorld) -> None:
    head = cli.person(honseki_lg=CHIYODA)
    cli.person(
        honseki_lg=CHIYODA,
        given="花子",
        given_kana="ハナコ",
        household_id=head.household_id,
        relationship="妻",
    )
    args = ["seed", "--lg-code", CHIYODA, "--year", "2027", "--seed", "s1", "--seal-share", "1"]
    code, out = run(cli, *args)
    assert code == 0, out
    assert f"{CHIYODA}: 2 assessments for 2027, 2 印鑑登録" in out and "戸籍: 1 made" in out
    code, out = run(cli, *args)
    assert code == 0 and f"{CHIYODA}: 0 assessments for 2027, 0 印鑑登録" in out and "戸籍: 0 made" in out
    assert count(cli, TaxAssessmentRow) == 2 and count(cli, KosekiRow) == 1
    assert count(cli, SealRegistrationRow) == 2


def test_seal_register(cli: IssuerWorld, tmp_path: Path) -> None:
    p = cli.person()
    image = tmp_path / "seal.png"
    image.write_bytes(png())
    code, out = run(
        cli, "seal-register", "--lg-code", CHIYODA, "--resident-code", p.resident_code, "--image", str(image)
    )
    assert code == 0 and f"for {p.resident_code}" in out, out
    code, out = run(
        cli, "seal-register", "--lg-code", CHIYODA, "--resident-code", p.resident_code, "--image", str(image)
    )
    assert code == 2 and "already has an active registration" in out
    assert count(cli, SealRegistrationRow) == 1
    code, out = run(cli, "seal-sweep", "--lg-code", CHIYODA)
    assert code == 0 and "0 abolished" in out


def test_issue_refusals(cli: IssuerWorld) -> None:
    p = cli.person(SHINJUKU)
    args = [
        "issue",
        "--lg-code",
        SHINJUKU,
        "--resident-code",
        p.resident_code,
        "--request-id",
        "cli-request-1",
    ]
    code, out = run(cli, *args, "--kind", "resident_items")
    assert code == 2 and "この市区町村では、この証明書をコンビニ交付していません。" in out
    code, out = run(cli, *args, "--kind", "passport")
    assert code == 2 and "証明書の種類" in out


def test_fees() -> None:
    result = CliRunner().invoke(app, ["fees", "--lg-code", SHINJUKU])
    assert result.exit_code == 0
    assert "koseki\t戸籍全部事項証明書\t450" in result.output
    result = CliRunner().invoke(app, ["fees", "--lg-code", "131017"])
    assert result.exit_code == 2
