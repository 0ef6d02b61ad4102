"""``jlis kiosk issuer ...`` (the lead mounts ``app``): the certificate server's data from the
command line, for the demo and for developers.

A trusted local tool: every command acts as staff ``cli`` of the municipality it names, through
the same services and rules as the API. Exit status 2 with the item and the rule on a refusal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jlis.auth.models import Principal
from jlis.card.service import tool_principal
from jlis.cli.options import DatabaseOpt, container
from jlis.db import transaction
from jlis.kiosk.content import CertificateKind

app = typer.Typer(
    help="コンビニ交付 証明発行サーバ: seed its data, 印鑑登録, certificate contents, fees.",
    no_args_is_help=True,
)


def _staff(lg_code: str) -> Principal:
    return tool_principal("cli", "jlis kiosk issuer (CLI)", lg_code)


@app.command()
def seed(
    lg_code: Annotated[list[str], typer.Option("--lg-code", help="A municipality of residence (repeatable)")],
    year: Annotated[
        int | None, typer.Option("--year", help="年度 of the 住民税 assessments (default: today's)")
    ] = None,
    seed_text: Annotated[str, typer.Option("--seed", help="Seed of the synthetic figures")] = "jlis-demo",
    seal_share: Annotated[
        float, typer.Option("--seal-share", min=0.0, max=1.0, help="Share of residents given a 印鑑登録")
    ] = 0.3,
    database_url: DatabaseOpt = None,
) -> None:
    """住民税 assessments of ``--year`` and 印鑑登録 for the residents of each municipality, and the
    戸籍 of its residents at their 本籍 municipalities. Idempotent and deterministic for a seed."""
    from jlis.kiosk.issuer.demo import seed_issuer_data

    with container(database_url) as built:
        report = seed_issuer_data(
            built, lg_code, year=year, seed=seed_text, seal_share=seal_share, progress=typer.echo
        )
    typer.echo(f"戸籍: {report.koseki} made")


@app.command("seal-register")
def seal_register(
    lg_code: Annotated[str, typer.Option("--lg-code", help="The municipality of residence")],
    resident_code: Annotated[str, typer.Option("--resident-code", help="住民票コード")],
    image: Annotated[Path, typer.Option("--image", exists=True, dir_okay=False, help="印影 (PNG)")],
    database_url: DatabaseOpt = None,
) -> None:
    """印鑑登録: prints the 登録番号 (the number of the 印鑑登録証)."""
    from jlis.kiosk.issuer.seals import SealRegister

    with container(database_url) as built, transaction(built.factory) as s:
        reg = SealRegister(s, built.clock, lg_code, _staff(lg_code), built.registry).register(
            resident_code, image.read_bytes()
        )
    typer.echo(f"registered {reg.registration_no} for {reg.resident_code}")


@app.command("seal-sweep")
def seal_sweep(
    lg_code: Annotated[str, typer.Option("--lg-code", help="The municipality")],
    database_url: DatabaseOpt = None,
) -> None:
    """職権消除 of the 印鑑登録 of people no longer on the register (death, 転出)."""
    from jlis.kiosk.issuer.seals import SealRegister

    with container(database_url) as built, transaction(built.factory) as s:
        done = SealRegister(s, built.clock, lg_code, _staff(lg_code), built.registry).sweep()
    for reg in done:
        typer.echo(f"abolished {reg.registration_no} ({reg.abolish_reason})")
    typer.echo(f"{len(done)} abolished")


@app.command("honseki-applications")
def honseki_applications(
    lg_code: Annotated[str, typer.Option("--lg-code", help="The 本籍 municipality")],
    state: Annotated[str, typer.Option("--state", help="pending, approved, rejected or all")] = "pending",
    database_url: DatabaseOpt = None,
) -> None:
    """本籍地利用登録申請 made at kiosks for this 本籍 municipality (pending ones by default)."""
    from jlis.kiosk.issuer.koseki import KosekiBook

    with container(database_url) as built, transaction(built.factory) as s:
        found = KosekiBook(s, built.clock, lg_code, _staff(lg_code)).applications(
            None if state == "all" else state
        )
    for a in found:
        decided = f"\t{a.decided_by} {a.decided_at:%Y-%m-%d %H:%M}" if a.decided_at else ""
        why = f"\t{a.reason}" if a.reason else ""
        typer.echo(
            f"{a.id}\t{a.state}\t{a.resident_code}\t筆頭者 {a.head_family_name}\u3000{a.head_given_name}"
            f"\t{a.applied_at:%Y-%m-%d %H:%M}{decided}{why}"
        )
    typer.echo(f"{len(found)} application(s)")


@app.command("honseki-approve")
def honseki_approve(
    application_id: Annotated[int, typer.Argument(help="The application's id")],
    lg_code: Annotated[str, typer.Option("--lg-code", help="The 本籍 municipality")],
    database_url: DatabaseOpt = None,
) -> None:
    """Approve a pending 本籍地利用登録申請 (the applicant must be in a 戸籍 here with that 筆頭者)."""
    from jlis.kiosk.issuer.koseki import KosekiBook

    with container(database_url) as built, transaction(built.factory) as s:
        a = KosekiBook(s, built.clock, lg_code, _staff(lg_code)).decide(application_id, approve=True)
    typer.echo(f"approved {a.id}: {a.resident_code} may obtain 戸籍 certificates of {lg_code} at kiosks")


@app.command("honseki-reject")
def honseki_reject(
    application_id: Annotated[int, typer.Argument(help="The application's id")],
    lg_code: Annotated[str, typer.Option("--lg-code", help="The 本籍 municipality")],
    reason: Annotated[str, typer.Option("--reason", help="Why (up to 200 characters)")],
    database_url: DatabaseOpt = None,
) -> None:
    """Reject a pending 本籍地利用登録申請, with the reason."""
    from jlis.kiosk.issuer.koseki import KosekiBook

    with container(database_url) as built, transaction(built.factory) as s:
        a = KosekiBook(s, built.clock, lg_code, _staff(lg_code)).decide(
            application_id, approve=False, reason=reason
        )
    typer.echo(f"rejected {a.id}: {a.reason}")


@app.command()
def issue(
    lg_code: Annotated[str, typer.Option("--lg-code", help="The issuing municipality")],
    resident_code: Annotated[str, typer.Option("--resident-code", help="住民票コード")],
    kind: Annotated[str, typer.Option("--kind", help=", ".join(k.value for k in CertificateKind))],
    request_id: Annotated[str, typer.Option("--request-id", help="8-64 characters, answered once")],
    household: Annotated[bool, typer.Option("--household", help="世帯全員")] = False,
    honseki: Annotated[bool, typer.Option("--honseki", help="本籍を記載")] = False,
    relationship: Annotated[bool, typer.Option("--relationship", help="続柄を記載")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """The content of one certificate, through the rules (as the counter would issue it)."""
    from jlis.kiosk.issuer.models import IssueOptions
    from jlis.kiosk.issuer.server import CertificateServer

    options = IssueOptions(household=household, show_honseki=honseki, show_relationship=relationship)
    with container(database_url) as built, transaction(built.factory) as s:
        server = CertificateServer(
            s,
            built.clock,
            lg_code,
            principal=_staff(lg_code),
            registry=built.registry,
            geography=built.geography,
        )
        content = server.issue_content(resident_code, kind, options, request_id, built.clock.now())
    typer.echo(f"{content.title} {content.certificate_number} ({content.issuer_title})")
    for section in content.sections:
        if section.heading:
            typer.echo(f"[{section.heading}]")
        for row in section.rows:
            typer.echo(f"  {row.label}: {row.value}")
    for note in content.notes:
        typer.echo(f"* {note}")
    typer.echo(content.attestation)


@app.command()
def fees(lg_code: Annotated[str, typer.Option("--lg-code", help="The municipality")]) -> None:
    """The kiosk fee of each certificate type at a municipality (yen per copy)."""
    from jlis.errors import JlisError
    from jlis.kiosk.fees import load_fees

    try:
        schedule = load_fees().schedule(lg_code)
    except JlisError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    for kind, yen in schedule.items():
        typer.echo(f"{kind.value}\t{kind.label}\t{yen}")
