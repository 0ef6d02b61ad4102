"""``jlis bcl ...``: backups of the registers and disaster-victim support from the command line
(the lead mounts ``app`` as ``jlis bcl``).

The CLI is a trusted local tool: backup commands act as the J-LIS operator ``cli`` (BCL is J-LIS's
cloud); disaster commands act as staff ``cli`` of the municipality they name (declaring over several
municipalities as the operator). Everything goes through the same services and checks as the API.
A refusal exits with status 2 and the item and the rule.

Backups go to ``--store`` (default ``<data_dir>/bcl-backups``); their key is derived from the J-LIS
secret of the key directory, so a restore elsewhere needs that same secret file.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from jlis.auth.models import Principal, PrincipalKind
from jlis.cli.options import container
from jlis.errors import JlisError

if TYPE_CHECKING:
    from jlis.bcl.backup import Backups, DirectoryStore
    from jlis.bcl.disasters import DisasterService
    from jlis.bcl.models import AreaPart
    from jlis.container import Container

app = typer.Typer(
    help="自治体基盤クラウド: register backups, disasters, victims, 罹災証明書.", no_args_is_help=True
)
schedule_app = typer.Typer(help="Backup schedules (driven by the clock).", no_args_is_help=True)
disaster_app = typer.Typer(
    help="災害: declaration, 被災者台帳, 被害認定調査, 罹災証明書申請.", no_args_is_help=True
)
app.add_typer(schedule_app, name="schedule")
app.add_typer(disaster_app, name="disaster")

T = TypeVar("T")

DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="Overrides the configured database (JLIS_DATABASE_URL).")
]
StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="The backup store directory (default <data_dir>/bcl-backups).")
]
LgOpt = Annotated[str, typer.Option("--lg-code", help="地方公共団体コード")]
DisasterOpt = Annotated[str, typer.Option("--disaster", help="災害ID (D20261120-01)")]

OPERATOR = Principal(id=0, username="cli", kind=PrincipalKind.JLIS_OPERATOR, display_name="jlis bcl (CLI)")


def staff_of(lg_code: str) -> Principal:
    return Principal(
        id=0,
        username="cli",
        kind=PrincipalKind.MUNICIPAL_STAFF,
        display_name="jlis bcl (CLI)",
        lg_code=lg_code,
    )


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _date(value: str, field: str) -> dt.date:
    from jlis.registry.models import parse_date

    try:
        return parse_date(field, value)
    except JlisError as exc:
        _fail(exc.message)


def _store(built: Container, store: Path | None) -> DirectoryStore:
    from jlis.bcl.backup import DirectoryStore

    return DirectoryStore(store or built.settings.data_dir / "bcl-backups")


def _backups(database_url: str | None, store: Path | None, action: Callable[[Backups, Container], T]) -> T:
    from jlis.bcl.backup import Backups, backup_key
    from jlis.db import transaction

    with container(database_url) as built, transaction(built.factory) as s:
        return action(
            Backups(s, built.clock, _store(built, store), backup_key(built.secret), OPERATOR), built
        )


def _disasters(database_url: str | None, principal: Principal, action: Callable[[DisasterService], T]) -> T:
    from jlis.bcl.disasters import DisasterService
    from jlis.db import transaction

    with container(database_url) as built, transaction(built.factory) as s:
        return action(DisasterService(s, built.clock, built.geography, principal))


# ------------------------------------------------------------------------------------ backups


@app.command()
def backup(lg_code: LgOpt, store: StoreOpt = None, database_url: DatabaseOpt = None) -> None:
    """Back up one municipality's register now."""
    info = _backups(database_url, store, lambda b, _: b.take(lg_code))
    c = info.counts
    typer.echo(f"{info.id} {c.residents} residents {c.households} households {c.history} history rows")
    typer.echo(f"  sha256 {info.sha256}")


@app.command("list")
def list_backups(lg_code: LgOpt, store: StoreOpt = None, database_url: DatabaseOpt = None) -> None:
    """The municipality's backups, newest first."""
    for info in _backups(database_url, store, lambda b, _: b.catalogue(lg_code, include_pruned=True)):
        state = "pruned" if info.pruned else "kept"
        typer.echo(f"{info.id} {info.taken_at:%Y-%m-%d %H:%M} {info.counts.residents} residents {state}")


@app.command()
def verify(
    backup_id: Annotated[str, typer.Argument()],
    against_live: Annotated[
        bool, typer.Option("--against-live", help="Also compare with the live register")
    ] = False,
    store: StoreOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Check a backup's file (hashes, seal, counts); exit 1 when it is damaged."""
    report = _backups(database_url, store, lambda b, _: b.verify(backup_id, against_live=against_live))
    if not report.ok:
        for problem in report.problems:
            typer.echo(f"damaged: {problem}")
        raise typer.Exit(1)
    typer.echo(f"{backup_id} ok ({report.counts.total if report.counts else 0} rows)")
    if report.matches_live is not None:
        typer.echo("live register: " + ("same" if report.matches_live else "changed since the backup"))


@app.command()
def restore(
    backup_id: Annotated[str, typer.Argument()],
    target_url: Annotated[
        str | None,
        typer.Option("--target-url", help="The database to restore into (migrated); default: this one"),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the municipality's rows in the target")
    ] = False,
    store: StoreOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Restore a backup's register into the target database, in one transaction."""
    from jlis.db import make_engine, make_session_factory, transaction

    def run(b: Backups, built: Container) -> str:
        if target_url is None:
            report = b.restore_into(backup_id, b.s, replace=replace)
        else:
            engine = make_engine(target_url)
            try:
                with transaction(make_session_factory(engine)) as target:
                    report = b.restore_into(backup_id, target, replace=replace)
            finally:
                engine.dispose()
        return f"restored {report.lg_code}: {report.counts.residents} residents, {report.counts.total} rows"

    typer.echo(_backups(database_url, store, run))


# ------------------------------------------------------------------------------------ schedules


@schedule_app.command("set")
def schedule_set(
    lg_code: LgOpt,
    every_minutes: Annotated[int, typer.Option("--every-minutes", min=5, help="Interval")] = 1440,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Backups kept")] = 7,
    first_due: Annotated[str | None, typer.Option("--first-due", help="ISO date-time (default now)")] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Pause the schedule")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    from jlis.bcl.backup import set_schedule
    from jlis.clock import JST
    from jlis.db import transaction

    with container(database_url) as built, transaction(built.factory) as s:
        due = built.clock.now()
        if first_due:
            try:
                due = dt.datetime.fromisoformat(first_due)
            except ValueError:
                _fail("--first-due: must be an ISO date-time")
            due = due if due.tzinfo else due.replace(tzinfo=JST)
        sched = set_schedule(
            s, OPERATOR, lg_code, interval=dt.timedelta(minutes=every_minutes), keep=keep,
            first_due=due, active=not inactive,
        )  # fmt: skip
    typer.echo(
        f"{sched.lg_code} every {every_minutes} min, keep {sched.keep}, next {sched.next_due.astimezone(JST)}"
    )


@schedule_app.command("list")
def schedule_list(database_url: DatabaseOpt = None) -> None:
    from jlis.bcl.backup import schedules
    from jlis.clock import JST

    with container(database_url) as built, built.factory() as s:
        for sched, active, last, error in schedules(s):
            state = "active" if active else "paused"
            typer.echo(
                f"{sched.lg_code} {state} every {int(sched.interval.total_seconds() // 60)} min "
                f"next {sched.next_due.astimezone(JST):%Y-%m-%d %H:%M} last {last or '-'}"
                + (f" error {error}" if error else "")
            )


@schedule_app.command("run")
def schedule_run(
    loop: Annotated[bool, typer.Option("--loop", help="Keep running, polling the schedules")] = False,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", min=1)] = 60.0,
    store: StoreOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Take the backups that are due (once, or in a loop until interrupted)."""
    from jlis.bcl.backup import BackupScheduler, backup_key

    with container(database_url) as built:
        scheduler = BackupScheduler(
            built.factory, built.clock, _store(built, store), backup_key(built.secret)
        )
        while True:
            for r in scheduler.run_due():
                if r.error:
                    typer.echo(f"{r.lg_code} failed: {r.error}")
                else:
                    typer.echo(
                        f"{r.lg_code} {r.backup_id}" + (f" pruned {len(r.pruned)}" if r.pruned else "")
                    )
            if not loop:
                return
            time.sleep(poll_seconds)


# ------------------------------------------------------------------------------------ disasters


def _area(values: list[str]) -> list[AreaPart]:
    """``131016`` (the whole municipality) or ``131016:<town id>,<town id>``."""
    from jlis.bcl.models import AreaPart

    parts: list[AreaPart] = []
    for value in values:
        lg, _, towns = value.partition(":")
        parts.append(AreaPart(lg.strip(), tuple(t.strip() for t in towns.split(",") if t.strip())))
    return parts


@disaster_app.command("declare")
def disaster_declare(
    name: Annotated[str, typer.Option("--name", help="災害名")],
    cause: Annotated[str, typer.Option("--cause", help="earthquake, heavy_rain, typhoon, ...")],
    occurred_on: Annotated[str, typer.Option("--date", help="発生日 YYYY-MM-DD")],
    area: Annotated[list[str], typer.Option("--area", help="131016 or 131016:<town>,<town> (repeatable)")],
    database_url: DatabaseOpt = None,
) -> None:
    parts = _area(area)
    lgs = {p.lg_code for p in parts}
    who = staff_of(next(iter(lgs))) if len(lgs) == 1 else OPERATOR
    view = _disasters(
        database_url,
        who,
        lambda svc: svc.declare(
            name=name,
            cause=cause,
            occurred_on=_date(occurred_on, "発生日"),
            area=parts,
        ),
    )
    typer.echo(f"{view.id} {view.name} ({view.cause.label}) {view.occurred_on}")


@disaster_app.command("list")
def disaster_list(
    lg_code: Annotated[str | None, typer.Option("--lg-code")] = None, database_url: DatabaseOpt = None
) -> None:
    from jlis.bcl.disasters import list_disasters

    with container(database_url) as built, built.factory() as s:
        for d in list_disasters(s, lg_code=lg_code):
            area = " ".join(p.lg_code + (f":{len(p.town_ids)} towns" if p.town_ids else "") for p in d.area)
            typer.echo(f"{d.id} {d.name} {d.occurred_on} {area}{' closed' if d.closed else ''}")


@disaster_app.command("build")
def disaster_build(disaster: DisasterOpt, lg_code: LgOpt, database_url: DatabaseOpt = None) -> None:
    """被災者台帳: list the municipality's residents of the area from the register."""
    r = _disasters(database_url, staff_of(lg_code), lambda svc: svc.build_victim_register(disaster, lg_code))
    typer.echo(
        f"{r.disaster_id} {r.lg_code}: {r.listed} listed, {r.already} already, {r.dwellings} dwellings"
    )


@disaster_app.command("victims")
def disaster_victims(disaster: DisasterOpt, lg_code: LgOpt, database_url: DatabaseOpt = None) -> None:
    for v in _disasters(database_url, staff_of(lg_code), lambda svc: svc.victims(disaster, lg_code)):
        typer.echo(
            f"{v.resident_code} {v.household_no} {v.relationship} {v.name} {v.address} "
            f"dwelling {v.dwelling_id}"
        )


@disaster_app.command("dwellings")
def disaster_dwellings(disaster: DisasterOpt, lg_code: LgOpt, database_url: DatabaseOpt = None) -> None:
    for d in _disasters(database_url, staff_of(lg_code), lambda svc: svc.dwellings(disaster, lg_code)):
        typer.echo(f"{d.id} {d.address} {d.grade.label if d.grade else '未調査'}")


def _dwelling_lg(database_url: str | None, dwelling_id: int) -> str:
    from jlis.bcl.tables import DwellingRow
    from jlis.errors import NotFound

    with container(database_url) as built, built.factory() as s:
        row = s.get(DwellingRow, dwelling_id)
        if row is None:
            _fail(NotFound("被災住家", str(dwelling_id)).message)
        return row.lg_code


@disaster_app.command("survey")
def disaster_survey(
    dwelling_id: Annotated[int, typer.Argument()],
    ratio: Annotated[float, typer.Option("--ratio", help="損害割合 (%)")],
    surveyed_on: Annotated[str, typer.Option("--date", help="調査日 YYYY-MM-DD")],
    survey_round: Annotated[int, typer.Option("--round", help="1 or 2")] = 1,
    note: Annotated[str | None, typer.Option("--note")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """被害認定調査 of a dwelling: the grade follows from the damage ratio."""
    lg = _dwelling_lg(database_url, dwelling_id)
    s = _disasters(
        database_url,
        staff_of(lg),
        lambda svc: svc.record_survey(
            dwelling_id,
            damage_ratio=ratio,
            surveyed_on=_date(surveyed_on, "調査日"),
            round=survey_round,
            note=note,
        ),
    )
    typer.echo(f"dwelling {s.dwelling_id}: {s.grade.label} ({s.damage_ratio}%, {s.round.label})")


@disaster_app.command("apply")
def disaster_apply(
    disaster: DisasterOpt,
    lg_code: LgOpt,
    resident_code: Annotated[str, typer.Option("--resident-code")],
    database_url: DatabaseOpt = None,
) -> None:
    """罹災証明書 application at the counter."""
    a = _disasters(
        database_url, staff_of(lg_code), lambda svc: svc.apply_at_counter(disaster, lg_code, resident_code)
    )
    typer.echo(f"{a.id} {a.status.label}")


@disaster_app.command("decide")
def disaster_decide(
    application_id: Annotated[str, typer.Argument()],
    lg_code: LgOpt,
    approve: Annotated[bool, typer.Option("--approve/--reject")] = True,
    reason: Annotated[str | None, typer.Option("--reason", help="却下理由")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    a = _disasters(
        database_url,
        staff_of(lg_code),
        lambda svc: svc.decide(application_id, approve=approve, reason=reason),
    )
    typer.echo(f"{a.id} {a.status.label}" + (f" {a.grade.label}" if a.grade else ""))


@disaster_app.command("close")
def disaster_close(
    disaster_id: Annotated[str, typer.Argument()],
    lg_code: Annotated[str | None, typer.Option("--lg-code", help="Staff of this municipality")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    who = staff_of(lg_code) if lg_code else OPERATOR
    view = _disasters(database_url, who, lambda svc: svc.close(disaster_id))
    typer.echo(f"{view.id} closed")
