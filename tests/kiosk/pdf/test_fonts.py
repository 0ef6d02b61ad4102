from __future__ import annotations

from pathlib import Path

import pytest

from jlis.errors import NotFound
from jlis.kiosk.pdf import fonts


def test_default_fonts_are_static_instances_cached_by_source_hash() -> None:
    first = fonts.default_fonts()
    again = fonts.default_fonts()
    assert first == again
    assert first.regular != first.bold
    assert first.regular.read_bytes()[:4] == b"\x00\x01\x00\x00"  # TrueType outlines
    from fontTools.ttLib import TTFont

    for path, weight in ((first.regular, 400), (first.bold, 700)):
        font = TTFont(str(path), lazy=True)
        assert "fvar" not in font  # no longer variable
        assert font["OS/2"].usWeightClass == weight


def test_register_is_idempotent_and_glyph_coverage_is_known() -> None:
    a = fonts.register(fonts.default_fonts())
    b = fonts.register(fonts.default_fonts())
    assert a == b
    assert fonts.missing_glyphs("髙橋 𠮷郎 﨑", a[0]) == []
    assert fonts.missing_glyphs("a\U000f0000b", a[0]) == ["\U000f0000"]


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fonts.cache_dir() == tmp_path / "jlis" / "fonts"


def test_a_missing_font_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "FONT_PACKAGE", "no_such_font_package_for_jlis")
    with pytest.raises(NotFound) as err:
        fonts.variable_font_path()
    assert "pip install" in err.value.message
