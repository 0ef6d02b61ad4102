"""The municipal seal (公印) on a certificate: the municipality's own image when it has one, else a
drawn square seal in red with the office's name and 之印 (e.g. 千代田区長之印), read in vertical
columns from right to left as on a real seal."""

from __future__ import annotations

import io
import math
import re

from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from jlis.errors import InvalidInput

SEAL_RED = (0.80, 0.10, 0.12)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PREFECTURE = re.compile(r"^(東京都|北海道|京都府|大阪府|.{2,3}県)")


def seal_text(issuer_title: str) -> str:
    """千代田区長之印 for 東京都千代田区長: the prefecture is not on a municipal seal."""
    office = _PREFECTURE.sub("", issuer_title.strip()) or issuer_title.strip()
    return office + "之印"


def check_png(data: bytes) -> bytes:
    if not data.startswith(PNG_MAGIC):
        raise InvalidInput("seal_image_png", "must be a PNG image")
    try:
        ImageReader(io.BytesIO(data)).getSize()
    except Exception:
        raise InvalidInput("seal_image_png", "must be a readable PNG image") from None
    return data


def draw(
    c: Canvas, x: float, y: float, size: float, issuer_title: str, font_name: str, png: bytes | None
) -> None:
    """A seal of ``size`` pt with its lower-left corner at (x, y)."""
    if png is not None:
        c.drawImage(ImageReader(io.BytesIO(check_png(png))), x, y, size, size, mask="auto")
        return
    text = seal_text(issuer_title)
    columns = max(1, math.ceil(math.sqrt(len(text))))
    rows = math.ceil(len(text) / columns)
    c.saveState()
    c.setStrokeColorRGB(*SEAL_RED)
    c.setFillColorRGB(*SEAL_RED)
    c.setLineWidth(2.2)
    c.rect(x, y, size, size, stroke=1, fill=0)
    c.setLineWidth(0.8)
    inset = size * 0.06
    c.rect(x + inset, y + inset, size - 2 * inset, size - 2 * inset, stroke=1, fill=0)
    inner = size - 4 * inset
    cell_w = inner / columns
    cell_h = inner / rows
    font_size = min(cell_w, cell_h) * 0.92
    c.setFont(font_name, font_size)
    for i, ch in enumerate(text):
        col = i // rows  # first column is the rightmost
        row = i % rows
        cx = x + 2 * inset + inner - (col + 0.5) * cell_w
        cy = y + 2 * inset + inner - (row + 0.5) * cell_h - font_size * 0.36
        c.drawCentredString(cx, cy, ch)
    c.restoreState()
