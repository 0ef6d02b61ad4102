"""``jlis kiosk pdf …``: certificate PDFs from the command line (the lead mounts ``app``).

``sample`` issues a synthetic certificate (見本) through the real path — render, sign by the
municipality's 職責 key, register — so the verification page and API can be tried without a kiosk;
``verify`` and ``check`` are the public verification; ``revoke`` acts as staff ``cli`` of the issuing
municipality; ``fonts`` prepares the embedded font (its first use takes a few seconds).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated

import typer

from jlis.cli.options import DatabaseOpt, container

app = typer.Typer(
    help="コンビニ交付の証明書 PDF: sample, verify, check, revoke, fonts.", no_args_is_help=True
)


@app.command()
def sample(
    out: Annotated[Path, typer.Argument(help="where to write the signed PDF")],
    lg_code: Annotated[str, typer.Option("--lg-code", help="issuing municipality")] = "131016",
    database_url: DatabaseOpt = None,
) -> None:
    """Issue a synthetic 住民票の写し (見本) and print its number, code and SHA-256."""
    from jlis.db import transaction
    from jlis.kiosk.pdf.sample import sample_content
    from jlis.kiosk.pdf.service import documents_for
    from jlis.lgwan.ca import default_title, ensure_organisation_pki

    with container(database_url) as built, transaction(built.factory) as s:
        base = built.settings.resolved_public_url
        ensure_organisation_pki(s, built.clock, built.keystore, base, [lg_code], actor="cli", rng=built.rng)
        now = built.clock.now()
        content = sample_content(
            lg_code,
            default_title(lg_code),
            certificate_number=f"{lg_code}-{now:%Y%m%d}-{secrets.token_hex(3).upper()}",
            request_id=f"CLI-{secrets.token_hex(6)}",
            issued_on=now.date(),
        )
        doc = documents_for(s, built).issue(content, actor="cli")
    out.write_bytes(doc.pdf)
    typer.echo(
        f"certificate_number\t{doc.certificate_number}\ncode\t{doc.code}\nsha256\t{doc.sha256}\nfile\t{out}"
    )


@app.command()
def verify(
    pdf: Annotated[Path, typer.Argument(help="a certificate PDF")],
    database_url: DatabaseOpt = None,
) -> None:
    """The public verdict for a file (JSON); exit 0 when valid, 1 otherwise."""
    from jlis.db import transaction
    from jlis.kiosk.pdf.service import Verdict, documents_for

    with container(database_url) as built, transaction(built.factory) as s:
        result = documents_for(s, built).verify_pdf(pdf.read_bytes())
    typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    raise typer.Exit(0 if result.verdict is Verdict.VALID else 1)


@app.command()
def check(
    number: Annotated[str, typer.Argument(help="証明書番号")],
    code: Annotated[str, typer.Argument(help="照合番号")],
    database_url: DatabaseOpt = None,
) -> None:
    """The public verdict for a number and code (JSON); exit 0 when valid, 1 otherwise."""
    from jlis.db import transaction
    from jlis.kiosk.pdf.service import Verdict, documents_for

    with container(database_url) as built, transaction(built.factory) as s:
        result = documents_for(s, built).verify_code(number, code)
    typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    raise typer.Exit(0 if result.verdict is Verdict.VALID else 1)


@app.command()
def revoke(
    number: Annotated[str, typer.Argument(help="証明書番号")],
    reason: Annotated[str, typer.Option("--reason", help="取消の理由")],
    database_url: DatabaseOpt = None,
) -> None:
    """Withdraw an issued document, as staff ``cli`` of its municipality."""
    from sqlalchemy import select

    from jlis.card.service import tool_principal
    from jlis.db import transaction
    from jlis.errors import NotFound
    from jlis.kiosk.pdf.service import documents_for
    from jlis.kiosk.pdf.tables import IssuedDocumentRow

    with container(database_url) as built, transaction(built.factory) as s:
        lg = s.scalar(select(IssuedDocumentRow.lg_code).where(IssuedDocumentRow.certificate_number == number))
        if lg is None:
            raise NotFound("certificate", number)
        result = documents_for(s, built).revoke(
            number, principal=tool_principal("cli", "jlis kiosk pdf (CLI)", lg), reason=reason
        )
    typer.echo(f"{result.certificate_number}\t{result.verdict.value}")


@app.command()
def fonts() -> None:
    """Make (once) and show the static font files embedded in the PDFs."""
    from jlis.kiosk.pdf.fonts import default_fonts

    found = default_fonts()
    typer.echo(f"regular\t{found.regular}\nbold\t{found.bold}")
