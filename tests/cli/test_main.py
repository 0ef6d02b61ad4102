"""The cross-cutting commands: db upgrade, seed (with its progress bar) and the demo's preparation."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
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

    container, users, cards = prepare_demo(tmp_path / "data", residents=150, municipalities=2, card_holders=2)
    url = container.settings.resolved_database_url
    assert count(url, ResidentRow) == 150
    assert {"jlis-operator", "agency-nenkin", "verifier-demo-bank"} <= {u for u, _, _ in users}
    assert sum(1 for u, _, _ in users if u.startswith("staff-")) == 2
    # Two delivered cards, one per municipality, exported as files a relying party can open.
    assert len(cards) == 2 and len({c.lg_code for c in cards}) == 2
    assert all(c.file.is_file() for c in cards)
    container.engine.dispose()
    again, _, cards_again = prepare_demo(tmp_path / "data", residents=150, municipalities=2, card_holders=2)
    assert count(url, ResidentRow) == 150  # the existing population is kept
    assert {c.card_id for c in cards_again} == {c.card_id for c in cards}  # and so are the cards
    again.engine.dispose()


def test_a_demo_card_signs_and_verifies_with_the_demo_ca(tmp_path: Path) -> None:
    """The demo's card files work with the relying-party tools: sign on the card, verify against the
    demo's signing CA, and read back the holder's verified 基本4情報."""
    from jlis.card.chip.cardfile import load_card
    from jlis.card.chip.reader import CardReader
    from jlis.card.demo import DEMO_CARD_PASSPHRASE, DEMO_PINS
    from jlis.demo import prepare_demo
    from jlis.jpki.ca import CertificationAuthority

    container, _, cards = prepare_demo(
        tmp_path / "data", residents=60, municipalities=1, card_holders=1, host="127.0.0.1", port=8123
    )
    chip = load_card(cards[0].file, DEMO_CARD_PASSPHRASE)
    reader = CardReader(chip.transmit)
    cert = x509.load_der_x509_certificate(reader.read_certificate("sign", pin=DEMO_PINS.sign_password))
    with container.factory() as s:
        ca = CertificationAuthority(s, container.clock, container.keystore, "http://x")
        roots = ca.trust_anchors("sign")
    assert any(cert.issuer == r.subject for r in roots)
    cert.verify_directly_issued_by(next(r for r in roots if r.subject == cert.issuer))
    # The certificate sends relying parties to the demo's own address (`jlis demo --port`).
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [
        d.access_location.value for d in aia if d.access_method == x509.AuthorityInformationAccessOID.OCSP
    ] == ["http://127.0.0.1:8123/jpki/ocsp/sign"]
    container.engine.dispose()


def test_serve_with_workers_runs_one_relay_and_lets_each_worker_build_its_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from jlis.juki import network
    from jlis.web.asgi import app_from_environment

    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    calls: list[tuple[object, dict[str, object]]] = []
    relays: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.setattr(network.RelayWorker, "start", lambda self: relays.append("start"))
    monkeypatch.setattr(network.RelayWorker, "stop", lambda self, timeout=None: relays.append("stop"))
    monkeypatch.delenv("JLIS_DATABASE_URL", raising=False)
    result = runner.invoke(
        app,
        ["serve", "--workers", "2", "--port", "8123", "--database-url", url],
        env={"JLIS_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    [(target, kw)] = calls
    assert target == "jlis.web.asgi:app_from_environment"
    assert kw["factory"] is True and kw["workers"] == 2 and kw["port"] == 8123
    assert relays == ["start", "stop"]  # once, in the serving process, not in each worker
    # What each worker does: its app from the settings in the environment it inherits.
    import os

    assert os.environ["JLIS_DATABASE_URL"] == url
    worker_app = app_from_environment()
    assert worker_app.state.container.settings.resolved_database_url == url
