"""``jlis kiosk``: コンビニ交付's commands (each sub-package owns its own)."""

from __future__ import annotations

import typer

from jlis.kiosk.center.cli import app as center_app
from jlis.kiosk.issuer.cli import app as issuer_app
from jlis.kiosk.pdf.cli import app as pdf_app

app = typer.Typer(help="コンビニ交付: the certificate server and the certificate PDFs", no_args_is_help=True)
app.add_typer(issuer_app, name="issuer", help="証明発行サーバ: 印鑑登録, 住民税, 戸籍, content, fees")
app.add_typer(pdf_app, name="pdf", help="証明書 PDF: render, sign, verify, withdraw")
app.add_typer(center_app, name="center", help="証明書交付センター: kiosks, one issuance, the log")
