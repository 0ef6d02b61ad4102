"""The minimal 戸籍 and 本籍地利用登録 on the database, and the 戸籍 seeded from the register."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.kiosk.issuer.koseki import KosekiBook, NewMember, family_drafts, seed_koseki
from jlis.kiosk.issuer.tables import HonsekiUseRow, KosekiMemberRow, KosekiRow
from jlis.registry import Sex

from .conftest import CENTER, CHIYODA, SHINJUKU, IssuerWorld, staff

SEED = b"koseki-seed"


def family(world: IssuerWorld, lg: str = CHIYODA) -> tuple:  # type: ignore[type-arg]
    head = world.person(lg, honseki_lg=CHIYODA)
    wife = world.person(
        lg, given="花子", given_kana="ハナコ", sex=Sex.FEMALE, birth=dt.date(1982, 2, 2), honseki_lg=CHIYODA,
        household_id=head.household_id, relationship="妻",
    )  # fmt: skip
    son = world.person(
        lg, given="一郎", given_kana="イチロウ", birth=dt.date(2010, 6, 1), honseki_lg=CHIYODA,
        household_id=head.household_id, relationship="子",
    )  # fmt: skip
    daughter = world.person(
        lg, given="桜", given_kana="サクラ", sex=Sex.FEMALE, birth=dt.date(2012, 3, 3), honseki_lg=CHIYODA,
        household_id=head.household_id, relationship="子",
    )  # fmt: skip
    return head, wife, son, daughter


def test_seed_from_the_register(world: IssuerWorld) -> None:
    head, wife, son, daughter = family(world, SHINJUKU)  # live in 新宿区, 本籍 in 千代田区
    geo = world.container.geography
    with transaction(world.factory) as s:
        made = seed_koseki(s, world.clock, [SHINJUKU], world.container.registry, geo, seed=SEED)
    assert made == 1
    with transaction(world.factory) as s:  # idempotent
        assert seed_koseki(s, world.clock, [SHINJUKU], world.container.registry, geo, seed=SEED) == 0
    with transaction(world.factory) as s:
        koseki = KosekiBook(s, world.clock, CHIYODA, CENTER).for_person(son.resident_code)
    assert koseki is not None
    assert koseki.lg_code == CHIYODA and koseki.honseki == "東京都千代田区千代田1番地"
    assert koseki.head_name == "山田\u3000太郎"
    assert [m.resident_code for m in koseki.members] == [
        head.resident_code,
        wife.resident_code,
        son.resident_code,
        daughter.resident_code,
    ]
    assert [m.relationship for m in koseki.members][2:] == ["長男", "長女"]
    assert koseki.members[2].father == "山田\u3000太郎" and koseki.members[2].mother == "山田\u3000花子"
    assert koseki.made_reason == "婚姻" and koseki.made_on < son.birth_date
    labels = [e.label for e in koseki.members[0].events]
    assert labels == ["出生", "婚姻"]
    # the same register and seed give the same 戸籍 (parents' names included)
    today = world.clock.today()
    drafts = family_drafts([head, wife, son, daughter], geo, SEED, today)
    assert drafts == family_drafts([head, wife, son, daughter], geo, SEED, today)
    assert drafts[0][4][0].father == koseki.members[0].father


def test_a_young_householder_s_koseki_is_never_dated_in_the_future(world: IssuerWorld) -> None:
    """A 19-year-old 世帯主 (the demo population has them): the 編製日 is capped at today, so the
    seed does not trip over the 編製日 rule."""
    today = world.clock.today()
    head = world.person(CHIYODA, birth=today.replace(year=today.year - 19), honseki_lg=CHIYODA)
    [(_, _, made_on, _, _)] = family_drafts([head], world.container.geography, SEED, today)
    assert made_on == today
    with transaction(world.factory) as s:
        assert (
            seed_koseki(
                s, world.clock, [CHIYODA], world.container.registry, world.container.geography, seed=SEED
            )
            == 1
        )


def test_create_refusals(world: IssuerWorld) -> None:
    member = NewMember("山田", "太郎", dt.date(1980, 1, 1), Sex.MALE, "", "", "長男")
    place, day = "東京都千代田区1番地", dt.date(2000, 1, 1)
    cases = [
        ("", day, [member], "本籍"),
        (place, day, [], "戸籍に記録されている者"),
        (place, dt.date(2099, 1, 1), [member], "編製日"),
    ]
    for honseki, made_on, members, field in cases:
        with pytest.raises(InvalidInput) as info, transaction(world.factory) as s:
            KosekiBook(s, world.clock, CHIYODA, staff()).create(
                honseki, made_on=made_on, made_reason="婚姻", members=members
            )
        assert info.value.field == field
    with pytest.raises(Forbidden), transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, CENTER).create(
            "東京都千代田区1番地", made_on=dt.date(2000, 1, 1), made_reason="婚姻", members=[member]
        )
    assert world.count(KosekiRow) == 0 and world.count(KosekiMemberRow) == 0
    with transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, staff()).create(
            "東京都千代田区1番地", made_on=dt.date(2000, 1, 1), made_reason="婚姻", members=[member]
        )
    with pytest.raises(RuleViolation), transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, staff()).create(
            "東京都千代田区1番地", made_on=dt.date(2000, 1, 1), made_reason="婚姻", members=[member]
        )


def test_honseki_use_registration(world: IssuerWorld) -> None:
    p = world.person(SHINJUKU, honseki_lg=CHIYODA)
    stranger = world.person(SHINJUKU, family="佐藤", family_kana="サトウ", banchi="5番5号")
    world.koseki_for(p)
    with transaction(world.factory) as s:
        book = KosekiBook(s, world.clock, CHIYODA, CENTER)
        assert not book.use_registered(p.resident_code)
        book.register_use(p.resident_code)
        assert book.use_registered(p.resident_code)
    with pytest.raises(RuleViolation), transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, CENTER).register_use(p.resident_code)
    with pytest.raises(RuleViolation), transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, CENTER).register_use(stranger.resident_code)
    with pytest.raises(Forbidden), transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, staff(SHINJUKU)).register_use(p.resident_code)
    assert world.count(HonsekiUseRow) == 1
    with transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, staff()).cancel_use(p.resident_code)
    with transaction(world.factory) as s:
        assert not KosekiBook(s, world.clock, CHIYODA, CENTER).use_registered(p.resident_code)
        with pytest.raises(NotFound):
            KosekiBook(s, world.clock, CHIYODA, staff()).cancel_use(p.resident_code)


def test_removal_marks_and_keeps_the_member(world: IssuerWorld) -> None:
    p = world.person(honseki_lg=CHIYODA)
    world.koseki_for(p)
    with transaction(world.factory) as s:
        koseki = KosekiBook(s, world.clock, CHIYODA, staff()).remove_member(
            p.resident_code, reason="死亡", on=world.clock.today(), text="【死亡地】東京都千代田区"
        )
    (member,) = koseki.members
    assert member.removed and member.removed_reason == "死亡"
    assert member.events[-1].label == "死亡" and member.events[-1].date == world.clock.today()
    with pytest.raises(NotFound), transaction(world.factory) as s:
        KosekiBook(s, world.clock, CHIYODA, staff()).remove_member(
            p.resident_code, reason="死亡", on=world.clock.today()
        )
    with pytest.raises(RuleViolation), transaction(world.factory) as s:  # a removed member cannot register
        KosekiBook(s, world.clock, CHIYODA, CENTER).register_use(p.resident_code)
