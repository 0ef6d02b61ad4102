"""``jlis linkage members ...`` and ``jlis linkage codes ...``: the register of linkage members and
code acquisition from the command line (the lead mounts :data:`members_app` and :data:`codes_app`
under ``jlis linkage``; :data:`app` holds both for a stand-alone mount).

The CLI is a trusted local tool: member commands act as the J-LIS operator ``cli``; code commands
act for the member named by ``--member`` (as its middle server would). Exit status 2 with the item
and the rule on a refusal.

``codes bulk --member lg-XXXXXX`` runs a 符号一斉取得 over every active resident of that
municipality's register, with a progress bar. The residents' 住民票コード are read from the register
with a read-only query of ``reg_residents`` (the municipality's own 統合宛名 side; no public
registry function lists a municipality's codes yet), recorded in the ``access`` audit chain.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.cli.options import container
from jlis.db import read_only, transaction
from jlis.errors import InvalidInput
from jlis.linkage.hub.codes import DEFAULT_BATCH

app = typer.Typer(help="情報連携: linkage members and 機関別符号.", no_args_is_help=True)
members_app = typer.Typer(help="情報連携の機関 (J-LIS operator).", no_args_is_help=True)
codes_app = typer.Typer(help="機関別符号の取得 (one person, or a 符号一斉取得).", no_args_is_help=True)
app.add_typer(members_app, name="members")
app.add_typer(codes_app, name="codes")

ACTOR = "cli"
ACCESS_LOG = AuditLog("access")
console = Console()

DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="Overrides the configured database (JLIS_DATABASE_URL).")
]
MemberOpt = Annotated[
    str, typer.Option("--member", "-m", help="The member acquiring (e.g. lg-131016, nenkin).")
]


# ----------------------------------------------------------------------------------------- members


@members_app.command("add")
def members_add(
    member_id: Annotated[str, typer.Argument(help="nenkin, lg-131016, myna-portal, ...")],
    name: Annotated[str, typer.Argument(help="名称")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="agency | municipality | portal")],
    lg_code: Annotated[str | None, typer.Option("--lg-code", help="municipalities only")] = None,
    username: Annotated[str | None, typer.Option("--username", help="an API principal")] = None,
    password: Annotated[str | None, typer.Option("--password", help="its password")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Register a member; prints its request key (base64) once."""
    from jlis.linkage.hub.members import MemberService

    with container(database_url) as built, transaction(built.factory) as s:
        svc = MemberService(s, built.clock, actor=ACTOR, key_dir=built.settings.resolved_key_dir)
        member, key = svc.register(
            member_id, name, kind, lg_code=lg_code, username=username, password=password
        )
    typer.echo(f"registered {member.id} ({member.kind.value}) {member.name}")
    typer.echo(f"request key (shown once): {base64.b64encode(key).decode('ascii')}")


@members_app.command("list")
def members_list(database_url: DatabaseOpt = None) -> None:
    """Every member, with its kind and state."""
    from jlis.linkage.hub.members import MemberService

    with container(database_url) as built, transaction(built.factory) as s:
        members = MemberService(s, built.clock, actor=ACTOR, key_dir=built.settings.resolved_key_dir).list()
    table = Table("id", "name", "kind", "lg_code", "active")
    for m in members:
        table.add_row(m.id, m.name, m.kind.label, m.lg_code or "", "yes" if m.active else "no")
    console.print(table)


def _set_active(member_id: str, active: bool, database_url: str | None) -> None:
    from jlis.linkage.hub.members import MemberService

    with container(database_url) as built, transaction(built.factory) as s:
        svc = MemberService(s, built.clock, actor=ACTOR, key_dir=built.settings.resolved_key_dir)
        member = svc.set_active(member_id, active)
    typer.echo(f"{member.id}: {'active' if member.active else 'disabled'}")


@members_app.command("disable")
def members_disable(member_id: str, database_url: DatabaseOpt = None) -> None:
    """Stop a member (its principal and tokens too): it gets no code and no answer."""
    _set_active(member_id, False, database_url)


@members_app.command("enable")
def members_enable(member_id: str, database_url: DatabaseOpt = None) -> None:
    _set_active(member_id, True, database_url)


@members_app.command("seed")
def members_seed(
    lg_code: Annotated[
        list[str] | None, typer.Option("--lg-code", help="municipalities (repeatable)")
    ] = None,
    password: Annotated[str | None, typer.Option("--password", help="make principals linkage-<id>")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """The standard agencies, the given municipalities and the portal (idempotent)."""
    from jlis.linkage.hub.members import ensure_standard_members

    with container(database_url) as built, transaction(built.factory) as s:
        members = ensure_standard_members(
            s,
            built.clock,
            key_dir=built.settings.resolved_key_dir,
            lg_codes=lg_code or [],
            geography=built.geography,
            password=password,
            actor=ACTOR,
        )
    typer.echo(f"{len(members)} members: {', '.join(m.id for m in members)}")


# ------------------------------------------------------------------------------------------- codes


@codes_app.command("acquire")
def codes_acquire(
    member: MemberOpt,
    resident_code: Annotated[str, typer.Option("--resident-code", "-r", help="住民票コード")],
    database_url: DatabaseOpt = None,
) -> None:
    """One person's code for the member (facts §5.2), with its 処理通番."""
    from jlis.linkage.hub.codes import acquire
    from jlis.linkage.hub.members import get_member

    with container(database_url) as built, transaction(built.factory) as s:
        issued = acquire(s, built.clock, built.secret, get_member(s, member), resident_code)
    typer.echo(f"{issued.member_id} serial {issued.serial}: {issued.codes[0]}")


def municipality_resident_codes(session: Session, lg_code: str) -> tuple[int, Iterator[str]]:
    """(count, the 住民票コード of the active residents of ``lg_code``), streamed in order."""
    from jlis.registry.tables import ResidentRow

    where = (ResidentRow.lg_code == lg_code, ResidentRow.status == "active")
    total = int(session.execute(select(func.count()).select_from(ResidentRow).where(*where)).scalar_one())
    rows = session.execute(
        select(ResidentRow.resident_code)
        .where(*where)
        .order_by(ResidentRow.id)
        .execution_options(yield_per=10_000)
    ).scalars()
    return total, iter(rows)


@codes_app.command("bulk")
def codes_bulk(
    member: MemberOpt,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=100_000, help="people per transaction")
    ] = DEFAULT_BATCH,
    codes_file: Annotated[
        Path | None, typer.Option("--file", help="住民票コード one a line, instead of the register")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """符号一斉取得: codes for every active resident of the member's municipality (or of --file)."""
    from jlis.linkage.hub.codes import acquire_codes_bulk
    from jlis.linkage.hub.members import get_member

    with container(database_url) as built:
        with built.factory() as s:
            m = get_member(s, member)
        if codes_file is None and m.lg_code is None:
            raise InvalidInput("member", "only a municipality has residents; give --file for another member")
        with built.factory() as reader:
            read_only(reader)
            if codes_file is not None:
                lines = [x.strip() for x in codes_file.read_text("utf-8").splitlines() if x.strip()]
                total, codes = len(lines), iter(lines)
            else:
                assert m.lg_code is not None
                total, codes = municipality_resident_codes(reader, m.lg_code)
                with transaction(built.factory) as s:
                    ACCESS_LOG.append(
                        s,
                        at=built.clock.now(),
                        actor=ACTOR,
                        action="linkage_codes_bulk",
                        subject=m.lg_code,
                        details={"member": m.id, "residents": total, "purpose": "符号一斉取得"},
                    )
            with Progress(
                TextColumn("[bold]符号一斉取得"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("codes", total=total)
                report = acquire_codes_bulk(
                    built.factory,
                    built.clock,
                    built.secret,
                    m,
                    codes,
                    batch=batch,
                    progress=lambda n: progress.advance(task, n),
                )
    typer.echo(
        f"{report.issued:,} codes for {m.id} in {report.seconds:.1f} s ({report.rate:,.0f}/s); "
        f"{len(report.serials)} serials, {len(report.unknown)} unknown, {len(report.invalid)} invalid"
    )
    for code in report.invalid[:10]:
        typer.echo(f"  invalid: {code}")
    for code in report.unknown[:10]:
        typer.echo(f"  unknown: {code}")
