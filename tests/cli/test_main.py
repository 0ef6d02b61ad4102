"""The cross-cutting commands: db upgrade, seed (with its progress bar) and the demo's preparation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from jlis.cli.main import app
from jlis.db import make_engine
from jlis.juki.tables import NationalIdentity
from jlis.registry.tables import ResidentRow

runner = CliRunner()


def count(url: str, table: type) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]
    engine.dispose()
    return int(n)


def test_db_upgrade_then_seed(tmp_path: Path, monkeypatch: object) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = runner.invoke(
        app, ["db", "upgrade", "--database-url", url], env={"JLIS_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["seed", "--municipalities", "2", "--residents", "300", "--database-url", url],
        env={"JLIS_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    assert "seeded 300 residents" in result.output
    assert count(url, ResidentRow) == count(url, NationalIdentity) == 300


def test_seed_refuses_an_unknown_municipality(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = runner.invoke(
        app,
        ["seed", "--lg-code", "131997", "--residents", "10", "--database-url", url],
        env={"JLIS_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code != 0
    assert count(url, ResidentRow) == 0


def test_demo_preparation_seeds_once(tmp_path: Path) -> None:
    from jlis.demo import prepare_demo

    container, users = prepare_demo(tmp_path / "data", residents=150, municipalities=2)
    url = container.settings.resolved_database_url
    assert count(url, ResidentRow) == 150
    assert {"jlis-operator", "agency-nenkin"} <= {u for u, _, _ in users}
    assert sum(1 for u, _, _ in users if u.startswith("staff-")) == 2
    container.engine.dispose()
    again, _ = prepare_demo(tmp_path / "data", residents=150, municipalities=2)
    assert count(url, ResidentRow) == 150  # the existing population is kept
    again.engine.dispose()
