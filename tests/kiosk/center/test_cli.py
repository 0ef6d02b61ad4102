"""``jlis kiosk center``: set-up, kiosks, one certificate with a card file, the log, a refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jlis.card.chip.cardfile import export_card
from jlis.clock import SystemClock
from jlis.kiosk.center.cli import app
from jlis.kiosk.center.tables import CenterLogRow, KioskRow

from .conftest import AUTH_PIN, CenterWorld, pdf_text

PASSPHRASE = "center-cli-pass"


@pytest.fixture
def cli(center_file_world: CenterWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CenterWorld:
    monkeypatch.setenv("JLIS_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("JLIS_DATA_DIR", str(tmp_path / "jlis-data"))
    monkeypatch.delenv("JLIS_CONFIG", raising=False)
    # the command's own clock (a SystemClock) reads the test's time: hours and the day of 転入
    monkeypatch.setattr(SystemClock, "now", lambda self: center_file_world.clock.now())
    return center_file_world


def run(w: CenterWorld, *args: str) -> tuple[int, str]:
    url = w.factory.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, f"--database-url={url}"])
    return result.exit_code, result.output


def test_issue_with_a_card_file(cli: CenterWorld, tmp_path: Path) -> None:
    holder = cli.holder(family="松本", given="実")
    with cli.service() as svc:
        card = tmp_path / "card.jcard"
        export_card(svc.chips.load(holder.card_id), card, PASSPHRASE, overwrite=True)
    out_pdf = tmp_path / "out.pdf"
    args = [
        "issue",
        "--card",
        str(card),
        "--passphrase",
        PASSPHRASE,
        "--pin",
        AUTH_PIN,
        "--out",
        str(out_pdf),
    ]
    code, out = run(cli, *args, "--copies", "2")
    assert code == 0, out
    assert "東京都千代田区: 住民票の写し 2通 400円" in out and "証明書番号 131016-" in out
    assert "松本" in pdf_text(out_pdf.read_bytes())
    code, out = run(
        cli, "issue", "--card", str(card), "--passphrase", PASSPHRASE, "--pin", "0000", "--out", "x"
    )
    assert code == 2 and "refused (wrong_pin)" in out
    code, out = run(cli, "log")
    assert code == 0 and "cli authenticate refused wrong_pin" in out and "cli issue issued" in out
    assert [r.outcome for r in cli.rows(CenterLogRow)] == ["issued", "refused"]


def test_setup_and_kiosks(cli: CenterWorld) -> None:
    code, out = run(cli, "setup", "--kiosk", "K-7001=新宿三丁目店 1号機")
    assert code == 0, out
    assert "verifier: kiosk-center" in out and "kiosk K-7001: token " in out
    code, again = run(cli, "setup", "--kiosk", "K-7001=新宿三丁目店 1号機")
    assert code == 0 and "K-7001" not in again  # idempotent: no new token
    code, out = run(cli, "kiosk-add", "K-7002", "新宿三丁目店 2号機")
    assert code == 0 and len(out.strip()) >= 32
    code, out = run(cli, "kiosk-add", "K-7002", "同じ ID")
    assert code == 2
    code, out = run(cli, "kiosk-disable", "K-7002")
    assert code == 0
    with cli.factory() as s:
        row = s.get(KioskRow, "K-7002")
        assert row is not None and row.active is False


def test_sweep_voids_a_number_left_without_a_document(cli: CenterWorld) -> None:
    from jlis.db import transaction
    from jlis.kiosk.center.service import CENTER_PRINCIPAL
    from jlis.kiosk.content import CertificateKind
    from jlis.kiosk.issuer.models import IssueOptions
    from jlis.kiosk.issuer.server import CertificateServer
    from jlis.kiosk.issuer.tables import IssuanceRow

    from .conftest import CHIYODA

    holder = cli.holder()
    with transaction(cli.factory) as s:  # numbered, then the process that was to render it died
        CertificateServer(
            s,
            cli.clock,
            CHIYODA,
            principal=CENTER_PRINCIPAL,
            registry=cli.container.registry,
            geography=cli.container.geography,
        ).issue_content(
            holder.resident.resident_code,
            CertificateKind.RESIDENT,
            IssueOptions(),
            "K-DEAD-0001",
            cli.clock.now(),
        )
    code, out = run(cli, "sweep")
    assert code == 0 and "settled: 0 issued, 0 void" in out, out
    cli.clock.advance(minutes=11)
    code, out = run(cli, "sweep")
    assert code == 0 and "settled: 0 issued, 1 void" in out, out
    (row,) = cli.rows(IssuanceRow)
    assert row.state == "void"
