"""附票連携: the 本籍地 keeps the address history; 附票本人確認情報 reaches the prefecture and J-LIS."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from jlis.db import transaction
from jlis.juki import read_fuhyo, read_fuhyo_national
from jlis.juki.fuhyo import _record_addresses, fuhyo_entry_row
from jlis.juki.tables import (
    fuhyo_addresses,
    fuhyo_history,
    fuhyo_national_history,
    fuhyo_national_records,
    fuhyo_pref_history,
    fuhyo_pref_records,
)
from jlis.masters import Geography
from jlis.registry import FuhyoNotice, Placement
from jlis.registry.models import ABROAD, ChangeReason

from .factories import CHIYODA, TSURUMI, World


def honseki_in_osaka(geo: Geography) -> str:
    return geo.municipalities("27", hosting_only=True)[0].lg_code


def test_move_and_move_abroad_keep_the_fuhyo_history(world: World, geo: Geography) -> None:
    honseki = honseki_in_osaka(geo)
    d0 = world.clock.today()
    view = world.person(CHIYODA, honseki_lg=honseki)
    world.clock.advance(days=1)
    with world.register(CHIYODA) as reg:
        _, cert = reg.record_move_out(
            view.id, planned_date=world.clock.today(), destination="横浜市鶴見区", destination_lg_code=TSURUMI
        )
    with world.register(TSURUMI) as reg:
        moved = reg.record_move_in(
            cert, Placement(world.town(TSURUMI), "7番7号"), moved_on=world.clock.today()
        )
    world.drain()
    world.clock.advance(days=1)
    with world.register(TSURUMI) as reg:
        reg.record_move_out(
            moved.id, planned_date=world.clock.today(), destination="アメリカ合衆国", destination_lg_code=None
        )
    world.drain()

    with world.factory() as s:
        fuhyo = read_fuhyo(s, honseki, view.resident_code)
        at_jlis = read_fuhyo_national(s, view.resident_code)
    assert fuhyo is not None and at_jlis is not None
    assert [(a.address, a.address_since) for a in fuhyo.addresses] == [
        (view.address.text, d0),
        (moved.address.text, d0 + dt.timedelta(days=1)),
        (ABROAD, d0 + dt.timedelta(days=2)),
    ]
    assert fuhyo.address == ABROAD and fuhyo.reason == "move_abroad"
    assert at_jlis.address == ABROAD and at_jlis.honseki_lg_code == honseki
    assert at_jlis.family_name == "山田" and at_jlis.birth_date == dt.date(1980, 4, 1)
    pref = world.row(fuhyo_pref_records, node="fuhyo-pref:27", resident_code=view.resident_code)
    assert pref is not None and pref.address == ABROAD
    # 附票本人確認情報 carries no 個人番号, at any tier.
    for table in (fuhyo_pref_records, fuhyo_national_records):
        assert "my_number" not in table.c
    # Every notice is in each tier's history: 転入, 転出, 転入, 国外転出.
    for history in (fuhyo_history, fuhyo_pref_history, fuhyo_national_history):
        assert world.count(history, resident_code=view.resident_code) == 4


def test_a_person_without_honseki_sends_nothing_to_the_fuhyo(world: World) -> None:
    view = world.person(CHIYODA)
    world.drain()
    assert world.count(fuhyo_national_history, resident_code=view.resident_code) == 0


def test_fuhyo_code_change_carries_the_addresses_over(world: World, geo: Geography) -> None:
    honseki = honseki_in_osaka(geo)
    view = world.person(CHIYODA, honseki_lg=honseki)
    world.clock.advance(hours=1)
    with world.register(CHIYODA) as reg:
        changed = reg.change_resident_code(view.id)
    world.drain()
    with world.factory() as s:
        assert read_fuhyo(s, honseki, view.resident_code) is None
        assert read_fuhyo_national(s, view.resident_code) is None
        fuhyo = read_fuhyo(s, honseki, changed.resident_code)
        assert read_fuhyo_national(s, changed.resident_code) is not None
    assert fuhyo is not None and [a.address for a in fuhyo.addresses] == [view.address.text]


def _notice(code: str, address: str, since: dt.date, previous: str | None = None) -> dict[str, Any]:
    """The 附票 row of a notice, as the 本籍地 node makes it (fuhyo.notice_entry)."""
    notice = FuhyoNotice(
        resident_code=code,
        honseki_lg_code="271004",
        honseki="大阪市北区1番",
        family_name="山田",
        given_name="花子",
        birth_date=dt.date(1980, 4, 1),
        sex="female",
        address=address,
        address_lg_code="131016",
        address_since=since,
        reason=ChangeReason.RELOCATION,
        change_date=since,
        recorded_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        previous_resident_code=previous,
    )
    return fuhyo_entry_row(notice)


def _lines(world: World, node: str, code: str) -> list[tuple[str, dt.date]]:
    t = fuhyo_addresses
    with world.factory() as s:
        rows = s.execute(
            select(t.c.address, t.c.address_since)
            .where(t.c.node == node, t.c.resident_code == code)
            .order_by(t.c.id)
        )
        return [(a, d) for a, d in rows]


def test_address_lines_are_added_once_across_a_code_change_in_one_batch(world: World) -> None:
    """The 附票 reads only the lines a notice could repeat: a repeat is still found under the code
    a 住民票コード変更 earlier in the same batch carried over, and a new address is still added."""
    node, d = "honseki:271004", dt.date(2026, 1, 1)
    first = [_notice("A", "東京都千代田区1番", d), _notice("A", "東京都千代田区2番", d + dt.timedelta(1))]
    with transaction(world.factory) as s:
        _record_addresses(s, [(node, first)])
        _record_addresses(s, [("honseki:999999", [_notice("A", "東京都千代田区1番", d)])])
    batch = [
        _notice("A", "東京都千代田区2番", d + dt.timedelta(1)),  # the current address again: nothing
        _notice("B", "東京都千代田区2番", d + dt.timedelta(1), previous="A"),  # code change: carried
        _notice("B", "東京都千代田区1番", d),  # an old line of A, now B's: nothing
        _notice("B", "東京都千代田区3番", d + dt.timedelta(2)),  # new
        _notice("B", "東京都千代田区3番", d + dt.timedelta(2)),  # repeated in the batch: nothing
    ]
    with transaction(world.factory) as s:
        _record_addresses(s, [(node, batch)])
    assert _lines(world, node, "A") == []
    assert _lines(world, node, "B") == [
        ("東京都千代田区1番", d),
        ("東京都千代田区2番", d + dt.timedelta(1)),
        ("東京都千代田区3番", d + dt.timedelta(2)),
    ]
    # Another 本籍地's 附票 of the same code is its own.
    assert _lines(world, "honseki:999999", "A") == [("東京都千代田区1番", d)]
