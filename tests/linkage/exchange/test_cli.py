"""``jlis linkage query`` and ``jlis linkage records verify|show|purge`` through the typer app."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from jlis.db import transaction
from jlis.linkage.exchange.cli import app

from .conftest import CHIYODA, SECRET, TAX, World

runner = CliRunner()


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The installation the CLI sees: the world's key directory (request keys, the secret) and database."""
    (world.key_dir / "mynumber-derivation.key").write_bytes(SECRET)
    monkeypatch.setenv("JLIS_KEY_DIR", str(world.key_dir))
    url = world.factory.kw["bind"].url.render_as_string(hide_password=False)
    return ["--database-url", url]


def _query(world: World, db: list[str], *extra: str, items: str = "tax_year,total_income") -> object:
    code = world.code("nenkin", world.people[0])
    return runner.invoke(
        app,
        [
            "query",
            "--member",
            "nenkin",
            "--code",
            code,
            "--affair",
            "pension_benefit",
            "--provider",
            CHIYODA,
            "--category",
            "local_tax",
            "--items",
            items,
            *extra,
            *db,
        ],
    )


def test_query_verify_and_show(world: World, cli: list[str]) -> None:
    world.replica(CHIYODA, world.people[0], "local_tax", TAX)
    result = _query(world, cli, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["outcome"] == "provided" and answer["data"]["total_income"] == 3_200_000
    refused = _query(world, cli, items="income_levy")
    assert refused.exit_code == 2 and "items_not_allowed" in refused.output
    verified = runner.invoke(app, ["records", "verify", *cli])
    assert verified.exit_code == 0, verified.output
    assert "ok: 2 records (keeper hub)" in verified.output and "keeper nenkin" in verified.output
    shown = runner.invoke(app, ["records", "show", "--keeper", "hub", "--json", *cli])
    lines = [json.loads(x) for x in shown.output.splitlines()]
    assert [x["outcome"] for x in lines] == ["refused", "provided"]
    table = runner.invoke(app, ["records", "show", "--keeper", "nenkin", *cli])
    assert table.exit_code == 0 and "pension_benefit" in table.output


def test_verify_exits_1_on_tampering(world: World, cli: list[str]) -> None:
    world.replica(CHIYODA, world.people[0], "local_tax", TAX)
    assert _query(world, cli).exit_code == 0
    with transaction(world.factory) as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            s.execute(text("DROP TRIGGER linkage_records_no_update"))
        s.execute(text("UPDATE linkage_exchange_records SET outcome = 'no_match' WHERE keeper = 'hub'"))
    result = runner.invoke(app, ["records", "verify", *cli])
    assert result.exit_code == 1 and "TAMPERED: keeper hub, record seq 1" in result.output


def test_purge_refuses_young_records_and_bad_input(world: World, cli: list[str]) -> None:
    young = runner.invoke(app, ["records", "purge", "--keeper", "hub", "--before", "2025-01-01", *cli])
    assert young.exit_code == 2 and "7 years" in young.output
    old = runner.invoke(app, ["records", "purge", "--keeper", "hub", "--before", "2010-01-01", *cli])
    assert old.exit_code == 0 and "purged 0 records" in old.output
    bad = runner.invoke(app, ["records", "purge", "--keeper", "hub", "--before", "soon", *cli])
    assert bad.exit_code == 2
    assert _query(world, cli, "--disclosure", "maybe").exit_code == 2
