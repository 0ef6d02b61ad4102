"""The ground pattern (地紋, けん制文字) of a certificate page (facts §6.4).

The page is covered by a screen of fine dots; inside the shapes of a latent word (「複写」, repeated
across the page) the screen is made of fewer, larger dots of the same tone, so on the original the
word is hard to see. A copier drops the fine dots and keeps the large ones, so on a photocopy the word
stands out. The word is a clip path made of glyph outlines from the font, not text.

How it is written: as PDF tiling patterns (PatternType 1), added to the rendered PDF by
:func:`apply` with pyHanko's writer before signing — the fine screen, the coarse screen, and the
latent layer (one page-sized cell: the word outlines as a clip, white inside, the coarse screen over
it); each page's content starts with two rectangles painted with them. Patterns, not form XObjects
drawn tile by tile, because text extractors (pypdf) re-parse a form's content at every use but
never look into patterns: extracting a certificate's text takes milliseconds, not seconds (the
issue's concurrency test reads the text of a thousand PDFs). The pattern streams are the same in
every document, so they are built and compressed once per process.

This imitates the technique on screen and in the PDF; whether a given printer and copier reproduce
the effect is not something a test here can prove (a simulated copy is: tests/kiosk/pdf).
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

from fontTools.pens.basePen import BasePen
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic

from jlis.kiosk.pdf.writer import ClockedPdfWriter

LATENT_WORD = "複写"


@dataclass(frozen=True)
class Screen:
    dot: float  # side of a square dot, pt
    pitch: float  # distance between dots, pt


# Equal coverage (dot² / pitch²): 0.44²/1.76² = 6.25 %, 1.1²/4.4² = 6.25 %.
FINE = Screen(dot=0.44, pitch=1.76)
COARSE = Screen(dot=1.1, pitch=4.4)
TILE = 35.2  # 20 fine and 8 coarse pitches, so tiles join without seams
TINT = (0.45, 0.55, 0.72)
WORD_SIZE = 64.0
WORD_ANGLE = 30.0

Op = tuple[str, tuple[float, ...]]


def _num(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def _rgb() -> str:
    return " ".join(_num(v) for v in TINT) + " rg"


@functools.cache
def _screen_code(screen: Screen) -> str:
    steps = round(TILE / screen.pitch)
    d = _num(screen.dot)
    at = [_num(i * screen.pitch) for i in range(steps)]
    rects = [f"{x} {y} {d} {d} re" for x in at for y in at]
    return f"{_rgb()} " + " ".join(rects) + " f"


class _OutlinePen(BasePen):
    """Records a glyph as move/line/cubic/close operations (BasePen turns quadratics into cubics)."""

    def __init__(self, glyph_set: object) -> None:
        super().__init__(glyph_set)
        self.ops: list[Op] = []

    def _moveTo(self, pt: tuple[float, float]) -> None:
        self.ops.append(("M", pt))

    def _lineTo(self, pt: tuple[float, float]) -> None:
        self.ops.append(("L", pt))

    def _curveToOne(self, p1: tuple[float, float], p2: tuple[float, float], p3: tuple[float, float]) -> None:
        self.ops.append(("C", (*p1, *p2, *p3)))

    def _closePath(self) -> None:
        self.ops.append(("Z", ()))


@functools.cache
def word_outline(font_file: str, word: str = LATENT_WORD) -> tuple[tuple[Op, ...], float]:
    """The outline of ``word`` at 1 pt (operations in pt, origin at the baseline) and its advance."""
    font = TTFont(font_file, lazy=True)
    scale = 1.0 / font["head"].unitsPerEm
    glyphs = font.getGlyphSet()
    cmap = font.getBestCmap()
    ops: list[Op] = []
    x = 0.0
    for ch in word:
        name = cmap[ord(ch)]
        pen = _OutlinePen(glyphs)
        glyphs[name].draw(pen)
        for op, pts in pen.ops:
            ops.append((op, tuple(v * scale + (x if i % 2 == 0 else 0.0) for i, v in enumerate(pts))))
        x += glyphs[name].width * scale
    return tuple(ops), x


def _placed(ops: tuple[Op, ...], x0: float, y0: float, size: float) -> list[Op]:
    # A tenth of a point is far below what prints; fewer digits keep the PDF small.
    return [
        (op, tuple(round(v * size + (x0 if i % 2 == 0 else y0), 1) for i, v in enumerate(pts)))
        for op, pts in ops
    ]


def _on_page(x: float, y: float, length: float, width: float, height: float) -> bool:
    """Whether a word placed at (x, y) in the rotated frame touches the page at all."""
    cos, sin = math.cos(math.radians(WORD_ANGLE)), math.sin(math.radians(WORD_ANGLE))
    corners = [(x + dx, y + dy) for dx in (0.0, length) for dy in (-0.2 * WORD_SIZE, 0.9 * WORD_SIZE)]
    xs = [px * cos - py * sin for px, py in corners]
    ys = [px * sin + py * cos for px, py in corners]
    return max(xs) > 0 and min(xs) < width and max(ys) > 0 and min(ys) < height


@functools.cache
def latent_outline(font_file: str, width: float, height: float) -> tuple[Op, ...]:
    """Every latent word that touches a page of ``width`` × ``height``, in the rotated frame (the
    same for every document: computed once per process)."""
    ops, advance = word_outline(font_file)
    out: list[Op] = []
    row = 0
    y = -height
    while y < height * 1.2:
        x = -width * 0.2 + (row % 2) * WORD_SIZE * 1.5
        while x < width * 1.4:
            if _on_page(x, y, advance * WORD_SIZE, width, height):
                out.extend(_placed(ops, x, y, WORD_SIZE))
            x += advance * WORD_SIZE + WORD_SIZE * 1.2
        y += WORD_SIZE * 2.2
        row += 1
    return tuple(out)


@functools.cache
def latent_path_code(font_file: str, width: float, height: float) -> str:
    """:func:`latent_outline` as PDF path operators, formatted once per process (formatting tens of
    thousands of numbers per document was most of a certificate's rendering time)."""
    parts: list[str] = []
    for op, p in latent_outline(font_file, width, height):
        nums = " ".join(f"{v:.1f}".rstrip("0").rstrip(".") for v in p)
        parts.append({"M": f"{nums} m", "L": f"{nums} l", "C": f"{nums} c", "Z": "h"}[op])
    return " ".join(parts)


def _rotation(angle: float) -> str:
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return f"{cos:.6f} {sin:.6f} {-sin:.6f} {cos:.6f} 0 0 cm"


def _stream(entries: dict[str, generic.PdfObject], data: str) -> generic.StreamObject:
    stream = generic.StreamObject(
        {generic.NameObject(k): v for k, v in entries.items()}, encoded_data=_deflate(data)
    )
    stream[generic.NameObject("/Filter")] = generic.NameObject("/FlateDecode")
    return stream


@functools.cache
def _deflate(data: str) -> bytes:
    return zlib.compress(data.encode("latin-1"), 6)


def _tiling(
    cell_w: float, cell_h: float, content: str, resources: generic.DictionaryObject
) -> generic.StreamObject:
    return _stream(
        {
            "/Type": generic.NameObject("/Pattern"),
            "/PatternType": generic.NumberObject(1),
            "/PaintType": generic.NumberObject(1),  # coloured: the cell sets its own colour
            "/TilingType": generic.NumberObject(1),
            "/BBox": generic.ArrayObject([generic.FloatObject(v) for v in (0, 0, cell_w, cell_h)]),
            "/XStep": generic.FloatObject(cell_w),
            "/YStep": generic.FloatObject(cell_h),
            "/Resources": resources,
        },
        content,
    )


def _latent_code(font_file: str, width: float, height: float) -> str:
    w, h = _num(width), _num(height)
    return (
        f"q {_rotation(WORD_ANGLE)} {latent_path_code(font_file, width, height)} W n "
        f"{_rotation(-WORD_ANGLE)} 1 1 1 rg 0 0 {w} {h} re f "
        f"/Pattern cs /JlisCoarse scn 0 0 {w} {h} re f Q"
    )


def apply(pdf: bytes, outline_font: Path, width: float, height: float, pages: int) -> bytes:
    """``pdf`` with the ground pattern under the content of each of its ``pages`` pages (an
    incremental update, before the signature). ``outline_font`` is a TrueType file whose glyphs
    shape the latent word."""
    writer = ClockedPdfWriter(pdf, at=None)  # part of rendering: /Info stays as rendered
    # The second /ID entry names this revision; pyHanko draws it from os.urandom. Derived from the
    # input instead, so that rendering stays a pure function (same content, same bytes).
    first_id = writer.document_id[0]
    revision_id = hashlib.sha256(pdf).digest()[:16]
    writer._document_id = generic.ArrayObject(  # no public setter
        [generic.ByteStringObject(first_id), generic.ByteStringObject(revision_id)]
    )
    no_resources = generic.DictionaryObject()
    fine = writer.add_object(_tiling(TILE, TILE, _screen_code(FINE), no_resources))
    coarse = writer.add_object(_tiling(TILE, TILE, _screen_code(COARSE), no_resources))
    latent_resources = generic.DictionaryObject(
        {
            generic.NameObject("/Pattern"): generic.DictionaryObject(
                {generic.NameObject("/JlisCoarse"): coarse}
            )
        }
    )
    latent = writer.add_object(
        _tiling(width, height, _latent_code(str(outline_font), width, height), latent_resources)
    )
    w, h = _num(width), _num(height)
    background = writer.add_object(
        _stream({}, f"q /Pattern cs /JlisFine scn 0 0 {w} {h} re f /JlisLatent scn 0 0 {w} {h} re f Q\n")
    )
    for index in range(pages):
        page_ref, _ = writer.find_page_for_modification(index)
        page = page_ref.get_object()
        raw = page.raw_get("/Resources")
        resources = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
        patterns = generic.DictionaryObject(
            {generic.NameObject("/JlisFine"): fine, generic.NameObject("/JlisLatent"): latent}
        )
        resources[generic.NameObject("/Pattern")] = patterns
        if isinstance(raw, generic.IndirectObject):
            writer.update_container(resources)
        contents = page.raw_get("/Contents")
        existing = list(contents) if isinstance(contents, generic.ArrayObject) else [contents]
        page[generic.NameObject("/Contents")] = generic.ArrayObject([background, *existing])
        writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
