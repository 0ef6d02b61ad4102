"""`jlis jpki ca …`: J-LIS's own CA operations (the demo does `init` by itself)."""

from __future__ import annotations

from typing import Annotated

import typer

from jlis.cli.options import DatabaseOpt, container

app = typer.Typer(
    help="The JPKI CAs: generations, rollover, OCSP responders (J-LIS operator).", no_args_is_help=True
)


def _operate(
    database_url: str | None, action: str, kind: str | None, algorithm: str | None, alongside: bool
) -> None:
    from jlis.db import transaction
    from jlis.jpki.ca import CertificationAuthority
    from jlis.jpki.ocsp import ensure_responders
    from jlis.jpki.profile import Algorithm

    with container(database_url) as built, transaction(built.factory) as s:
        ca = CertificationAuthority(
            s, built.clock, built.keystore, built.settings.resolved_public_url, rng=built.rng
        )
        alg = Algorithm.parse(algorithm) if algorithm else None
        if action == "init":
            ca.ensure(alg or Algorithm.RSA2048_SHA256)
        elif kind is not None:
            ca.rollover(kind, alg, alongside=alongside)
        s.flush()
        ensure_responders(s, built.clock, built.keystore, ca.signer_for)
        for k in ("sign", "auth"):
            for g in ca.generations(k):
                state = "issuing" if g.active else ("revoked" if g.revoked_at else "verifying only")
                typer.echo(f"{k}\tg{g.generation}\t{g.algorithm}\t{g.not_after:%Y-%m-%d}\t{state}")


@app.command()
def init(
    algorithm: Annotated[str | None, typer.Option("--algorithm", help="rsa2048-sha256 | p384-sha384")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Generation 1 of both CAs and their OCSP responders, if missing; lists the generations."""
    _operate(database_url, "init", None, algorithm, False)


@app.command()
def rollover(
    kind: Annotated[str, typer.Argument(help="sign | auth")],
    algorithm: Annotated[str | None, typer.Option("--algorithm")] = None,
    alongside: Annotated[
        bool, typer.Option("--alongside", help="Keep other algorithms' generations issuing")
    ] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """A new generation: same DN, new key; earlier generations keep verifying what they signed."""
    _operate(database_url, "rollover", kind, algorithm, alongside)
