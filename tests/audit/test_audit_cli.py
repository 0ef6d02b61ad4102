"""``jlis audit verify|show`` against a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from jlis.audit import AuditLog
from jlis.audit.cli import app
from jlis.clock import JST
from jlis.db import transaction

T0 = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
runner = CliRunner()


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def fill(engine: Engine) -> None:
    factory = sessionmaker(engine)
    with transaction(factory) as s:
        for i, subject in enumerate(["12345678903", "24727059608", "12345678903"]):
            AuditLog("juki.provision").append(
                s,
                at=T0,
                actor="agency:1",
                action="provide",
                subject=subject,
                details={"i": i, "氏名": "山田"},
            )
        AuditLog("access").append(s, at=T0, actor="staff:1", action="read", subject=None, details={})


def test_verify_ok_then_tampered(engine: Engine) -> None:
    url = url_of(engine)
    empty = runner.invoke(app, ["verify", "--database-url", url])
    assert empty.exit_code == 0 and "no audit chains" in empty.output
    fill(engine)
    ok = runner.invoke(app, ["verify", "--database-url", url])
    assert ok.exit_code == 0, ok.output
    assert "ok: 1 entries (chain access)" in ok.output
    assert "ok: 3 entries (chain juki.provision)" in ok.output

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER audit_entries_no_update"))
        conn.execute(
            text(
                "UPDATE audit_entries SET subject = '00000000000' WHERE chain = 'juki.provision' AND seq = 2"
            )
        )
    bad = runner.invoke(app, ["verify", "--database-url", url])
    assert bad.exit_code == 1
    assert "TAMPERED: chain juki.provision, entry seq 2:" in bad.output
    assert "ok: 1 entries (chain access)" in bad.output
    only = runner.invoke(app, ["verify", "--chain", "access", "--database-url", url])
    assert only.exit_code == 0 and "juki.provision" not in only.output
    missing = runner.invoke(app, ["verify", "--chain", "nope", "--database-url", url])
    assert missing.exit_code == 2


def test_show(engine: Engine) -> None:
    fill(engine)
    url = url_of(engine)
    out = runner.invoke(
        app, ["show", "--chain", "juki.provision", "--subject", "12345678903", "--database-url", url]
    )
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert [line.split("\t")[1] for line in lines] == ["1", "3"]
    assert lines[0].split("\t")[2] == "2026-11-26T10:00:00+09:00"
    assert '"氏名":"山田"' in lines[0]
    newest = runner.invoke(app, ["show", "--limit", "1", "--newest-first", "--json", "--database-url", url])
    records = [json.loads(line) for line in newest.output.strip().splitlines()]
    assert [(r["chain"], r["seq"]) for r in records] == [("access", 1), ("juki.provision", 3)]


def test_database_url_from_settings(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("one dialect is enough to check the settings path")
    fill(engine)
    out = runner.invoke(app, ["verify"], env={"JLIS_DATABASE_URL": url_of(engine)})
    assert out.exit_code == 0 and "ok: 3 entries (chain juki.provision)" in out.output
