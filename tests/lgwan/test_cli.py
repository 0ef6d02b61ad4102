"""`jlis lgwan …` on a fresh database (SQLite file; the real encrypted-file key store)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from typer.testing import CliRunner

from jlis.db import Base, import_all_tables, make_engine
from jlis.lgwan.cli import app

runner = CliRunner()


def _env(tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    import_all_tables()
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return {"JLIS_DATA_DIR": str(tmp_path)}, ["--database-url", url]


def test_init_issue_list_revoke_and_export(tmp_path: Path) -> None:
    env, db = _env(tmp_path)
    first = runner.invoke(app, ["ca", "init", *db], env=env)
    assert first.exit_code == 0, first.output
    assert first.output.split("\t")[:2] == ["g1", "rsa2048-sha256"]
    issued = runner.invoke(app, ["role", "issue", "131016", *db], env=env)
    assert issued.exit_code == 0, issued.output
    serial, lg, title, _ = issued.output.strip().split("\t")
    assert (lg, title) == ("131016", "東京都千代田区長")
    listed = runner.invoke(app, ["role", "list", "--lg-code", "131016", *db], env=env)
    assert listed.output.strip().endswith("good")
    bad = runner.invoke(app, ["role", "revoke", serial, "--reason", "whim", *db], env=env)
    assert bad.exit_code == 2 and "reason" in bad.output
    revoked = runner.invoke(app, ["role", "revoke", serial, "--reason", "superseded", *db], env=env)
    assert revoked.exit_code == 0 and revoked.output.strip() == f"{serial}\trevoked"
    assert runner.invoke(app, ["ca", "export", str(tmp_path / "roots.pem"), *db], env=env).exit_code == 0
    assert runner.invoke(app, ["ca", "crl", str(tmp_path / "crl.der"), *db], env=env).exit_code == 0
    root = x509.load_pem_x509_certificates((tmp_path / "roots.pem").read_bytes())[0]
    crl = x509.load_der_x509_crl((tmp_path / "crl.der").read_bytes())
    assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    unknown = runner.invoke(app, ["role", "issue", "999999", *db], env=env)
    assert unknown.exit_code == 2
