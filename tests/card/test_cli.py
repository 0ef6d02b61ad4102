"""``jlis card``: the demo script's path from application to a card file a relying party can use,
and refusals as exit status 2 with the item and the rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jlis.card.chip.cardfile import load_card
from jlis.card.chip.reader import CardReader
from jlis.card.cli import app

from .conftest import AUTH_PIN, JUKI_PIN, SIGN_PASSWORD, TEXT_PIN, CardWorld


@pytest.fixture
def cli(card_world: CardWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CardWorld:
    monkeypatch.setenv("JLIS_KEY_DIR", str(tmp_path / "keys"))  # the card world's keys and CA
    monkeypatch.delenv("JLIS_CONFIG", raising=False)
    return card_world


def run(w: CardWorld, *args: str) -> tuple[int, str]:
    url = w.factory.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, f"--database-url={url}"])
    return result.exit_code, result.output


def test_from_application_to_a_card_file(cli: CardWorld, tmp_path: Path) -> None:
    r = cli.person()
    person = ["--lg-code", r.lg_code, "--my-number", r.my_number, "--family", "山田", "--given", "太郎"]
    code, out = run(cli, "apply", *person, "--birth", "1980-04-01")
    assert code == 0 and "accepted fee 0 yen" in out, out
    code, out = run(cli, "produce")
    assert code == 0, out
    batch = re.search(r"batch (\S+):", out)
    card = re.search(r"^  ([0-9A-F]{16}) ", out, re.M)
    assert batch and card, out
    card_id = card.group(1)
    assert run(cli, "ship", batch.group(1))[0] == 0
    code, out = run(cli, "notice", card_id)
    assert code == 0 and "交付通知書 sent to 山田\u3000太郎" in out
    code, out = run(
        cli, "deliver", card_id, "--auth-pin", AUTH_PIN, "--juki-pin", JUKI_PIN, "--text-pin", TEXT_PIN,
        "--sign-password", SIGN_PASSWORD,
    )  # fmt: skip
    assert code == 0 and "delivered: auth" in out and "sign" in out, out
    code, out = run(cli, "list", "--lg-code", r.lg_code, "--state", "active")
    assert code == 0 and card_id in out
    code, out = run(
        cli, "suspend", "--lg-code", r.lg_code, "--family", "山田", "--given", "太郎", "--birth", "1980-04-01"
    )
    assert code == 0 and f"{card_id} suspended" in out
    code, out = run(cli, "lift", card_id)
    assert code == 0 and "active" in out
    path = tmp_path / "card.jlis"
    code, out = run(cli, "export", card_id, str(path), "--passphrase", "a good passphrase")
    assert code == 0 and path.exists(), out
    reader = CardReader(load_card(path, "a good passphrase").transmit)
    with cli.service() as svc:
        sign = next(c for c in svc.certificates(card_id) if c.ca_kind == "sign")
    assert reader.read_certificate("sign", SIGN_PASSWORD) == sign.der


def test_refusals_exit_2(cli: CardWorld) -> None:
    r = cli.person()
    code, out = run(
        cli,
        "apply",
        "--lg-code",
        r.lg_code,
        "--my-number",
        r.my_number,
        "--family",
        "田中",
        "--birth",
        "1980-04-01",
    )
    assert code == 2 and "氏: must match the 住民票" in out
    code, out = run(cli, "notice", "NOSUCHCARD")
    assert code == 2 and "not found" in out
    code, out = run(
        cli,
        "apply",
        "--lg-code",
        r.lg_code,
        "--my-number",
        r.my_number,
        "--family",
        "山田",
        "--birth",
        "1980-13-01",
    )
    assert code == 2 and "生年月日" in out
    code, out = run(cli, "express")
    assert code == 0 and out == ""
