from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from jlis.errors import InvalidInput
from jlis.kiosk.pdf import pattern, seal
from jlis.kiosk.pdf.render import Verification, render_certificate

from ...conftest import require_or_skip
from .conftest import make_content


def test_two_screens_have_the_same_tone() -> None:
    """The latent word must not show on the original: both screens cover the same share of paper."""

    def coverage(s: pattern.Screen) -> float:
        return (s.dot / s.pitch) ** 2

    assert coverage(pattern.FINE) == pytest.approx(coverage(pattern.COARSE), rel=0.05)
    assert pattern.COARSE.dot > 2 * pattern.FINE.dot  # the copier keeps the large dots only
    for screen in (pattern.FINE, pattern.COARSE):
        assert (pattern.TILE / screen.pitch) == pytest.approx(round(pattern.TILE / screen.pitch))


def test_page_paints_the_screens_and_the_latent_word_as_tiling_patterns() -> None:
    pdf = render_certificate(make_content(), verification=Verification("http://x", "ABCDEFGHJKMNPQRS"))
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    patterns = page["/Resources"]["/Pattern"]
    fine = patterns["/JlisFine"].get_object()
    latent = patterns["/JlisLatent"].get_object()
    assert fine["/PatternType"] == 1 and float(fine["/XStep"]) == pytest.approx(pattern.TILE)
    assert float(latent["/XStep"]) == pytest.approx(float(page.mediabox.width))  # one cell per page
    first = page["/Contents"][0].get_object().get_data().decode("latin-1")
    assert first.index("/JlisFine scn") < first.index("/JlisLatent scn")  # under everything else
    code = latent.get_data().decode("latin-1")
    assert " W n" in code  # the word outlines become the clip path (nonzero rule)
    assert "BT" not in code  # outlines, not text: the pattern is not in the document's text
    assert code.index(" W n") < code.index("/JlisCoarse scn")
    assert "/JlisCoarse" in latent["/Resources"]["/Pattern"]
    assert page.extract_text().count("複写") == 2  # only the explanation in the footer (it says it twice)


def test_seal_text_drops_the_prefecture() -> None:
    assert seal.seal_text("東京都千代田区長") == "千代田区長之印"
    assert seal.seal_text("北海道札幌市中央区長") == "札幌市中央区長之印"
    assert seal.seal_text("京都府京都市長") == "京都市長之印"
    assert seal.seal_text("神奈川県横浜市長") == "横浜市長之印"


def test_seal_image_must_be_a_png() -> None:
    with pytest.raises(InvalidInput) as err:
        seal.check_png(b"GIF89a....")
    assert err.value.field == "seal_image_png"


def test_a_given_seal_image_is_drawn() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), (200, 20, 30, 255)).save(buf, format="PNG")
    content = make_content(seal_image_png=buf.getvalue())
    pdf = render_certificate(content, verification=Verification("http://x", "ABCDEFGHJKMNPQRS"))
    page = PdfReader(io.BytesIO(pdf)).pages[-1]
    images = [x for x in page["/Resources"]["/XObject"].values() if x.get_object()["/Subtype"] == "/Image"]
    assert images


def test_a_simulated_photocopy_reveals_the_latent_word(tmp_path: Path) -> None:
    """Rasterise the page at 300 dpi with poppler, then imitate a copier that loses dots finer than
    its resolution (an erosion of 3×3 px). In a blank band of the page the original's tone is even
    from block to block; on the copy the fine screen is gone and the coarse dots of the latent words
    remain, so the blocks become very uneven: the word shows."""
    require_or_skip(shutil.which("pdftoppm") is not None, "poppler-utils (pdftoppm)")
    from PIL import Image, ImageFilter, ImageStat

    path = tmp_path / "c.pdf"
    path.write_bytes(
        render_certificate(make_content(), verification=Verification("http://x", "ABCDEFGHJKMNPQRS"))
    )
    subprocess.run(
        ["pdftoppm", "-r", "300", "-gray", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")],
        check=True,
    )
    with Image.open(next(tmp_path.glob("p*.png"))) as img:
        page = img.convert("L")
    w, h = page.size
    band = (int(w * 0.1), int(h * 0.66), int(w * 0.9), int(h * 0.84))  # below the seal, above the QR
    original = page.crop(band)
    copy = original.filter(ImageFilter.MaxFilter(3))

    def block_darkness(image: Image.Image) -> list[float]:
        size = 60
        out = []
        for x in range(0, image.width - size, size):
            for y in range(0, image.height - size, size):
                out.append(255 - ImageStat.Stat(image.crop((x, y, x + size, y + size))).mean[0])
        return out

    def spread(values: list[float]) -> float:
        mean = sum(values) / len(values)
        return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 / max(mean, 1e-9)

    before, after = block_darkness(original), block_darkness(copy)
    assert min(before) > 0  # the original is tinted everywhere
    assert spread(before) < 0.15  # and even (about 6 % here): the word is hard to see
    assert sum(v < 0.3 for v in after) > len(after) // 2  # the copy loses the fine screen...
    assert sum(v > 0.6 for v in after) > len(after) // 10  # ...but keeps the word's coarse dots
    assert spread(after) > 5 * spread(before)
