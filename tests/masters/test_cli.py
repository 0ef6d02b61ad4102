"""``jlis masters ...`` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jlis.masters.cli import app

runner = CliRunner()


def test_prefectures() -> None:
    result = runner.invoke(app, ["prefectures"])
    assert result.exit_code == 0, result.output
    assert "東京都" in result.output and "オキナワケン" in result.output
    records = json.loads(runner.invoke(app, ["prefectures", "--json"]).output)
    assert len(records) == 47
    tokyo = next(r for r in records if r["code"] == "13")
    assert tokyo["name"] == "東京都" and tokyo["municipalities"] == 62


def test_municipalities_table_and_filters() -> None:
    result = runner.invoke(app, ["municipalities", "--pref", "13", "--kind", "特別区"])
    assert result.exit_code == 0, result.output
    assert "131016" in result.output and "千代田区" in result.output and "チヨダク" in result.output
    records = json.loads(
        runner.invoke(app, ["municipalities", "--pref", "13", "--kind", "special_ward", "--json"]).output
    )
    assert len(records) == 23 and {r["kind"] for r in records} == {"special_ward"}
    cities = json.loads(runner.invoke(app, ["municipalities", "--kind", "designated_city", "--json"]).output)
    assert len(cities) == 20 and not any(c["hosts_register"] for c in cities)
    towns = json.loads(
        runner.invoke(app, ["municipalities", "--pref", "01", "--kind", "town", "--json"]).output
    )
    assert {
        "lg_code": "013030",
        "name": "石狩郡当別町",
        "kana": "イシカリグントウベツチョウ",
    }.items() <= next(t for t in towns if t["lg_code"] == "013030").items()


def test_municipalities_bad_options() -> None:
    result = runner.invoke(app, ["municipalities", "--kind", "県"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["municipalities", "--pref", "99"])
    assert result.exit_code == 2


def test_towns() -> None:
    result = runner.invoke(app, ["towns", "131016", "--query", "ちよだ"])
    assert result.exit_code == 0, result.output
    assert "千代田" in result.output and "1000001" in result.output
    records = json.loads(runner.invoke(app, ["towns", "131016", "--limit", "3", "--json"]).output)
    assert len(records) == 3 and all(r["town_id"].startswith("131016") for r in records)


def test_towns_bad_code() -> None:
    result = runner.invoke(app, ["towns", "131017"])
    assert result.exit_code == 2
    assert "地方公共団体コード" in result.output


def test_provision_table() -> None:
    result = runner.invoke(app, ["provision-table"])
    assert result.exit_code == 0, result.output
    assert "日本年金機構" in result.output and "外務省" in result.output
    records = json.loads(runner.invoke(app, ["provision-table", "--recipient", "mofa", "--json"]).output)
    assert {r["affair_id"] for r in records} == {"passport"}
    assert "my_number" not in records[0]["items"]
    assert runner.invoke(app, ["provision-table", "--recipient", "nobody"]).exit_code == 2
