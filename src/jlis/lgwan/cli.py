"""``jlis lgwan …``: the organisation CA (LGPKI 組織認証局) from the command line (the lead mounts
``app`` as ``jlis lgwan``). A trusted local tool acting as the J-LIS operator ``cli``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from cryptography.hazmat.primitives.serialization import Encoding

from jlis.cli.options import DatabaseOpt, container

if TYPE_CHECKING:
    from jlis.lgwan.ca import OrganisationCA

T = TypeVar("T")

app = typer.Typer(help="LGWAN/LGPKI: the organisation CA and 職責証明書.", no_args_is_help=True)
ca_app = typer.Typer(help="The organisation CA itself.", no_args_is_help=True)
role_app = typer.Typer(
    help="職責証明書 of municipalities (they sign certificate PDFs).", no_args_is_help=True
)
app.add_typer(ca_app, name="ca")
app.add_typer(role_app, name="role")
ACTOR = "cli"


def _with_ca(database_url: str | None, action: Callable[[OrganisationCA], T]) -> T:
    from jlis.db import transaction
    from jlis.lgwan.ca import OrganisationCA

    with container(database_url) as built, transaction(built.factory) as s:
        ca = OrganisationCA(s, built.clock, built.keystore, built.settings.resolved_public_url, rng=built.rng)
        return action(ca)


@ca_app.command("init")
def ca_init(
    algorithm: Annotated[
        str, typer.Option("--algorithm", help="rsa2048-sha256 | p384-sha384")
    ] = "rsa2048-sha256",
    database_url: DatabaseOpt = None,
) -> None:
    """Generation 1 of the organisation CA, if missing; lists the generations."""
    from jlis.jpki.profile import Algorithm

    def run(ca: OrganisationCA) -> None:
        ca.ensure(Algorithm.parse(algorithm), actor=ACTOR)
        for g in ca.generations():
            state = "issuing" if g.active else "verifying only"
            typer.echo(f"g{g.generation}\t{g.algorithm}\t{g.not_after:%Y-%m-%d}\t{state}")

    _with_ca(database_url, run)


@ca_app.command("rollover")
def ca_rollover(database_url: DatabaseOpt = None) -> None:
    """A new root that issues from now on; earlier roots stay trusted for what they signed."""
    _with_ca(database_url, lambda ca: typer.echo(f"g{ca.rollover(actor=ACTOR).generation}"))


@ca_app.command("export")
def ca_export(
    out: Annotated[Path, typer.Argument(help="PEM file of every generation's root")],
    database_url: DatabaseOpt = None,
) -> None:
    pem = _with_ca(
        database_url, lambda ca: b"".join(c.public_bytes(Encoding.PEM) for c in ca.trust_anchors())
    )
    out.write_bytes(pem)
    typer.echo(f"wrote {out}")


@ca_app.command("crl")
def ca_crl(
    out: Annotated[Path, typer.Argument(help="DER file")],
    database_url: DatabaseOpt = None,
) -> None:
    out.write_bytes(_with_ca(database_url, lambda ca: ca.crl().public_bytes(Encoding.DER)))
    typer.echo(f"wrote {out}")


@role_app.command("issue")
def role_issue(
    lg_code: Annotated[str, typer.Argument(help="地方公共団体コード (6 digits)")],
    title: Annotated[
        str | None, typer.Option("--title", help="職責名 (default: the head, e.g. 東京都千代田区長)")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """A new key and 職責証明書 for the municipality."""
    from jlis.lgwan.ca import default_title

    role = _with_ca(
        database_url, lambda ca: ca.issue_role(lg_code, title or default_title(lg_code), actor=ACTOR)
    )
    typer.echo(f"{role.serial}\t{role.lg_code}\t{role.title}\t{role.not_after:%Y-%m-%d}")


@role_app.command("list")
def role_list(
    lg_code: Annotated[str | None, typer.Option("--lg-code")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    for r in _with_ca(database_url, lambda ca: ca.roles(lg_code)):
        typer.echo(f"{r.serial}\t{r.lg_code}\t{r.title}\t{r.not_after:%Y-%m-%d}\t{r.status}")


@role_app.command("revoke")
def role_revoke(
    serial: Annotated[str, typer.Argument(help="serial (hex)")],
    reason: Annotated[str, typer.Option("--reason", help="keyCompromise, affiliationChanged, superseded, …")],
    database_url: DatabaseOpt = None,
) -> None:
    r = _with_ca(database_url, lambda ca: ca.revoke(serial, reason, actor=ACTOR))
    typer.echo(f"{r.serial}\t{r.status}")
