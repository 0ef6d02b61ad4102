"""Lay out a :class:`~jlis.kiosk.content.CertificateContent` as an A4 PDF (reportlab).

What every page carries: the ground pattern with the latent 「複写」 (:mod:`.pattern`), the title,
the certificate number and the kiosk request id, a QR code with the verification URL and code, and
"page k of n". The last page carries the attestation, the issue date (和暦), the 職責 and the seal.

Pure: the content, the verification data and the fonts in, PDF bytes out; no clock, no randomness
(reportlab's ``invariant`` mode keeps its own timestamp and document id fixed, so the same input
gives the same bytes). The request id and the certificate number are also written to the PDF's
metadata (no personal data there), where :func:`read_binding` finds them again.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from reportlab import rl_config
from reportlab.graphics.barcode import qrencoder
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from jlis.errors import InvalidInput, RuleViolation
from jlis.kiosk.content import CertificateContent
from jlis.kiosk.pdf import fonts as fonts_mod
from jlis.kiosk.pdf import pattern, seal
from jlis.masters.geography import is_valid_lg_code

# Streams compressed with Flate alone: reportlab's default adds ASCII85 on top, which makes files
# 25 % larger and, in pure Python, costs as much as the rest of a page. Process-wide by necessity.
rl_config.useA85 = 0

PAGE_W, PAGE_H = A4
MARGIN_X = 48.0
TOP = PAGE_H - 56.0
BOTTOM = 118.0  # the QR block and the footer live below this line
LABEL_W = 118.0
BODY_SIZE = 10.5
LABEL_SIZE = 9.5
LINE_H = 14.0
CELL_PAD = 4.0
QR_SIZE = 74.0
SEAL_SIZE = 58.0
IMAGE_BOX = 96.0  # a seal impression's frame, about 34 mm
INK = (0.05, 0.05, 0.08)
HEADING_FILL = (0.93, 0.94, 0.97)

NUMBER_RE = re.compile(r"^[A-Za-z0-9-]{1,32}$")
REQUEST_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
CODE_RE = re.compile(r"^[A-Z2-7]{16}$")
MAX_TITLE = 30
MAX_SECTIONS = 200
MAX_IMAGES = 4


@dataclass(frozen=True)
class Verification:
    """What the QR code and the verification block print: the public page and the document's code."""

    base_url: str
    code: str

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/verify"

    def qr_value(self, certificate_number: str) -> str:
        return f"{self.url}?{urlencode({'n': certificate_number, 'c': self.code})}"


@dataclass(frozen=True)
class Binding:
    """What ties a PDF to its request, as read back from its metadata."""

    certificate_number: str
    request_id: str


def wareki(day: dt.date) -> str:
    """令和8年11月26日 (令和 from 2019-05-01, 平成 before; 元年 for the first year)."""
    if day >= dt.date(2019, 5, 1):
        era, year = "令和", day.year - 2018
    elif day >= dt.date(1989, 1, 8):
        era, year = "平成", day.year - 1988
    else:
        era, year = "昭和", day.year - 1925
    return f"{era}{'元' if year == 1 else year}年{day.month}月{day.day}日"


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` (by character: Japanese has no spaces;
    explicit newlines are kept)."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for ch in para:
            if line and stringWidth(line + ch, font, size) > width:
                lines.append(line)
                line = ch
            else:
                line += ch
        lines.append(line)
    return lines


def check_content(content: CertificateContent, font: str) -> None:
    """Refuse what the layout cannot print faithfully; names the field and the rule."""
    if not NUMBER_RE.match(content.certificate_number or ""):
        raise InvalidInput("certificate_number", "1–32 characters of A–Z a–z 0–9 -")
    if not REQUEST_RE.match(content.request_id or ""):
        raise InvalidInput("request_id", "1–64 characters of A–Z a–z 0–9 . _ : -")
    if not is_valid_lg_code(content.lg_code):
        raise InvalidInput("lg_code", "must be a valid 6-digit 地方公共団体コード")
    if not content.title.strip() or len(content.title) > MAX_TITLE:
        raise InvalidInput("title", f"1–{MAX_TITLE} characters")
    if not content.issuer_title.strip():
        raise InvalidInput("issuer_title", "must not be empty")
    if not content.subject_name.strip():
        raise InvalidInput("subject_name", "must not be empty")
    if len(content.sections) > MAX_SECTIONS:
        raise InvalidInput("sections", f"at most {MAX_SECTIONS}")
    if len(content.images) > MAX_IMAGES:
        raise InvalidInput("images", f"at most {MAX_IMAGES}")
    for image in content.images:
        try:
            seal.check_png(image.png)
        except InvalidInput:
            raise InvalidInput("images", "each must be a readable PNG image") from None
    if content.seal_image_png is not None:
        seal.check_png(content.seal_image_png)
    texts: list[tuple[str, str]] = [
        ("title", content.title),
        ("issuer_title", content.issuer_title),
        ("subject_name", content.subject_name),
        ("attestation", content.attestation),
    ]
    texts += [("notes", n) for n in content.notes]
    texts += [("images", image.label) for image in content.images]
    for section in content.sections:
        texts.append(("sections", section.heading or ""))
        for row in section.rows:
            texts += [("sections", row.label), ("sections", row.value)]
    for field, text in texts:
        missing = fonts_mod.missing_glyphs(text, font)
        if missing:
            raise InvalidInput(field, f"characters the certificate font cannot print: {''.join(missing)}")


# --- layout -------------------------------------------------------------------------------------

Draw = Callable[[Canvas, float], None]  # draws a block whose top edge is at y


@dataclass(frozen=True)
class Block:
    height: float
    draw: Draw
    keep_with_next: bool = False


class _Layout:
    def __init__(self, content: CertificateContent, regular: str, bold: str) -> None:
        self.content = content
        self.regular = regular
        self.bold = bold

    def blocks(self) -> list[Block]:
        out: list[Block] = []
        for section in self.content.sections:
            if section.heading:
                out.append(self._heading(section.heading))
            out.extend(self._row(r.label, r.value) for r in section.rows)
            out.append(Block(8.0, lambda c, y: None))
        for image in self.content.images:
            out.append(self._image(image.label, image.png))
        if self.content.images:
            out.append(Block(8.0, lambda c, y: None))
        for note in self.content.notes:
            out.append(self._paragraph("※" + note, 9.0, self.regular))
        out.append(self._closing())
        return out

    def _heading(self, text: str) -> Block:
        def draw(c: Canvas, y: float) -> None:
            c.setFillColorRGB(*HEADING_FILL)
            c.rect(MARGIN_X, y - 20, PAGE_W - 2 * MARGIN_X, 20, stroke=0, fill=1)
            c.setFillColorRGB(*INK)
            c.setFont(self.bold, 11)
            c.drawString(MARGIN_X + CELL_PAD, y - 14.5, text)

        return Block(22.0, draw, keep_with_next=True)

    def _row(self, label: str, value: str) -> Block:
        value_w = PAGE_W - 2 * MARGIN_X - LABEL_W - 2 * CELL_PAD
        label_lines = wrap(label, self.regular, LABEL_SIZE, LABEL_W - 2 * CELL_PAD)
        value_lines = wrap(value, self.regular, BODY_SIZE, value_w)
        height = max(len(label_lines), len(value_lines)) * LINE_H + 2 * CELL_PAD

        def draw(c: Canvas, y: float) -> None:
            c.setStrokeColorRGB(0.55, 0.58, 0.65)
            c.setLineWidth(0.5)
            c.rect(MARGIN_X, y - height, PAGE_W - 2 * MARGIN_X, height, stroke=1, fill=0)
            c.line(MARGIN_X + LABEL_W, y, MARGIN_X + LABEL_W, y - height)
            c.setFillColorRGB(*INK)
            c.setFont(self.regular, LABEL_SIZE)
            for i, line in enumerate(label_lines):
                c.drawString(MARGIN_X + CELL_PAD, y - CELL_PAD - 10.5 - i * LINE_H, line)
            c.setFont(self.regular, BODY_SIZE)
            for i, line in enumerate(value_lines):
                c.drawString(MARGIN_X + LABEL_W + CELL_PAD, y - CELL_PAD - 10.5 - i * LINE_H, line)

        return Block(height, draw)

    def _image(self, label: str, png: bytes) -> Block:
        """A labelled picture, e.g. the registered seal impression (登録印影) of a 印鑑登録証明書, fitted
        into a framed box with its proportions kept."""
        reader = ImageReader(io.BytesIO(png))
        width_px, height_px = reader.getSize()
        scale = min(IMAGE_BOX / width_px, IMAGE_BOX / height_px)
        w, h = width_px * scale, height_px * scale
        height = IMAGE_BOX + 2 * CELL_PAD + 8

        def draw(c: Canvas, y: float) -> None:
            c.setStrokeColorRGB(0.55, 0.58, 0.65)
            c.setLineWidth(0.5)
            c.rect(MARGIN_X, y - height, PAGE_W - 2 * MARGIN_X, height, stroke=1, fill=0)
            c.line(MARGIN_X + LABEL_W, y, MARGIN_X + LABEL_W, y - height)
            c.setFillColorRGB(*INK)
            c.setFont(self.regular, LABEL_SIZE)
            c.drawString(MARGIN_X + CELL_PAD, y - CELL_PAD - 10.5, label)
            box_x = MARGIN_X + LABEL_W + CELL_PAD + 4
            box_y = y - height + CELL_PAD + 4
            c.rect(box_x, box_y, IMAGE_BOX, IMAGE_BOX, stroke=1, fill=0)
            c.drawImage(reader, box_x + (IMAGE_BOX - w) / 2, box_y + (IMAGE_BOX - h) / 2, w, h, mask="auto")

        return Block(height, draw)

    def _paragraph(self, text: str, size: float, font: str) -> Block:
        lines = wrap(text, font, size, PAGE_W - 2 * MARGIN_X)
        height = len(lines) * (size + 4) + 4

        def draw(c: Canvas, y: float) -> None:
            c.setFillColorRGB(*INK)
            c.setFont(font, size)
            for i, line in enumerate(lines):
                c.drawString(MARGIN_X, y - size - i * (size + 4), line)

        return Block(height, draw)

    def _closing(self) -> Block:
        content = self.content
        attestation = wrap(content.attestation, self.regular, 11, PAGE_W - 2 * MARGIN_X)
        height = len(attestation) * 16 + 24 + SEAL_SIZE + 8

        def draw(c: Canvas, y: float) -> None:
            c.setFillColorRGB(*INK)
            c.setFont(self.regular, 11)
            top = y - 18
            for i, line in enumerate(attestation):
                c.drawString(MARGIN_X, top - i * 16, line)
            top -= len(attestation) * 16 + 6
            c.setFont(self.regular, 10.5)
            c.drawString(MARGIN_X + 16, top, wareki(content.issued_on))
            base = top - SEAL_SIZE / 2 - 6
            c.setFont(self.bold, 14)
            title_w = stringWidth(content.issuer_title, self.bold, 14)
            right = PAGE_W - MARGIN_X - SEAL_SIZE * 0.55
            c.drawString(right - title_w, base, content.issuer_title)
            # The seal overlaps the end of the office's name, as on a real certificate.
            seal.draw(
                c,
                right - SEAL_SIZE * 0.45,
                base - SEAL_SIZE / 2 + 4,
                SEAL_SIZE,
                content.issuer_title,
                self.bold,
                content.seal_image_png,
            )

        return Block(height, draw)


def _paginate(blocks: Iterable[Block], first_top: float, top: float) -> list[list[tuple[Block, float]]]:
    pages: list[list[tuple[Block, float]]] = [[]]
    y = first_top
    pending: list[Block] = []
    for block in blocks:
        pending.append(block)
        if block.keep_with_next:
            continue
        need = sum(b.height for b in pending)
        if y - need < BOTTOM and pages[-1]:
            pages.append([])
            y = top
        for b in pending:
            pages[-1].append((b, y))
            y -= b.height
        pending = []
    return pages


def _draw_header(c: Canvas, content: CertificateContent, bold: str, regular: str, first: bool) -> float:
    c.setFillColorRGB(*INK)
    if first:
        c.setFont(bold, 22)
        c.drawCentredString(PAGE_W / 2, TOP - 22, content.title)
        c.setFont(regular, 9)
        c.drawRightString(PAGE_W - MARGIN_X, TOP - 44, f"証明書番号 {content.certificate_number}")
        c.drawRightString(PAGE_W - MARGIN_X, TOP - 56, f"発行日 {wareki(content.issued_on)}")
        return TOP - 70
    c.setFont(bold, 12)
    c.drawString(MARGIN_X, TOP - 12, f"{content.title}(続き)")
    c.setFont(regular, 9)
    c.drawRightString(PAGE_W - MARGIN_X, TOP - 12, f"証明書番号 {content.certificate_number}")
    return TOP - 26


def draw_qr(c: Canvas, value: str, x: float, y: float, size: float) -> None:
    """A QR code (error correction M) of ``size`` pt on a white quiet zone, drawn as one path."""
    qr = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    qr.addData(value)
    qr.make()
    n = qr.getModuleCount()
    quiet = 2
    module = size / (n + 2 * quiet)
    c.saveState()
    c.setFillColorRGB(1, 1, 1)
    c.rect(x, y, size, size, stroke=0, fill=1)
    c.setFillColorRGB(0, 0, 0)
    m = f"{module:.3f}"
    rects = [
        f"{x + (quiet + col) * module:.3f} {y + size - (quiet + row + 1) * module:.3f} {m} {m} re"
        for row in range(n)
        for col in range(n)
        if qr.isDark(row, col)
    ]
    c.addLiteral(" ".join(rects) + " f")  # formatted here: reportlab's per-number formatting is slow
    c.restoreState()


def _draw_footer(
    c: Canvas, content: CertificateContent, verification: Verification, regular: str, page: int, pages: int
) -> None:
    draw_qr(c, verification.qr_value(content.certificate_number), MARGIN_X, 26, QR_SIZE)
    c.setFillColorRGB(*INK)
    text_x = MARGIN_X + QR_SIZE + 12
    c.setFont(regular, 8.5)
    lines = (
        "この証明書は、次のページで真正性を確認できます(QRコードからも開けます)。",
        f"確認ページ {verification.url}",
        f"証明書番号 {content.certificate_number}    照合番号 {verification.code}",
        "地紋に「複写」のけん制文字があります。複写すると文字が現れます。電子署名付きPDFです。",
        f"請求番号 {content.request_id}",
    )
    for i, line in enumerate(lines):
        c.drawString(text_x, 26 + QR_SIZE - 10 - i * 13, line)
    c.setFont(regular, 8)
    c.drawRightString(PAGE_W - MARGIN_X, 14, f"{page} / {pages}")


def render_certificate(
    content: CertificateContent, *, verification: Verification, fonts: fonts_mod.FontSet | None = None
) -> bytes:
    """The certificate as an unsigned PDF (sign it with :func:`jlis.kiosk.pdf.signing.sign_pdf`)."""
    return render_with_pages(content, verification=verification, fonts=fonts)[0]


def render_with_pages(
    content: CertificateContent, *, verification: Verification, fonts: fonts_mod.FontSet | None = None
) -> tuple[bytes, int]:
    """:func:`render_certificate` and the number of pages."""
    if not CODE_RE.match(verification.code or ""):
        raise InvalidInput("verification_code", "16 characters of A–Z 2–7")
    font_set = fonts or fonts_mod.default_fonts()
    regular, bold = fonts_mod.register(font_set)
    check_content(content, regular)
    layout = _Layout(content, regular, bold)
    pages = _paginate(layout.blocks(), TOP - 70, TOP - 26)
    buf = io.BytesIO()
    c = Canvas(
        buf,
        pagesize=A4,
        invariant=True,
        pageCompression=1,
        initialFontName=regular,
        initialFontSize=BODY_SIZE,
    )
    c.setTitle(content.title)
    c.setAuthor(content.issuer_title)
    c.setSubject(f"certificate_number={content.certificate_number}; request_id={content.request_id}")
    c.setCreator("jlis kiosk certificate server")
    c.setKeywords(
        f"jlis-certificate-number:{content.certificate_number} jlis-request-id:{content.request_id}"
    )
    for n, placed in enumerate(pages, start=1):
        _draw_header(c, content, bold, regular, first=n == 1)
        for block, y in placed:
            block.draw(c, y)
        _draw_footer(c, content, verification, regular, n, len(pages))
        c.showPage()
    c.save()
    return pattern.apply(buf.getvalue(), font_set.bold, PAGE_W, PAGE_H, len(pages)), len(pages)


_KEYWORDS = re.compile(r"jlis-certificate-number:(\S+) jlis-request-id:(\S+)")


def read_binding(pdf: bytes) -> Binding:
    """The certificate number and request id a PDF was rendered for (from its metadata): each hop
    that passes the PDF on checks them against its own request."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        try:
            info = reader.trailer["/Info"]  # TrailerDictionary has no .get()
        except KeyError:
            info = None
        keywords = str(info.get("/Keywords", "")) if info is not None else ""
    except Exception:
        raise InvalidInput("pdf", "must be a readable PDF") from None
    m = _KEYWORDS.search(keywords)
    if m is None:
        raise InvalidInput("pdf", "must be a jlis certificate (no binding in its metadata)")
    return Binding(m.group(1), m.group(2))


def check_binding(pdf: bytes, *, certificate_number: str, request_id: str) -> Binding:
    """Each hop's check that a PDF answers its own request: the binding in the PDF must name this
    request id and certificate number, else ``RuleViolation`` (fails closed: a mismatch is never
    passed on to the kiosk)."""
    binding = read_binding(pdf)
    if binding.request_id != request_id:
        raise RuleViolation("request_id", "the PDF must answer this request")
    if binding.certificate_number != certificate_number:
        raise RuleViolation("certificate_number", "the PDF must be this certificate")
    return binding
