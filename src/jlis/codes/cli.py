"""``jlis codes ...``: check and generate numbers from the command line (no database)."""

from __future__ import annotations

import random
from typing import Annotated

import typer

from jlis.codes.generate import (
    random_corporate_number,
    random_lg_code,
    random_my_number,
    random_resident_code,
)
from jlis.codes.models import CodeKind, identify

app = typer.Typer(
    help="個人番号, 住民票コード, 地方公共団体コード and 法人番号: check and generate.",
    no_args_is_help=True,
)

_GENERATORS = {
    CodeKind.MY_NUMBER: random_my_number,
    CodeKind.RESIDENT_CODE: random_resident_code,
    CodeKind.LG_CODE: random_lg_code,
    CodeKind.CORPORATE_NUMBER: random_corporate_number,
}


def _describe(kind: CodeKind) -> str:
    return f"{kind.label} ({kind.value})"


@app.command()
def check(
    number: Annotated[str, typer.Argument(help="The number; its kind is guessed from its length.")],
) -> None:
    """Say which kind of number NUMBER is and whether it is valid (exit status 1 if not)."""
    result = identify(number)
    if result.valid:
        assert result.kind is not None
        typer.echo(f"{_describe(result.kind)}: valid")
        return
    kind = _describe(result.kind) if result.kind is not None else "unknown"
    typer.echo(f"{kind}: invalid: {result.reason}")
    raise typer.Exit(code=1)


@app.command()
def generate(
    kind: Annotated[CodeKind, typer.Argument(help="Which kind of number.")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many numbers.")] = 1,
    seed: Annotated[int | None, typer.Option(help="Seed, for a reproducible list.")] = None,
) -> None:
    """Print COUNT random valid numbers of KIND, one a line (test data: a real 個人番号 is derived,
    never random)."""
    rng = random.Random(seed)
    make = _GENERATORS[kind]
    for _ in range(count):
        typer.echo(make(rng))
