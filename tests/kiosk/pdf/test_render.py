"""The layout, read back by independent tools: pypdf for text and fonts, poppler's pdftoppm and
pdffonts for rendering and embedding."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from jlis.errors import InvalidInput
from jlis.kiosk.content import Row, Section
from jlis.kiosk.pdf.render import (
    Verification,
    read_binding,
    render_certificate,
    render_with_pages,
    wareki,
    wrap,
)

from ...conftest import require_or_skip
from .conftest import SUBJECT, make_content

VERIFY = Verification("http://jlis.test:8000", "ABCDEFGHJKMNPQRS")


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_text_names_the_subject_number_request_and_verification() -> None:
    pdf = render_certificate(make_content(), verification=VERIFY)
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    for expected in (
        "住民票の写し",
        "髙橋",
        "𠮷郎",
        "131016-2026-000001",
        "REQ-0001",
        "ABCDEFGHJKMNPQRS",
        "http://jlis.test:8000/verify",
        "東京都千代田区長",
        "令和8年11月26日",
        "この写しは、住民票の原本と相違ないことを証明する。",
        "個人番号の記載を省略しています。",
    ):
        assert expected in text, expected


def test_a4_and_every_font_embedded() -> None:
    reader = PdfReader(io.BytesIO(render_certificate(make_content(), verification=VERIFY)))
    page = reader.pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
    fonts = page["/Resources"]["/Font"]
    assert fonts
    for ref in fonts.values():
        font = ref.get_object()
        descriptor = font["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, font["/BaseFont"]  # embedded TrueType program
        assert "NotoSansJP" in str(font["/BaseFont"])


def test_pdffonts_and_pdftoppm_render_the_page(tmp_path: Path) -> None:
    require_or_skip(
        shutil.which("pdftoppm") is not None and shutil.which("pdffonts") is not None, "poppler-utils"
    )
    path = tmp_path / "c.pdf"
    path.write_bytes(render_certificate(make_content(), verification=VERIFY))
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert rows and all(r[-5] == "yes" for r in rows), fonts  # the "emb" column
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")], check=True
    )
    png = next(tmp_path.glob("p*.png"))
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG")
    # A page of text and pattern: far from blank, and not a single colour.
    from PIL import Image

    with Image.open(png) as img:
        assert img.size[0] > 250 and img.size[1] > 350
        lo, hi = img.convert("L").getextrema()
        assert lo < 60 and hi > 240


def test_same_input_same_bytes_and_binding_read_back() -> None:
    a = render_certificate(make_content(), verification=VERIFY)
    b = render_certificate(make_content(), verification=VERIFY)
    assert a == b
    binding = read_binding(a)
    assert (binding.certificate_number, binding.request_id) == ("131016-2026-000001", "REQ-0001")
    other = render_certificate(make_content(request_id="REQ-0002"), verification=VERIFY)
    assert read_binding(other).request_id == "REQ-0002"


def test_metadata_carries_no_personal_data() -> None:
    meta = PdfReader(io.BytesIO(render_certificate(make_content(), verification=VERIFY))).metadata
    assert meta is not None
    assert all("髙橋" not in str(v) for v in meta.values())


def test_long_content_continues_on_numbered_pages() -> None:
    pdf, pages = render_with_pages(make_content(rows=40), verification=VERIFY)
    assert pages >= 2
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == pages
    last = reader.pages[-1].extract_text()
    assert f"{pages} / {pages}" in last
    assert "この写しは、住民票の原本と相違ないことを証明する。" in last
    assert "髙橋 子40" in _text(pdf)
    for page in reader.pages:  # number, request and code on every page
        text = page.extract_text()
        assert "131016-2026-000001" in text and "REQ-0001" in text and "ABCDEFGHJKMNPQRS" in text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"certificate_number": "no spaces allowed"}, "certificate_number"),
        ({"request_id": ""}, "request_id"),
        ({"lg_code": "131015"}, "lg_code"),
        ({"subject_name": " "}, "subject_name"),
        ({"title": "長" * 31}, "title"),
        ({"subject_name": "髙橋 \U000f0000郎"}, "subject_name"),  # a private-use 外字 the font lacks
        ({"sections": (Section(None, (Row("氏名", "\U000f0001"),)),)}, "sections"),
    ],
)
def test_refuses_what_it_cannot_print(change: dict[str, object], field: str) -> None:
    content = dataclasses.replace(make_content(), **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as err:
        render_certificate(content, verification=VERIFY)
    assert err.value.field == field


def test_refuses_a_malformed_verification_code() -> None:
    with pytest.raises(InvalidInput) as err:
        render_certificate(make_content(), verification=Verification("http://x", "short"))
    assert err.value.field == "verification_code"


def test_read_binding_refuses_other_files() -> None:
    with pytest.raises(InvalidInput):
        read_binding(b"not a pdf")


def test_wareki_and_wrap() -> None:
    assert wareki(dt.date(2026, 11, 26)) == "令和8年11月26日"
    assert wareki(dt.date(2019, 5, 1)) == "令和元年5月1日"
    assert wareki(dt.date(2019, 4, 30)) == "平成31年4月30日"
    assert wareki(dt.date(1989, 1, 7)) == "昭和64年1月7日"
    from jlis.kiosk.pdf import fonts

    regular, _ = fonts.register(fonts.default_fonts())
    lines = wrap("あ" * 50 + "\n" + "い", regular, 10, 100)
    assert "".join(lines) == "あ" * 50 + "い"
    assert all(len(line) <= 10 for line in lines) and lines[-1] == "い"
    assert SUBJECT  # the fixture's name uses 𠮷, which the font must cover


def test_concurrent_renders_in_threads_each_name_their_own_subject() -> None:
    """reportlab keeps per-document font state inside shared font objects: documents rendered at the
    same time in threads (as a server's thread pool does) must not mix their text or subsets."""
    from concurrent.futures import ThreadPoolExecutor

    kanji = "一二三四五六七八九十百千万太花美恵和正雄春夏秋冬"
    names = [f"髙橋 {kanji[i]}{kanji[(i * 7 + 3) % len(kanji)]}郎" for i in range(24)]

    def one(i: int) -> tuple[int, bytes]:
        content = make_content(number=f"131016-2026-{i:06d}", request_id=f"REQ-{i:04d}", subject=names[i])
        return i, render_certificate(content, verification=VERIFY)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(len(names))))
    for i, pdf in results:
        text = _text(pdf)
        assert names[i] in text
        assert f"REQ-{i:04d}" in text and read_binding(pdf).request_id == f"REQ-{i:04d}"
        others = [n for j, n in enumerate(names) if j != i]
        assert not any(n in text for n in others)


def _png(size: tuple[int, int], colour: tuple[int, int, int, int] = (200, 20, 30, 255)) -> bytes:
    from PIL import Image as PilImage

    buf = io.BytesIO()
    PilImage.new("RGBA", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_images_such_as_a_registered_seal_impression_are_printed_with_their_label() -> None:
    from jlis.kiosk.content import CertificateKind, Image

    content = make_content(
        kind=CertificateKind.SEAL,
        title="印鑑登録証明書",
        images=(Image("登録印影", _png((160, 120))),),
    )
    pdf = render_certificate(content, verification=VERIFY)
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert "登録印影" in page.extract_text()
    pictures = [x.get_object() for x in page["/Resources"]["/XObject"].values()]
    assert any(p["/Subtype"] == "/Image" and (p["/Width"], p["/Height"]) == (160, 120) for p in pictures)


def test_a_broken_image_is_refused() -> None:
    from jlis.kiosk.content import Image

    broken = Image("登録印影", b"\x89PNG\r\n\x1a\n" + b"truncated")  # the signature, then junk
    with pytest.raises(InvalidInput) as err:
        render_certificate(make_content(images=(broken,)), verification=VERIFY)
    assert err.value.field == "images"


def test_the_qr_code_decodes_to_the_verification_link(tmp_path: Path) -> None:
    """zbar (Debian zbar-tools) reads the QR code off a 150 dpi rendering of the page."""
    require_or_skip(
        shutil.which("pdftoppm") is not None and shutil.which("zbarimg") is not None, "zbar-tools"
    )
    path = tmp_path / "c.pdf"
    path.write_bytes(render_certificate(make_content(), verification=VERIFY))
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "q")], check=True
    )
    png = next(tmp_path.glob("q*.png"))
    out = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True)
    assert out.stdout.strip() == "http://jlis.test:8000/verify?n=131016-2026-000001&c=ABCDEFGHJKMNPQRS"


def test_check_binding_refuses_another_requests_pdf() -> None:
    from jlis.errors import RuleViolation
    from jlis.kiosk.pdf.render import check_binding

    pdf = render_certificate(make_content(), verification=VERIFY)
    assert (
        check_binding(pdf, certificate_number="131016-2026-000001", request_id="REQ-0001").request_id
        == "REQ-0001"
    )
    with pytest.raises(RuleViolation) as other_request:
        check_binding(pdf, certificate_number="131016-2026-000001", request_id="REQ-0002")
    assert other_request.value.field == "request_id"
    with pytest.raises(RuleViolation) as other_number:
        check_binding(pdf, certificate_number="131016-2026-000002", request_id="REQ-0001")
    assert other_number.value.field == "certificate_number"
