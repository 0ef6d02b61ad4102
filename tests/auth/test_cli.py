"""``jlis users``: add, list, disable and re-password accounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from jlis.auth import passwords
from jlis.auth import service as auth
from jlis.auth.cli import app
from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.errors import Unauthenticated


@pytest.fixture(autouse=True)
def fast_hasher() -> Iterator[None]:
    previous = passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords.use_hasher(previous)


def run(factory: sessionmaker[Session], *args: str) -> tuple[int, str]:
    url = factory.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, f"--database-url={url}"])
    return result.exit_code, result.output


def test_add_list_disable_and_set_password(factory: sessionmaker[Session], clock: FixedClock) -> None:
    code, out = run(
        factory,
        "add-user",
        "staff-131016",
        "--kind",
        "municipal_staff",
        "--lg-code",
        "131016",
        "--display-name",
        "千代田区 窓口",
        "--password",
        "correct horse",
    )
    assert code == 0 and "added staff-131016" in out
    code, out = run(
        factory,
        "add-user",
        "agency-nenkin",
        "--kind",
        "agency",
        "--agency-id",
        "nenkin",
        "--display-name",
        "日本年金機構",
        "--password",
        "correct horse",
    )
    assert code == 0
    code, out = run(factory, "list")
    assert "staff-131016\tmunicipal_staff\t131016" in out and "agency-nenkin\tagency\tnenkin" in out
    assert run(factory, "set-password", "staff-131016", "--password", "another horse")[0] == 0
    with transaction(factory) as s:
        assert auth.authenticate(s, "staff-131016", "another horse").lg_code == "131016"
    assert run(factory, "disable", "staff-131016")[0] == 0
    with pytest.raises(Unauthenticated), transaction(factory) as s:
        auth.authenticate(s, "staff-131016", "another horse")
    assert "(disabled)" in run(factory, "list")[1]
    assert run(factory, "enable", "staff-131016")[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["staff-x", "--kind", "municipal_staff", "--lg-code", "131000"], "地方公共団体コード"),
        (
            ["staff-x", "--kind", "municipal_staff", "--lg-code", "141003"],
            "keeps a register",
        ),  # 横浜市 (政令市)
        (["staff-x", "--kind", "municipal_staff"], "lg_code"),
        (["agency-x", "--kind", "agency", "--agency-id", "nope"], "agency_id"),
        (["Bad Name", "--kind", "jlis_operator"], "username"),
    ],
)
def test_bad_accounts_are_refused(factory: sessionmaker[Session], args: list[str], message: str) -> None:
    code, out = run(factory, "add-user", *args, "--display-name", "x", "--password", "correct horse")
    assert code == 2 and message in out
    assert run(factory, "list")[1].strip() == ""
