"""The Japanese font of the certificate PDFs: Noto Sans JP, embedded (subset) in every PDF.

Why this font: it comes from PyPI with the project's own install (the ``justmytype-intl-cjk``
package ships Google Fonts' ``NotoSansJP[wght].ttf``, SIL OFL 1.1), so a fresh machine needs no
Debian font package; it has TrueType outlines, which reportlab can subset and embed (the OpenType/CFF
Noto fonts of Debian and of other PyPI packages cannot be); and it covers Adobe-Japan1, including
the 異体字 our synthetic residents carry (髙, 𠮷, 﨑) that IPAex lacks (𠮷).

The file is a variable font whose default instance is Thin (wght 100): too faint for print. On first
use we make static Regular (400) and Bold (700) instances with fontTools (about 10 s each, once per
machine) and cache them under ``$XDG_CACHE_HOME/jlis/fonts`` (``~/.cache/jlis/fonts``), keyed by the
source file's hash. Any static TrueType font can be used instead (:class:`FontSet`), e.g. Debian's
IPAex Mincho (``/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont

from jlis.errors import NotFound

FONT_PACKAGE = "justmytype_intl_cjk"
VARIABLE_FONT = ("fonts", "ofl", "notosansjp", "NotoSansJP[wght].ttf")
REGULAR_WEIGHT = 400
BOLD_WEIGHT = 700

_lock = threading.Lock()


def _to_unicode_cmap(fontname: str, subset: list[int]) -> str:
    """reportlab's ToUnicode CMap writes a code point beyond the BMP as 5 hex digits (<20BB7>), which
    PDF readers reject, so 𠮷 cannot be extracted or searched. This one writes UTF-16BE (a surrogate
    pair, <D842DFB7>), as the PDF reference requires; installed below in place of reportlab's."""
    entries = [f"<{i:02X}> <{chr(v).encode('utf-16-be').hex().upper()}>" for i, v in enumerate(subset)]
    return "\n".join(
        [
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo",
            f"<< /Registry ({fontname})",
            f"/Ordering ({fontname})",
            "/Supplement 0",
            ">> def",
            f"/CMapName /{fontname} def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            f"<00> <{len(subset) - 1:02X}>",
            "endcodespacerange",
            f"{len(subset)} beginbfchar",
            *entries,
            "endbfchar",
            "endcmap",
            "CMapName currentdict /CMap defineresource pop",
            "end",
            "end",
        ]
    )


ttfonts.makeToUnicodeCMap = _to_unicode_cmap
_registered: dict[tuple[str, str], tuple[str, str]] = {}
_defaults: dict[Path, FontSet] = {}


@dataclass(frozen=True)
class FontSet:
    """Two static TrueType files: body text and headings."""

    regular: Path
    bold: Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jlis" / "fonts"


def variable_font_path() -> Path:
    try:
        root = importlib.resources.files(FONT_PACKAGE)
    except ModuleNotFoundError:
        raise NotFound("font package", f"{FONT_PACKAGE} (pip install justmytype-intl-cjk)") from None
    path = Path(str(root.joinpath(*VARIABLE_FONT)))
    if not path.is_file():
        raise NotFound("font file", str(path))
    return path


def _instance(source: Path, weight: int, directory: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = directory / f"NotoSansJP-w{weight}-{digest}.ttf"
    if target.is_file():
        return target
    from fontTools.ttLib import TTFont as FtFont
    from fontTools.varLib import instancer

    directory.mkdir(parents=True, exist_ok=True)
    font = instancer.instantiateVariableFont(FtFont(str(source)), {"wght": weight}, updateFontNames=True)
    # Written under a temporary name and renamed: a concurrent process sees a whole file or none.
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        font.save(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def default_fonts(directory: Path | None = None) -> FontSet:
    """Noto Sans JP Regular and Bold, made from the packaged variable font on first use."""
    where = directory or cache_dir()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home (some CI and container set-ups): the temporary directory
        where = Path(tempfile.gettempdir()) / "jlis-fonts"
    with _lock:
        found = _defaults.get(where)
        if found is None or not (found.regular.is_file() and found.bold.is_file()):
            source = variable_font_path()  # hashing it costs ~20 ms: once per process and directory
            found = _defaults[where] = FontSet(
                _instance(source, REGULAR_WEIGHT, where), _instance(source, BOLD_WEIGHT, where)
            )
        return found


def register(fonts: FontSet) -> tuple[str, str]:
    """Register the two files with reportlab (once per process); returns their reportlab names."""
    key = (str(fonts.regular), str(fonts.bold))
    with _lock:
        names = _registered.get(key)
        if names is None:
            n = len(_registered)
            names = (f"JlisJP{n}", f"JlisJP{n}-Bold")
            pdfmetrics.registerFont(TTFont(names[0], str(fonts.regular)))
            pdfmetrics.registerFont(TTFont(names[1], str(fonts.bold)))
            _registered[key] = names
        return names


def missing_glyphs(text: str, font_name: str) -> list[str]:
    """Characters of ``text`` the registered font cannot draw (they would print as blanks): a
    certificate server refuses such a name (外字) instead of printing a wrong one."""
    face = pdfmetrics.getFont(font_name).face
    mapping: dict[int, int] = face.charToGlyph
    return sorted({ch for ch in text if not ch.isspace() and ord(ch) not in mapping})
