"""`jlis jpki ca init | rollover` on a fresh, migrated database."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from jlis.cli.main import app

runner = CliRunner()


def test_init_then_a_next_generation_root_alongside(tmp_path: Path) -> None:
    env = {"JLIS_DATA_DIR": str(tmp_path)}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    first = runner.invoke(app, ["jpki", "ca", "init"], env=env)
    assert first.exit_code == 0, first.output
    assert [line.split("\t")[:3] for line in first.output.splitlines()] == [
        ["sign", "g1", "rsa2048-sha256"],
        ["auth", "g1", "rsa2048-sha256"],
    ]
    again = runner.invoke(app, ["jpki", "ca", "init"], env=env)  # idempotent
    assert len(again.output.splitlines()) == 2
    rolled = runner.invoke(
        app, ["jpki", "ca", "rollover", "sign", "--algorithm", "p384-sha384", "--alongside"], env=env
    )
    assert rolled.exit_code == 0, rolled.output
    lines = [line.split("\t") for line in rolled.output.splitlines()]
    assert [(k, g, a, s) for k, g, a, _, s in lines] == [
        ("sign", "g1", "rsa2048-sha256", "issuing"),
        ("sign", "g2", "p384-sha384", "issuing"),
        ("auth", "g1", "rsa2048-sha256", "issuing"),
    ]
    assert (tmp_path / "keys" / "jpki-ca.passphrase").is_file()
    bad = runner.invoke(app, ["jpki", "ca", "rollover", "both"], env=env)
    assert bad.exit_code == 2, bad.output
