"""``jlis users ...``: add, list, enable/disable accounts and set passwords (the lead mounts ``app``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from jlis.auth import service
from jlis.auth.models import PrincipalKind
from jlis.cli.options import DatabaseOpt, database_session

app = typer.Typer(help="Staff, operator and agency accounts.", no_args_is_help=True)


def _password(given: str | None) -> str:
    if given is not None:
        return given
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@app.command("add-user")
def add_user(
    username: Annotated[str, typer.Argument(help="Login name: lower-case letters, digits, '.', '_', '-'.")],
    kind: Annotated[PrincipalKind, typer.Option("--kind", help="What the user is.")],
    display_name: Annotated[str, typer.Option("--display-name", help="Shown in the page header.")],
    lg_code: Annotated[
        str | None, typer.Option("--lg-code", help="municipal_staff: 地方公共団体コード.")
    ] = None,
    agency_id: Annotated[
        str | None, typer.Option("--agency-id", help="agency: id in the provision table.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option("--password", help="Prompted for (hidden) when omitted; avoid it in shell history."),
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Add a user. Municipal staff need --lg-code; agencies need --agency-id."""
    from jlis.masters import load_geography, load_provision_table

    secret = _password(password)
    geography = load_geography() if kind is PrincipalKind.MUNICIPAL_STAFF else None
    table = load_provision_table() if kind is PrincipalKind.AGENCY else None
    with database_session(database_url) as s:
        p = service.create_principal(
            s,
            username=username,
            password=secret,
            kind=kind,
            display_name=display_name,
            now=dt.datetime.now(dt.UTC),
            lg_code=lg_code,
            agency_id=agency_id,
            known_lg_code=(lambda c: geography.municipality(c).hosts_register) if geography else None,
            known_agency=(lambda a: a in {x.id for x in table.agencies()}) if table else None,
        )
    scope = p.lg_code or p.agency_id or ""
    typer.echo(f"added {p.username} ({p.kind.value}{' ' + scope if scope else ''})")


@app.command("list")
def list_users(database_url: DatabaseOpt = None) -> None:
    """Every user with kind, scope and whether it is disabled."""
    with database_session(database_url) as s:
        rows = service.list_principals(s)
    for p, disabled in rows:
        scope = p.lg_code or p.agency_id or "-"
        flag = "\t(disabled)" if disabled else ""
        typer.echo(f"{p.username}\t{p.kind.value}\t{scope}\t{p.display_name}{flag}")


@app.command("set-password")
def set_password(
    username: str,
    password: Annotated[str | None, typer.Option("--password", help="Prompted for when omitted.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Set a new password; the user's sessions and tokens end."""
    secret = _password(password)
    with database_session(database_url) as s:
        service.set_password(s, username, secret)
    typer.echo(f"password of {username} set")


@app.command("disable")
def disable(username: str, database_url: DatabaseOpt = None) -> None:
    """Refuse the user's sign-in from now on; open sessions and tokens end at once."""
    with database_session(database_url) as s:
        service.set_disabled(s, username, True)
    typer.echo(f"{username} disabled")


@app.command("enable")
def enable(username: str, database_url: DatabaseOpt = None) -> None:
    with database_session(database_url) as s:
        service.set_disabled(s, username, False)
    typer.echo(f"{username} enabled")
