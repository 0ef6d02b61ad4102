"""本籍地利用登録申請 at the 本籍 municipality's certificate server: recorded pending (by the issuance
center), listed, approved against the minimal 戸籍 or rejected with a reason by the municipality's
own staff, every write audited; and the CLI (``jlis kiosk issuer honseki-...``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from jlis.audit import AuditLog
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.kiosk.issuer.errors import IssuanceRefused
from jlis.kiosk.issuer.koseki import KosekiBook
from jlis.kiosk.issuer.tables import HonsekiApplicationRow, HonsekiUseRow

from .conftest import CENTER, CHIYODA, SHINJUKU, IssuerWorld, staff
from .test_cli import run


def _apply(world: IssuerWorld, code: str, family: str = "山田", given: str = "太郎") -> int:
    with transaction(world.factory) as s:
        return KosekiBook(s, world.clock, CHIYODA, CENTER).apply_use(code, family, given, kiosk_id="K-1").id


def test_apply_list_approve(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU, honseki_lg=CHIYODA)
    world.koseki_for(p)
    app_id = _apply(world, p.resident_code, "山田", "太郎")
    with pytest.raises(IssuanceRefused) as refused, transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, CENTER).apply_use(p.resident_code, "山田", "太郎")
    assert refused.value.code == "honseki_use_pending"
    with transaction(world.factory) as s:
        (listed,) = KosekiBook(s, world.clock, CHIYODA, staff()).applications()
        assert (listed.id, listed.state, listed.kiosk_id) == (app_id, "pending", "K-1")
    world.clock.advance(days=2)
    with transaction(world.factory) as s:
        done = KosekiBook(s, world.clock, CHIYODA, staff()).decide(app_id, approve=True)
        assert (done.state, done.decided_by, done.decided_at) == (
            "approved",
            "staff-131016",
            world.clock.now(),
        )
        assert KosekiBook(s, world.clock, CHIYODA, CENTER).use_registered(p.resident_code)
    assert world.count(HonsekiUseRow) == 1
    with pytest.raises(IssuanceRefused) as refused, transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, CENTER).apply_use(p.resident_code, "山田", "太郎")
    assert refused.value.code == "honseki_use_registered"
    with transaction(world.factory) as s:
        actions = [e.action for e in AuditLog("access").entries(s, subject=p.resident_code)]
    assert "honseki_use.apply" in actions and "honseki_use.approve" in actions


def test_approval_checks_the_koseki_and_its_head(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU, honseki_lg=CHIYODA)
    stranger = world.person(SHINJUKU, family="佐藤", family_kana="サトウ", banchi="5番5号")
    world.koseki_for(p)
    wrong_head = _apply(world, p.resident_code, "山田", "花子")
    not_entered = _apply(world, stranger.resident_code, "佐藤", "太郎")
    for app_id, field in ((wrong_head, "筆頭者"), (not_entered, "戸籍")):
        with pytest.raises(RuleViolation) as refused, transaction(world.factory) as s:
            KosekiBook(s, world.clock, CHIYODA, staff()).decide(app_id, approve=True)
        assert refused.value.context["field"] == field
    with pytest.raises(InvalidInput), transaction(world.factory) as s:  # a rejection needs its reason
        KosekiBook(s, world.clock, CHIYODA, staff()).decide(wrong_head, approve=False)
    with transaction(world.factory) as s:
        out = KosekiBook(s, world.clock, CHIYODA, staff()).decide(
            wrong_head, approve=False, reason="筆頭者が違う"
        )
    assert (out.state, out.reason) == ("rejected", "筆頭者が違う")
    assert world.count(HonsekiUseRow) == 0
    with pytest.raises(NotFound), transaction(world.factory) as s:  # another municipality's id
        KosekiBook(s, world.clock, SHINJUKU, staff(SHINJUKU)).decide(not_entered, approve=False, reason="x")
    with pytest.raises(Forbidden), transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, staff(SHINJUKU)).applications()
    with pytest.raises(Forbidden), transaction(world.factory) as s:  # the center only applies
        KosekiBook(s, world.clock, CHIYODA, CENTER).decide(not_entered, approve=True)


def test_bad_names_write_nothing_and_one_pending_per_person(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU, honseki_lg=CHIYODA)
    for family, given, field in (("", "太郎", "筆頭者の氏"), ("山田", "太" * 51, "筆頭者の名")):
        with pytest.raises(InvalidInput) as refused, transaction(world.factory) as s:
            KosekiBook(s, world.clock, CHIYODA, CENTER).apply_use(p.resident_code, family, given)
        assert refused.value.context["field"] == field
    assert world.count(HonsekiApplicationRow) == 0
    _apply(world, p.resident_code)
    # the database itself keeps one pending application per person and municipality
    with pytest.raises(IntegrityError), transaction(world.factory) as s:
        s.add(
            HonsekiApplicationRow(
                lg_code=CHIYODA,
                resident_code=p.resident_code,
                head_family_name="山田",
                head_given_name="太郎",
                applied_at=world.clock.now(),
                applied_by="test",
                state="pending",
            )
        )
        s.flush()


@pytest.fixture
def cli(world: IssuerWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> IssuerWorld:
    monkeypatch.setenv("JLIS_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("JLIS_CONFIG", raising=False)
    return world


def test_the_cli_lists_approves_and_rejects(cli: IssuerWorld) -> None:
    p = cli.person(SHINJUKU, honseki_lg=CHIYODA)
    q = cli.person(SHINJUKU, family="佐藤", family_kana="サトウ", banchi="5番5号")
    cli.koseki_for(p)
    first, second = _apply(cli, p.resident_code), _apply(cli, q.resident_code, "佐藤", "太郎")
    code, out = run(cli, "honseki-applications", "--lg-code", CHIYODA)
    assert code == 0 and "2 application(s)" in out and f"{first}\tpending\t{p.resident_code}" in out
    code, out = run(cli, "honseki-approve", str(second), "--lg-code", CHIYODA)
    assert code == 2 and "戸籍" in out  # not in a 戸籍 here: refused
    code, out = run(cli, "honseki-approve", str(first), "--lg-code", CHIYODA)
    assert code == 0 and f"approved {first}" in out, out
    code, out = run(cli, "honseki-reject", str(second), "--lg-code", CHIYODA, "--reason", "戸籍なし")
    assert code == 0 and f"rejected {second}: 戸籍なし" in out
    code, out = run(cli, "honseki-applications", "--lg-code", CHIYODA, "--state", "all")
    assert code == 0 and "\tapproved\t" in out and "\trejected\t" in out and "戸籍なし" in out
    assert cli.count(HonsekiUseRow) == 1
