from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.bcl import register as register_module
from jlis.bcl.backup import (
    SCHEDULER,
    Backups,
    BackupScheduler,
    DirectoryStore,
    backup_key,
    schedules,
    set_schedule,
    unseal,
)
from jlis.bcl.register import TABLES, register_digest
from jlis.bcl.tables import BackupRow
from jlis.clock import FixedClock
from jlis.db import Base, make_engine, make_session_factory, transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.registry import Placement
from jlis.registry.store import forget_household_ids
from jlis.registry.tables import HouseholdRow, RegisterVersionRow, ResidentRow

from .conftest import AGENCY, CHIYODA, OPERATOR, SHINJUKU, BclWorld, staff

KEY = backup_key(b"bcl-test-secret-0123456789abcdef")


def rows_of(factory: sessionmaker[Session], lg_code: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every register row of ``lg_code``, table by table, compared as plain tuples (an independent
    reading: no code of jlis.bcl involved)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with factory() as s:
        residents = [r.id for r in s.execute(select(ResidentRow.id).where(ResidentRow.lg_code == lg_code))]
        for table in TABLES:
            if table.name == "reg_history":
                stmt = select(table).where(table.c.resident_id.in_(residents))
            else:
                stmt = select(table).where(table.c.lg_code == lg_code)
            out[table.name] = [tuple(r) for r in s.execute(stmt.order_by(table.c.id))]
    return out


def register_version(factory: sessionmaker[Session], lg_code: str) -> int | None:
    with factory() as s:
        row = s.get(RegisterVersionRow, lg_code)
        return None if row is None else row.version


def populate(world: BclWorld) -> None:
    """A register with history, a household of three, a removed person, and another municipality."""
    head = world.person(CHIYODA)
    world.person(
        CHIYODA, household_id=head.household_id, relationship="妻", given="花子", given_kana="ハナコ"
    )
    child = world.person(
        CHIYODA, household_id=head.household_id, relationship="子", given="一郎", given_kana="イチロウ"
    )
    moved = world.person(CHIYODA, town=2, banchi="3番4号")
    with world.register(CHIYODA) as reg:
        reg.record_relocation(
            child.id, Placement(world.town(CHIYODA, 5), "7番1号"), moved_on=world.clock.today()
        )
        reg.record_death(moved.id, died_on=world.clock.today())
    world.person(SHINJUKU)


def backups(world: BclWorld, store: DirectoryStore, principal: Any = OPERATOR) -> Any:
    class Ctx:
        def __enter__(self) -> Backups:
            self.cm = transaction(world.factory)
            s = self.cm.__enter__()
            return Backups(s, world.clock, store, KEY, principal, random_bytes=random.Random(5).randbytes)

        def __exit__(self, *exc: Any) -> Any:
            return self.cm.__exit__(*exc)

    return Ctx()


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "store")


@pytest.fixture
def second_db(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'replacement.sqlite3'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_a_backup_is_sealed_catalogued_and_audited(bcl_world: BclWorld, store: DirectoryStore) -> None:
    populate(bcl_world)
    with backups(bcl_world, store) as b:
        info = b.take(CHIYODA)
    assert info.counts.residents == 4 and info.counts.households == 3 and info.counts.history >= 6
    sealed = (store.root / info.location).read_bytes()
    # personal data never lies in the store in clear
    for needle in ("山田".encode(), b"reg_residents", b"131016"):
        assert needle not in sealed
    manifest = json.loads((store.root / info.location.replace(".jlbk", ".json")).read_text())
    assert manifest["content_sha256"] == info.content_sha256 and manifest["counts"]["residents"] == 4
    # the file opens only under its key and its own id
    assert len(unseal(KEY, info.id, CHIYODA, sealed)) == info.counts.total
    with pytest.raises(InvalidInput):
        unseal(backup_key(b"another secret"), info.id, CHIYODA, sealed)
    with pytest.raises(InvalidInput):
        unseal(KEY, info.id + "x", CHIYODA, sealed)
    with bcl_world.factory() as s:
        [entry] = [e for e in AuditLog("access").entries(s) if e.action == "export"]
    assert entry.details["backup_id"] == info.id and entry.details["residents"] == 4
    assert entry.actor == OPERATOR.username


def test_verify_finds_a_changed_file_a_missing_file_and_a_changed_catalogue(
    bcl_world: BclWorld, store: DirectoryStore
) -> None:
    populate(bcl_world)
    with backups(bcl_world, store) as b:
        one, two = b.take(CHIYODA), b.take(CHIYODA)
    with backups(bcl_world, store) as b:
        report = b.verify(one.id, against_live=True)
        assert report.ok and report.problems == () and report.matches_live is True
    path = store.root / one.location
    data = bytearray(path.read_bytes())
    data[40] ^= 1
    path.write_bytes(bytes(data))
    (store.root / two.location).unlink()
    with backups(bcl_world, store) as b:
        bad = b.verify(one.id)
        assert (
            not bad.ok
            and any("SHA-256" in p for p in bad.problems)
            and any("cannot open" in p for p in bad.problems)
        )
        missing = b.verify(two.id)
        assert not missing.ok and "missing file" in missing.problems[0]
        with pytest.raises(InvalidInput):
            b.restore_into(one.id, b.s)


def test_verify_against_live_says_when_the_register_changed(
    bcl_world: BclWorld, store: DirectoryStore
) -> None:
    populate(bcl_world)
    with backups(bcl_world, store) as b:
        info = b.take(CHIYODA)
    bcl_world.person(CHIYODA, banchi="9番9号")
    with backups(bcl_world, store) as b:
        report = b.verify(info.id, against_live=True)
    assert report.ok and report.matches_live is False


def test_restore_into_a_replacement_database_gives_the_same_register(
    bcl_world: BclWorld, store: DirectoryStore, second_db: sessionmaker[Session]
) -> None:
    populate(bcl_world)
    with backups(bcl_world, store) as b:
        info = b.take(CHIYODA)
    with backups(bcl_world, store) as b, transaction(second_db) as target:
        report = b.restore_into(info.id, target)
    assert report.counts == info.counts
    assert rows_of(second_db, CHIYODA) == rows_of(bcl_world.factory, CHIYODA)
    assert rows_of(second_db, SHINJUKU) == {t.name: [] for t in TABLES}  # only the one municipality
    with second_db() as s:
        assert register_digest(s, CHIYODA)[0] == info.content_sha256
        [entry] = [e for e in AuditLog("access").entries(s) if e.action == "restore"]
        assert entry.details["backup_id"] == info.id
    # a second restore into the same target is refused and changes nothing
    with backups(bcl_world, store) as b, transaction(second_db) as target, pytest.raises(RuleViolation):
        b.restore_into(info.id, target)
    assert rows_of(second_db, CHIYODA) == rows_of(bcl_world.factory, CHIYODA)


def test_restore_with_replace_repairs_a_damaged_register_and_the_register_goes_on(
    bcl_world: BclWorld, store: DirectoryStore
) -> None:
    populate(bcl_world)
    before = rows_of(bcl_world.factory, CHIYODA)
    with backups(bcl_world, store) as b:
        info = b.take(CHIYODA)
    # damage: a changed name, a person lost (with the history of everyone else kept)
    with bcl_world.factory() as s, s.begin():
        first = s.scalars(
            select(ResidentRow).where(ResidentRow.lg_code == CHIYODA).order_by(ResidentRow.id)
        ).first()
        assert first is not None
        first.family_name = "改竄"
    assert rows_of(bcl_world.factory, CHIYODA) != before
    version = register_version(bcl_world.factory, CHIYODA)
    with backups(bcl_world, store) as b:
        b.restore_into(info.id, b.s, replace=True)
    assert rows_of(bcl_world.factory, CHIYODA) == before
    if bcl_world.factory.kw["bind"].dialect.name == "sqlite":  # a counter group planned meanwhile
        assert register_version(bcl_world.factory, CHIYODA) != version  # would not be replayed
    assert rows_of(bcl_world.factory, SHINJUKU)["reg_residents"]  # the other municipality untouched
    # new rows after a restore get fresh ids (PostgreSQL sequences moved past the restored ids)
    newcomer = bcl_world.person(CHIYODA, banchi="8番8号")
    assert newcomer.id > max(r[0] for r in before["reg_residents"])


def test_restore_refuses_ids_held_by_another_municipality(
    bcl_world: BclWorld, store: DirectoryStore, second_db: sessionmaker[Session]
) -> None:
    populate(bcl_world)
    with backups(bcl_world, store) as b:
        info = b.take(CHIYODA)
    household_id = rows_of(bcl_world.factory, CHIYODA)["reg_households"][0][0]
    with second_db() as s, s.begin():  # the replacement already holds a Shinjuku household with that id
        s.add(
            HouseholdRow(id=household_id, lg_code=SHINJUKU, household_no="9", created_on=dt.date(2026, 1, 1))
        )
    with (
        backups(bcl_world, store) as b,
        transaction(second_db) as target,
        pytest.raises(RuleViolation) as err,
    ):
        b.restore_into(info.id, target)
    assert err.value.field == "id"
    with second_db() as s:
        assert (
            s.scalar(select(func.count()).select_from(ResidentRow).where(ResidentRow.lg_code == CHIYODA)) == 0
        )


def test_scope_staff_back_up_their_own_only_and_only_operators_restore(
    bcl_world: BclWorld, store: DirectoryStore
) -> None:
    populate(bcl_world)
    with backups(bcl_world, store, staff(CHIYODA)) as b:
        info = b.take(CHIYODA)
        assert b.verify(info.id).ok
        with pytest.raises(Forbidden):
            b.take(SHINJUKU)
        with pytest.raises(Forbidden):
            b.restore_into(info.id, b.s, replace=True)
    with backups(bcl_world, store, staff(SHINJUKU)) as b:
        with pytest.raises(Forbidden):
            b.verify(info.id)
        with pytest.raises(Forbidden):
            b.catalogue(CHIYODA)
    with backups(bcl_world, store, AGENCY) as b, pytest.raises(Forbidden):
        b.take(CHIYODA)
    with backups(bcl_world, store) as b:
        with pytest.raises(NotFound):
            b.verify("131016-nope")
        with pytest.raises(InvalidInput):
            b.take("131017")  # check digit


def test_scheduler_takes_due_backups_by_the_clock_and_keeps_the_newest(
    bcl_world: BclWorld, store: DirectoryStore
) -> None:
    populate(bcl_world)
    clock: FixedClock = bcl_world.clock
    with transaction(bcl_world.factory) as s:
        set_schedule(s, OPERATOR, CHIYODA, interval=dt.timedelta(hours=6), keep=2, first_due=clock.now())
        set_schedule(
            s,
            staff(SHINJUKU),
            SHINJUKU,
            interval=dt.timedelta(hours=24),
            keep=1,
            first_due=clock.now() + dt.timedelta(hours=1),
        )
        with pytest.raises(Forbidden):
            set_schedule(
                s, staff(SHINJUKU), CHIYODA, interval=dt.timedelta(hours=6), keep=2, first_due=clock.now()
            )
    scheduler = BackupScheduler(bcl_world.factory, clock, store, KEY, random_bytes=random.Random(1).randbytes)
    [first] = scheduler.run_due()
    assert first.lg_code == CHIYODA and first.backup_id and first.error is None
    assert scheduler.run_due() == []  # nothing due until the next slot
    clock.advance(hours=1)
    assert [r.lg_code for r in scheduler.run_due()] == [SHINJUKU]
    for _ in range(3):
        clock.advance(hours=6)
        assert [r.lg_code for r in scheduler.run_due()] == [CHIYODA]
    with transaction(bcl_world.factory) as s:
        kept = Backups(s, clock, store, KEY, OPERATOR).catalogue(CHIYODA)
        all_rows = Backups(s, clock, store, KEY, OPERATOR).catalogue(CHIYODA, include_pruned=True)
        listed = {sched.lg_code: (sched, last) for sched, _active, last, _error in schedules(s)}
    assert len(kept) == 2 and len(all_rows) == 4
    assert not (store.root / all_rows[-1].location).exists()  # the oldest file was pruned
    assert all((store.root / k.location).exists() for k in kept)
    assert listed[CHIYODA][1] == kept[0].id
    # runs at +0h, +7h, +13h, +19h: the schedule stays on its 6-hour grid from the first slot
    assert listed[CHIYODA][0].next_due == clock.now() + dt.timedelta(hours=5)
    with transaction(bcl_world.factory) as s:
        report = Backups(s, clock, store, KEY, OPERATOR).verify(all_rows[-1].id)
    assert not report.ok and "pruned" in report.problems[0]


def test_a_failing_backup_is_recorded_and_the_others_go_on(
    bcl_world: BclWorld, tmp_path: Path, engine: Engine
) -> None:
    populate(bcl_world)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    with transaction(bcl_world.factory) as s:
        for lg in (CHIYODA, SHINJUKU):
            set_schedule(
                s, OPERATOR, lg, interval=dt.timedelta(hours=6), keep=2, first_due=bcl_world.clock.now()
            )
    bad = BackupScheduler(bcl_world.factory, bcl_world.clock, DirectoryStore(blocked), KEY)
    results = bad.run_due()
    assert [r.error is not None for r in results] == [True, True]
    with bcl_world.factory() as s:
        assert s.scalar(select(func.count()).select_from(BackupRow)) == 0  # nothing half-catalogued
        errors = {sched.lg_code: err for sched, _, _, err in schedules(s)}
    assert all(errors.values())
    assert SCHEDULER.kind.value == "jlis_operator"


def test_restore_after_the_register_was_lost_and_its_id_sequences_reset(
    bcl_world: BclWorld, store: DirectoryStore, engine: Engine
) -> None:
    """The register tables are emptied as on a rebuilt server (PostgreSQL: identities restarted at 1);
    the restore puts the rows back with their ids, and the next 転入 still gets a fresh id."""
    populate(bcl_world)
    before = rows_of(bcl_world.factory, CHIYODA)
    with backups(bcl_world, store) as b:
        info = b.take(CHIYODA)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in TABLES)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            forget_household_ids(engine)  # as a rebuilt server's processes start afresh
        else:
            for table in reversed(TABLES):
                conn.execute(table.delete())
    with backups(bcl_world, store) as b:
        b.restore_into(info.id, b.s)
    assert rows_of(bcl_world.factory, CHIYODA) == before
    newcomer = bcl_world.person(CHIYODA, banchi="8番8号")
    assert newcomer.id == max(r[0] for r in before["reg_residents"]) + 1


def test_a_backup_reads_one_snapshot_while_the_counter_goes_on(
    bcl_world: BclWorld, store: DirectoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 転入 committed half-way through the export (between two of its pages) is in none of the
    backup: the export reads one snapshot (PostgreSQL REPEATABLE READ, SQLite a WAL read) on a
    connection of its own, and holds no lock the counter needs."""
    populate(bcl_world)
    with bcl_world.factory() as s:
        before = register_digest(s, CHIYODA)
    monkeypatch.setattr("jlis.bcl.register.EXPORT_CHUNK", 1)  # one row per page
    real_select, calls, newcomers = register_module._select, [0], []

    def select_then_move_in(table: Any, lg_code: str) -> Any:
        calls[0] += 1
        if calls[0] == 3:  # after the first pages: a counter commits a change meanwhile
            newcomers.append(bcl_world.person(CHIYODA, banchi="8番8号"))
        return real_select(table, lg_code)

    monkeypatch.setattr("jlis.bcl.register._select", select_then_move_in)
    with backups(bcl_world, store) as b:
        info = b.take(CHIYODA)
    assert newcomers, "the change ran during the export"
    assert (info.content_sha256, info.counts) == before
    with bcl_world.factory() as s:
        assert register_digest(s, CHIYODA)[1].residents == before[1].residents + 1
