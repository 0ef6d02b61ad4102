"""JIS X 0208 rendering: membership by codec, substitution, the 0/1 map, romaji."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jlis.jpki import charset
from jlis.jpki.charset import GETA, in_jisx0208, kana_to_romaji, substitute


@pytest.mark.parametrize(
    "ch", ["吉", "高", "崎", "あ", "ア", "〜", "～", "−", "－", "‖", "∥", "〓", "　", "Ａ", "１"]
)
def test_jisx0208_members(ch: str) -> None:
    assert in_jisx0208(ch)


@pytest.mark.parametrize(
    "ch",
    [
        "𠮷",  # outside the BMP, not in any JIS set
        "髙",  # IBM extension of cp932: not JIS X 0208
        "﨑",  # IBM extension too
        "①",  # NEC row 13 of cp932
        "㈱",
        "濵",  # JIS X 0212 (補助漢字) only
        "A",  # ASCII is JIS X 0201, widened before the check
        "ｱ",  # half-width katakana (JIS X 0201)
        "€",
    ],
)
def test_not_jisx0208(ch: str) -> None:
    assert not in_jisx0208(ch)


def test_substitution_examples() -> None:
    assert substitute("吉田\u3000太郎") == ("吉田\u3000太郎", "00000")
    assert substitute("髙橋\u3000𠮷郎") == ("高橋\u3000吉郎", "10010")
    assert substitute("①㈱") == (GETA * 2, "11")
    assert substitute("€") == (GETA, "1")


def test_widening_is_not_a_substitution() -> None:
    assert substitute("松山1-2 ｶﾞ") == ("松山１－２\u3000ガ", "0000000")


def test_compatibility_ideograph_takes_its_canonical_form() -> None:
    assert substitute("\uf9dc") == ("隆", "1")  # U+F9DC decomposes canonically to 隆


def test_variation_selector_is_dropped_and_its_base_flagged() -> None:
    assert substitute("葛\U000e0100城") == ("葛城", "10")


def test_jisx0212_kept_only_when_asked() -> None:
    assert substitute("濵田") == ("濱田", "10")
    assert substitute("濵田", jisx0212=True) == ("濵田", "00")


_ANY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
    max_size=40,
)


@given(_ANY_TEXT)
def test_result_is_jisx0208_and_map_matches(text: str) -> None:
    out, flags = substitute(text)
    assert len(out) == len(flags)
    assert set(flags) <= {"0", "1"}
    assert all(in_jisx0208(ch) for ch in out)


@given(_ANY_TEXT)
def test_unflagged_characters_are_the_widened_originals(text: str) -> None:
    out, flags = substitute(text)
    widened = charset.widen(text)
    if not any(charset._is_variation_selector(c) for c in widened):
        assert len(out) == len(widened)
        for original, rendered, flag in zip(widened, out, flags, strict=True):
            assert (flag == "0") == (original == rendered and in_jisx0208(original))


@given(_ANY_TEXT)
def test_substitution_is_idempotent(text: str) -> None:
    out, _ = substitute(text)
    again, flags = substitute(out)
    assert again == out and set(flags) <= {"0"}


@given(st.text(alphabet=st.sampled_from("日本語漢字東京都清瀬市松山丁目番号あいうアイウー"), max_size=60))
def test_jisx0208_text_is_unchanged(text: str) -> None:
    assert substitute(text) == (text, "0" * len(text))


@pytest.mark.parametrize(
    ("kana", "romaji"),
    [
        ("トウキョウ", "tokyo"),
        ("オオサカ", "osaka"),
        ("ホッカイドウ", "hokkaido"),
        ("キヨセ", "kiyose"),
        ("サッポロ", "sapporo"),
        ("チュウオウ", "chuo"),
        ("ヒョウゴ", "hyogo"),
        ("グンマ", "gunma"),
        ("ニイガタ", "niigata"),
        ("マッチャ", "matcha"),
        ("しんじゅく", "shinjuku"),
    ],
)
def test_kana_to_romaji(kana: str, romaji: str) -> None:
    assert kana_to_romaji(kana) == romaji
