"""``jlis linkage middle``: sync, seed, register, link and show on a seeded municipality, and
refusals as exit status 2 with the item and the rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jlis.linkage.middle.cli import app

from .conftest import CHIYODA, World


@pytest.fixture
def cli(populated: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    monkeypatch.setenv("JLIS_KEY_DIR", str(populated.key_dir))
    monkeypatch.delenv("JLIS_CONFIG", raising=False)
    return populated


def run(w: World, *args: str) -> tuple[int, str]:
    url = w.factory.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, f"--database-url={url}"])
    return result.exit_code, result.output


def test_schemas_lists_the_categories() -> None:
    result = CliRunner().invoke(app, ["schemas"])
    assert result.exit_code == 0
    for label in (
        "住民票関係情報",
        "地方税関係情報",
        "児童手当関係情報",
        "国民健康保険関係情報",
        "介護保険関係情報",
    ):
        assert label in result.output


def test_sync_seed_show_and_link(cli: World) -> None:
    code, out = run(cli, "sync", "--lg-code", CHIYODA)
    assert code == 0 and "lg-131016: 40 住民票関係情報 replica version(s) written" in out, out
    code, out = run(cli, "sync", "--lg-code", CHIYODA)
    assert code == 0 and ": 0 住民票関係情報" in out
    code, out = run(cli, "seed", "--lg-code", CHIYODA, "--seed", "3")
    assert code == 0 and "40 residents" in out and "local_tax" in out, out
    code, out = run(cli, "seed", "--lg-code", CHIYODA, "--seed", "3")
    assert code == 0 and "nothing new" in out
    person = cli.residents()[0]
    code, out = run(cli, "show", "--lg-code", CHIYODA, "--resident-code", person)
    assert code == 0 and "住民票関係情報 第1版" in out and "符号 未取得" in out, out
    cli.register_members()
    code, out = run(cli, "link", "--lg-code", CHIYODA, "--batch", "16")
    assert code == 0 and "lg-131016: 40 符号 stored, 0 unknown to J-LIS" in out, out
    code, out = run(cli, "show", "--lg-code", CHIYODA, "--resident-code", person)
    assert "符号 取得済" in out
    assert person not in out  # the 住民票コード is not echoed back
    # the agencies' middle servers, numbered by the seed, link the same way
    code, out = run(cli, "link", "--member", "nenkin")
    assert code == 0 and re.search(r"nenkin: [1-9][0-9]* 符号 stored, 0 unknown", out), out
    code, out = run(cli, "link", "--member", "nenkin", "--lg-code", CHIYODA)
    assert code == 2 and "exactly one" in out


def test_register_and_refusals(cli: World) -> None:
    person = cli.residents()[0]
    data = json.dumps({"tax_year": 2026, "total_income": 1_000_000, "tax_exempt": False})
    code, out = run(
        cli,
        "register",
        "--lg-code",
        CHIYODA,
        "--resident-code",
        person,
        "--category",
        "local_tax",
        "--data",
        data,
    )
    assert code == 0 and out.strip().endswith("local_tax version 1"), out
    code, out = run(cli, "show", "--lg-code", CHIYODA, "--resident-code", person, "--category", "local_tax")
    assert code == 0 and "1,000,000" in out and "なし" in out  # 住民税非課税: なし
    bad = json.dumps({"tax_year": 2026, "total_income": -5, "tax_exempt": False})
    code, out = run(
        cli,
        "register",
        "--lg-code",
        CHIYODA,
        "--resident-code",
        person,
        "--category",
        "local_tax",
        "--data",
        bad,
    )
    assert code == 2 and "items.total_income: must be at least 0" in out
    code, out = run(
        cli,
        "register",
        "--lg-code",
        CHIYODA,
        "--resident-code",
        person,
        "--category",
        "local_tax",
        "--data",
        "[1]",
    )
    assert code == 2 and "data: must be a JSON object" in out
    code, out = run(cli, "sync", "--lg-code", "131017")
    assert code == 2 and "地方公共団体コード" in out
    code, out = run(cli, "show", "--lg-code", CHIYODA, "--resident-code", cli.residents()[1])
    assert code == 2 and "団体内統合宛名番号 not found" in out
