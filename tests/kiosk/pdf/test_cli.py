"""`jlis kiosk pdf …` on a fresh database (SQLite file; the real encrypted-file key store)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from jlis.kiosk.pdf.cli import app

from ...lgwan.test_cli import _env

runner = CliRunner()


def test_sample_verify_check_revoke(tmp_path: Path) -> None:
    env, db = _env(tmp_path)
    out = tmp_path / "sample.pdf"
    made = runner.invoke(app, ["sample", str(out), *db], env=env)
    assert made.exit_code == 0, made.output
    fields = dict(line.split("\t") for line in made.output.strip().splitlines())
    assert out.read_bytes().startswith(b"%PDF-")
    verified = runner.invoke(app, ["verify", str(out), *db], env=env)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["sha256"] == fields["sha256"]
    checked = runner.invoke(app, ["check", fields["certificate_number"], fields["code"], *db], env=env)
    assert checked.exit_code == 0 and json.loads(checked.output)["verdict"] == "valid"
    wrong = runner.invoke(app, ["check", fields["certificate_number"], "A" * 16, *db], env=env)
    assert wrong.exit_code == 1 and json.loads(wrong.output)["verdict"] == "invalid"
    revoked = runner.invoke(app, ["revoke", fields["certificate_number"], "--reason", "見本", *db], env=env)
    assert revoked.exit_code == 0, revoked.output
    after = runner.invoke(app, ["verify", str(out), *db], env=env)
    assert after.exit_code == 1 and json.loads(after.output)["verdict"] == "revoked"
    missing = runner.invoke(app, ["revoke", "131016-0-X", "--reason", "x", *db], env=env)
    assert missing.exit_code == 2
