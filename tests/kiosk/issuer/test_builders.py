"""Content builders as pure functions: the Japanese calendar at each 改元, the rows and notes of
each certificate, and that the header reaches the content unchanged."""

from __future__ import annotations

import datetime as dt

import pytest

from jlis.juki.fuhyo import Fuhyo, FuhyoAddressLine
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer import builders
from jlis.kiosk.issuer.builders import Header, fiscal_label, wareki, yen
from jlis.kiosk.issuer.models import IssueOptions, Koseki, KosekiEvent, KosekiMember, TaxAssessment, assess

from .test_rules import person

HEADER = Header(
    "131016", "東京都千代田区長", "req-00000001", "131016-20261127-00000001-5", dt.date(2026, 11, 27)
)


@pytest.mark.parametrize(
    ("day", "text"),
    [
        (dt.date(1912, 7, 29), "明治45年7月29日"),
        (dt.date(1912, 7, 30), "大正元年7月30日"),
        (dt.date(1926, 12, 25), "昭和元年12月25日"),
        (dt.date(1989, 1, 7), "昭和64年1月7日"),
        (dt.date(1989, 1, 8), "平成元年1月8日"),
        (dt.date(2019, 4, 30), "平成31年4月30日"),
        (dt.date(2019, 5, 1), "令和元年5月1日"),
        (dt.date(2026, 11, 27), "令和8年11月27日"),
    ],
)
def test_wareki(day: dt.date, text: str) -> None:
    assert wareki(day) == text


def test_fiscal_label_and_yen() -> None:
    assert fiscal_label(2019) == "令和元年度"
    assert fiscal_label(2026) == "令和8年度"
    assert fiscal_label(2018) == "平成30年度"
    assert yen(1234567) == "1,234,567円"


def test_header_reaches_the_content() -> None:
    c = builders.resident_certificate(HEADER, person(), [person()], IssueOptions())
    assert (c.lg_code, c.issuer_title, c.request_id, c.certificate_number, c.issued_on) == (
        HEADER.lg_code, HEADER.issuer_title, HEADER.request_id, HEADER.certificate_number, HEADER.issued_on,
    )  # fmt: skip
    assert c.title == "住民票の写し（本人）"
    assert c.seal_image_png is None


def test_resident_certificate_requires_the_subject_among_the_persons() -> None:
    other = person(resident_code="23456789010")
    with pytest.raises(ValueError):
        builders.resident_certificate(HEADER, person(), [other], IssueOptions())


def test_foreign_resident_prints_nationality_and_alias() -> None:
    p = person(nationality="中国", alias="王\u3000明", former_surname="李")
    rows = {
        r.label: r.value
        for r in builders.resident_certificate(HEADER, p, [p], IssueOptions()).sections[0].rows
    }
    assert rows["国籍・地域"] == "中国" and rows["通称"] == "王\u3000明" and rows["旧氏"] == "李"


def test_income_certificate_non_taxable_title() -> None:
    tax = TaxAssessment(
        "131016", 2026, "12345678906", "東京都千代田区", assess(800_000, 0, 0), dt.date(2026, 6, 1)
    )
    c = builders.income_certificate(HEADER, "山田\u3000太郎", tax)
    assert c.title == "所得・非課税証明書"
    assert ("税額", "非課税") in [(r.label, r.value) for s in c.sections for r in s.rows]


def test_fuhyo_certificate_lists_addresses_oldest_first() -> None:
    fuhyo = Fuhyo(
        "12345678906", "東京都千代田区千代田1番地", "山田", "太郎", dt.date(1980, 4, 1), "male",
        "東京都千代田区千代田1番1号", "move_in", dt.date(2026, 11, 24),
        (
            FuhyoAddressLine("東京都新宿区西新宿2丁目8番1号", dt.date(2001, 4, 1), "move_in"),
            FuhyoAddressLine("東京都千代田区千代田1番1号", dt.date(2026, 11, 24), "move_in"),
        ),
    )  # fmt: skip
    c = builders.fuhyo_certificate(HEADER, fuhyo, "山田\u3000太郎")
    rows = [(r.label, r.value) for s in c.sections for r in s.rows]
    assert ("筆頭者", "山田\u3000太郎") in rows
    addresses = [v for k, v in rows if k.startswith("住所")]
    assert addresses == [
        "東京都新宿区西新宿2丁目8番1号（住定日 平成13年4月1日）",
        "東京都千代田区千代田1番1号（住定日 令和8年11月24日）",
    ]
    assert c.kind is CertificateKind.FUHYO and c.subject_name == "山田\u3000太郎"


def test_koseki_certificate_marks_removed_members() -> None:
    taro = KosekiMember(
        1, "12345678906", "山田", "太郎", dt.date(1980, 4, 1), "male", "山田\u3000一郎", "山田\u3000花子",
        "長男", (KosekiEvent(dt.date(1980, 4, 1), "出生", "【出生地】東京都千代田区"),),
    )  # fmt: skip
    ume = KosekiMember(
        2, None, "山田", "梅子", dt.date(1982, 1, 1), "female", "鈴木\u3000清", "鈴木\u3000和子", "長女", (),
        removed=True, removed_reason="死亡",
    )  # fmt: skip
    members = (taro, ume)
    koseki = Koseki(
        1, "131016", "東京都千代田区千代田1番地", "山田\u3000太郎", dt.date(2005, 5, 5), "婚姻", members
    )
    c = builders.koseki_certificate(HEADER, koseki, "山田\u3000太郎")
    persons = [r.value for s in c.sections for r in s.rows if r.label == "戸籍に記録されている者"]
    assert persons == ["山田\u3000太郎", "山田\u3000梅子\u3000【除籍】"]
    events = [r.value for s in c.sections for r in s.rows if r.label == "出生"]
    assert events == ["【出生日】昭和55年4月1日\u3000【出生地】東京都千代田区"]
    assert c.sections[1].rows[0].value == "【編製日】平成17年5月5日（婚姻）"
