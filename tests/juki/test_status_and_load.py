"""The propagation state for the J-LIS page, the initial load of a seeded population, and the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random

from typer.testing import CliRunner

from jlis.clock import JST
from jlis.codes.generate import random_my_number, random_resident_code
from jlis.juki import (
    Basic4Query,
    Outcome,
    ProvisionService,
    initial_load,
    national_state,
    propagation_state,
    read_fuhyo,
)
from jlis.juki.cli import app
from jlis.juki.tables import cs_identities, national_history, national_identities, pref_identities
from jlis.masters import Agency, IdentityItem, ProvisionRule, ProvisionTable
from jlis.registry import ChangeReason, FuhyoNotice, IdentityRecord

from .factories import CHIYODA, TSURUMI, World


def test_propagation_state_counts_what_waits_at_each_hop(world: World) -> None:
    world.person(CHIYODA, honseki_lg=TSURUMI)
    world.person(TSURUMI)
    with world.factory() as s:
        before = {p.pref_code: p for p in propagation_state(s, world.geo)}
    assert len(before) == 47
    assert before["13"].pending_to_cs == 3  # an identity record + two 転入通知 to Hachioji's CS
    assert before["14"].pending_to_cs == 1 and before["14"].fuhyo_pending_to_honseki == 1
    assert before["13"].records == 0 and before["13"].last_applied_at is None

    world.relay.run_once(follow=False)  # one hop: register → CS, 本籍地
    with world.factory() as s:
        mid = {p.pref_code: p for p in propagation_state(s, world.geo)}
    assert mid["13"].pending_to_cs == 0 and mid["13"].pending_cs_to_pref == 1
    assert mid["14"].fuhyo_pending_honseki_to_pref == 1

    world.drain()
    with world.factory() as s:
        after = {p.pref_code: p for p in propagation_state(s, world.geo)}
        nat = national_state(s, world.geo)
    assert after["13"].pending == 0 and after["13"].records == 1 and after["14"].records == 1
    assert after["13"].last_applied_at is not None
    assert after["14"].fuhyo_records == 1 and after["14"].fuhyo_pending == 0
    assert nat.records == 2 and nat.applied == 2 and nat.pending == 0
    assert nat.fuhyo_records == 1 and nat.fuhyo_pending == 0


def _seeded(n: int) -> tuple[list[IdentityRecord], list[FuhyoNotice]]:
    rng = random.Random(5)
    now = dt.datetime(2026, 11, 1, 9, 0, tzinfo=JST)
    identities, notices = [], []
    for i in range(n):
        lg = CHIYODA if i % 2 else TSURUMI
        record = IdentityRecord(
            resident_code=random_resident_code(rng),
            my_number=random_my_number(rng),
            lg_code=lg,
            family_name="高橋",
            given_name=f"一{i}",
            family_kana="タカハシ",
            given_kana="イチロウ",
            alias=None,
            former_surname=None,
            birth_date=dt.date(1970, 1, 1) + dt.timedelta(days=i),
            sex="male",
            address=f"住所{i}",
            status="active",
            reason=ChangeReason.INITIAL,
            change_date=dt.date(2020, 1, 1),
            recorded_at=now,
        )
        identities.append(record)
        if i % 3 == 0:
            notices.append(
                FuhyoNotice(
                    resident_code=record.resident_code,
                    honseki_lg_code=CHIYODA,
                    honseki="東京都千代田区千代田1番地",
                    family_name="高橋",
                    given_name=f"一{i}",
                    birth_date=record.birth_date,
                    sex="male",
                    address=record.address,
                    address_lg_code=lg,
                    address_since=dt.date(2020, 1, 1),
                    reason=ChangeReason.INITIAL,
                    change_date=dt.date(2020, 1, 1),
                    recorded_at=now,
                )
            )
    return identities, notices


def test_initial_load_fills_every_copy_and_later_changes_follow(world: World) -> None:
    identities, notices = _seeded(30)
    # The payload form (dicts) is accepted as well as the dataclasses.
    half = [r.to_payload() for r in identities[:15]] + identities[15:]
    with world.factory() as s, s.begin():
        initial_load(s, half, notices)
    assert world.count(national_identities) == 30 and world.count(national_history) == 0
    assert world.count(cs_identities, node=f"cs:{CHIYODA}") == 15
    assert world.count(pref_identities, node="pref:14") == 15
    with world.factory() as s:
        state = {p.pref_code: p for p in propagation_state(s, world.geo)}
        assert state["13"].records == 15 and state["13"].fuhyo_records == 10
        assert national_state(s, world.geo).records == 30
        fuhyo = read_fuhyo(s, CHIYODA, notices[0].resident_code)
    assert fuhyo is not None and [a.address for a in fuhyo.addresses] == [notices[0].address]
    table = ProvisionTable(
        [Agency("pension", "日本年金機構")],
        [ProvisionRule("pension", "benefit", "年金給付", frozenset({IdentityItem.NAME}), "別表第一")],
    )
    with world.factory() as s, s.begin():
        svc = ProvisionService(s, world.clock, table)
        by_code = svc.query("pension", "benefit", resident_code=identities[4].resident_code)
        by_kana = svc.query(
            "pension", "benefit", basic4=Basic4Query("たかはし いちろう", identities[4].birth_date, "male")
        )
    assert by_code.outcome is Outcome.PROVIDED and by_code.records[0][IdentityItem.NAME] == "高橋\u3000一4"
    assert by_kana.outcome is Outcome.PROVIDED
    # A later change of a seeded person follows the usual rule: newer recorded_at replaces.
    later = dataclasses.replace(
        identities[4], address="新住所", recorded_at=world.clock.now(), reason=ChangeReason.RELOCATION
    )
    from jlis.messaging import publish

    with world.factory() as s, s.begin():
        publish(
            s,
            source=f"registry:{later.lg_code}",
            destination=f"cs:{later.lg_code}",
            topic="identity.changed",
            key=later.resident_code,
            payload=later.to_payload(),
            now=world.clock.now(),
        )
    world.drain()
    assert world.row(national_identities, resident_code=later.resident_code).address == "新住所"


def test_cli_relay_once_and_disclose(world: World) -> None:
    url = world.factory.kw["bind"].url.render_as_string(hide_password=False)
    view = world.person(CHIYODA)
    runner = CliRunner()
    result = runner.invoke(app, ["relay", "--once", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "delivered" in result.output
    assert world.row(national_identities, resident_code=view.resident_code) is not None
    table = ProvisionTable(
        [Agency("pension", "日本年金機構")],
        [ProvisionRule("pension", "benefit", "年金給付", frozenset({IdentityItem.NAME}), "別表第一")],
    )
    with world.factory() as s, s.begin():
        ProvisionService(s, world.clock, table).query("pension", "benefit", resident_code=view.resident_code)
    result = runner.invoke(app, ["disclose", view.resident_code, "--json", "--database-url", url])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.output.splitlines()]
    assert line["recipient"] == "pension" and line["items"] == ["name"] and line["outcome"] == "provided"
    bad = runner.invoke(app, ["disclose", "123", "--database-url", url])
    assert bad.exit_code == 2 and "住民票コード" in bad.output
