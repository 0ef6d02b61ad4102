"""Content builders: what each certificate says, as a :class:`CertificateContent`, from values the
server read. Pure: the caller checked the rules and passes the header (number, request id, date)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from jlis.juki.fuhyo import Fuhyo
from jlis.kiosk.content import CertificateContent, CertificateKind, Image, Row, Section
from jlis.kiosk.issuer.models import (
    RESIDENT_ITEMS,
    IssueOptions,
    Koseki,
    SealRegistration,
    TaxAssessment,
)
from jlis.registry.models import ResidentView, Sex

# 改元 dates (the first day of each era) and names, newest first.
_ERAS = (
    (dt.date(2019, 5, 1), "令和"),
    (dt.date(1989, 1, 8), "平成"),
    (dt.date(1926, 12, 25), "昭和"),
    (dt.date(1912, 7, 30), "大正"),
    (dt.date(1868, 10, 23), "明治"),
)

ATTEST_RESIDENT = "この写しは、住民票の原本と相違ないことを証明する。"
ATTEST_RESIDENT_ITEMS = "上記の事項は、住民票に記載されていることを証明する。"
ATTEST_SEAL = "この写しは、登録されている印影と相違ないことを証明する。"
ATTEST_FUHYO = "この写しは、戸籍の附票の原本と相違ないことを証明する。"
ATTEST_INCOME = "上記のとおり相違ないことを証明する。"
ATTEST_KOSEKI = "これは、戸籍に記録されている事項の全部を証明した書面である。"

NOTE_MY_NUMBER = "個人番号の記載を省略しています。"
NOTE_HONSEKI = "本籍の記載を省略しています。"
NOTE_RELATIONSHIP = "続柄の記載を省略しています。"
NOTE_RESIDENT_CODE = "住民票コードの記載を省略しています。"


@dataclass(frozen=True)
class Header:
    """What every certificate carries besides its body."""

    lg_code: str
    issuer_title: str  # 職責: 東京都千代田区長
    request_id: str
    certificate_number: str
    issued_on: dt.date
    seal_image_png: bytes | None = None


def wareki(day: dt.date) -> str:
    """A date in the Japanese calendar, as certificates print it: 令和8年11月26日 (元年 for year 1)."""
    for start, name in _ERAS:
        if day >= start:
            year = day.year - start.year + 1
            return f"{name}{'元' if year == 1 else year}年{day.month}月{day.day}日"
    return f"{day.year}年{day.month}月{day.day}日"


def fiscal_label(year: int) -> str:
    """令和8年度 for 2026 (a 年度 starts in April, after any 改元 of that year)."""
    return wareki(dt.date(year, 12, 31)).split("年")[0] + "年度"


def yen(amount: int) -> str:
    return f"{amount:,}円"


def _sex(value: Sex | str) -> str:
    return Sex(value).label


def _content(
    header: Header,
    kind: CertificateKind,
    subject_name: str,
    sections: Sequence[Section],
    attestation: str,
    notes: Sequence[str] = (),
    title: str | None = None,
    images: Sequence[Image] = (),
) -> CertificateContent:
    return CertificateContent(
        kind=kind,
        title=title or kind.label,
        lg_code=header.lg_code,
        issuer_title=header.issuer_title,
        subject_name=subject_name,
        request_id=header.request_id,
        certificate_number=header.certificate_number,
        issued_on=header.issued_on,
        sections=tuple(sections),
        attestation=attestation,
        notes=tuple(notes),
        seal_image_png=header.seal_image_png,
        images=tuple(images),
    )


def _person_rows(p: ResidentView, options: IssueOptions, head_name: str | None) -> list[Row]:
    rows = [Row("氏名", p.name.full), Row("氏名の振り仮名", p.name.full_kana)]
    if p.former_surname:
        rows.append(Row("旧氏", p.former_surname))
    if p.alias:
        rows.append(Row("通称", p.alias))
    if p.is_foreign:
        rows.append(Row("国籍・地域", p.nationality))
    rows += [Row("生年月日", wareki(p.birth_date)), Row("性別", _sex(p.sex))]
    if options.show_relationship:
        rows.append(Row("続柄", p.relationship))
    if head_name is not None:
        rows.append(Row("世帯主", head_name))
    rows += [
        Row("住所", p.address.text),
        Row("住民となった年月日", wareki(p.resident_since)),
        Row("住所を定めた年月日", wareki(p.address_since)),
        Row("届出日", wareki(p.notified_on)),
    ]
    if p.previous_address:
        rows.append(Row("前住所", p.previous_address))
    if options.show_honseki and p.honseki:
        rows.append(Row("本籍", p.honseki))
    if options.show_my_number:
        rows.append(Row("個人番号", p.my_number))
    return rows


def resident_certificate(
    header: Header, subject: ResidentView, persons: Sequence[ResidentView], options: IssueOptions
) -> CertificateContent:
    """住民票の写し: the requester alone, or every current member of the household (``persons``,
    the requester among them). The 住民票コード is never printed; the 個人番号, 本籍 and 続柄 only
    when chosen (and, for the 個人番号, allowed)."""
    if subject.resident_code not in {p.resident_code for p in persons}:
        raise ValueError("the requester must be among the persons printed")
    head = next((p for p in persons if p.is_head), None)
    head_name = head.name.full if head else None
    sections = [
        Section(
            None if len(persons) == 1 else f"{i}",
            tuple(_person_rows(p, options, head_name)),
        )
        for i, p in enumerate(persons, start=1)
    ]
    notes = [NOTE_RESIDENT_CODE]
    if not options.show_my_number:
        notes.append(NOTE_MY_NUMBER)
    if not options.show_honseki and any(p.honseki for p in persons):
        notes.append(NOTE_HONSEKI)
    if not options.show_relationship:
        notes.append(NOTE_RELATIONSHIP)
    title = f"{CertificateKind.RESIDENT.label}（{'世帯全員' if options.household else '本人'}）"
    return _content(
        header, CertificateKind.RESIDENT, subject.name.full, sections, ATTEST_RESIDENT, notes, title=title
    )


def resident_items_certificate(
    header: Header, subject: ResidentView, head_name: str | None, options: IssueOptions
) -> CertificateContent:
    """住民票記載事項証明書: only the chosen items of the requester's 住民票."""
    values = {
        "name": subject.name.full,
        "name_kana": subject.name.full_kana,
        "birth_date": wareki(subject.birth_date),
        "sex": _sex(subject.sex),
        "address": subject.address.text,
        "resident_since": wareki(subject.resident_since),
        "address_since": wareki(subject.address_since),
        "head": head_name or "",
        "relationship": subject.relationship,
        "honseki": subject.honseki or "",
    }
    rows = tuple(Row(RESIDENT_ITEMS[item], values[item]) for item in options.items)
    return _content(
        header,
        CertificateKind.RESIDENT_ITEMS,
        subject.name.full,
        [Section("証明事項", rows)],
        ATTEST_RESIDENT_ITEMS,
    )


def seal_certificate(header: Header, subject: ResidentView, seal: SealRegistration) -> CertificateContent:
    """印鑑登録証明書: the holder's 氏名, 生年月日, 住所 and 登録番号 with the registered impression."""
    rows = [Row("氏名", subject.name.full)]
    if subject.former_surname:
        rows.append(Row("旧氏", subject.former_surname))
    if subject.alias:
        rows.append(Row("通称", subject.alias))
    rows += [
        Row("生年月日", wareki(subject.birth_date)),
        Row("性別", _sex(subject.sex)),
        Row("住所", subject.address.text),
        Row("登録番号", seal.registration_no),
        Row("登録年月日", wareki(seal.registered_on)),
    ]
    return _content(
        header,
        CertificateKind.SEAL,
        subject.name.full,
        [Section(None, tuple(rows))],
        ATTEST_SEAL,
        images=[Image("登録印影", seal.impression.png)],
    )


def fuhyo_certificate(header: Header, fuhyo: Fuhyo, head_name: str | None) -> CertificateContent:
    """戸籍の附票の写し: the 本籍, the person, and every address with its 住定日, oldest first."""
    name = f"{fuhyo.family_name}\u3000{fuhyo.given_name}" if fuhyo.given_name else fuhyo.family_name
    top = [Row("本籍", fuhyo.honseki)]
    if head_name:
        top.append(Row("筆頭者", head_name))
    person = (
        Row("氏名", name),
        Row("生年月日", wareki(fuhyo.birth_date)),
        Row("性別", _sex(fuhyo.sex)),
    )
    lines = tuple(
        Row(f"住所 {i}", f"{line.address}（住定日 {wareki(line.address_since)}）")
        for i, line in enumerate(fuhyo.addresses, start=1)
    ) or (Row("住所", fuhyo.address),)
    sections = [Section(None, tuple(top)), Section("附票", person + lines)]
    return _content(header, CertificateKind.FUHYO, name, sections, ATTEST_FUHYO, [NOTE_RESIDENT_CODE])


def income_certificate(header: Header, subject_name: str, tax: TaxAssessment) -> CertificateContent:
    """所得・課税証明書 of one 年度 (income of the previous calendar year)."""
    f = tax.figures
    person = (
        Row("年度", fiscal_label(tax.fiscal_year)),
        Row("所得の年", f"{wareki(dt.date(tax.fiscal_year - 1, 12, 31)).split('年')[0]}年分"),
        Row("氏名", subject_name),
        Row("住所（1月1日現在）", tax.address_on_jan1),
    )
    income = (
        Row("給与収入", yen(f.salary_income)),
        Row("給与所得", yen(max(0, f.salary_income - f.salary_deduction))),
        Row("その他の所得", yen(f.other_income)),
        Row("合計所得金額", yen(f.total_income)),
        Row("所得控除額合計", yen(f.deductions)),
        Row("扶養人数", f"{f.dependents}人"),
        Row("課税標準額", yen(f.taxable_income)),
    )
    if f.non_taxable:
        tax_rows: tuple[Row, ...] = (Row("税額", "非課税"),)
    else:
        tax_rows = (
            Row("市区町村民税", yen(f.municipal_tax)),
            Row("道府県民税", yen(f.prefectural_tax)),
            Row("年税額", yen(f.total_tax)),
        )
    sections = [Section(None, person), Section("所得", income), Section("課税", tax_rows)]
    title = "所得・非課税証明書" if f.non_taxable else CertificateKind.INCOME.label
    return _content(header, CertificateKind.INCOME, subject_name, sections, ATTEST_INCOME, title=title)


def koseki_certificate(header: Header, koseki: Koseki, subject_name: str) -> CertificateContent:
    """戸籍全部事項証明書: the 戸籍事項 and every person entered, 除籍 included and marked."""
    top = Section(
        None,
        (
            Row("本籍", koseki.honseki),
            Row("氏名", koseki.head_name),
        ),
    )
    koseki_events = Section(
        "戸籍事項",
        (Row("戸籍編製", f"【編製日】{wareki(koseki.made_on)}（{koseki.made_reason}）"),),
    )
    people = []
    for m in koseki.members:
        rows = [
            Row("戸籍に記録されている者", m.name + ("\u3000【除籍】" if m.removed else "")),
            Row("生年月日", wareki(m.birth_date)),
            Row("父", m.father),
            Row("母", m.mother),
            Row("続柄", m.relationship),
        ]
        rows += [Row(e.label, f"【{e.label}日】{wareki(e.date)}\u3000{e.text}".rstrip()) for e in m.events]
        people.append(Section("身分事項", tuple(rows)))
    return _content(
        header,
        CertificateKind.KOSEKI,
        subject_name,
        [top, koseki_events, *people],
        ATTEST_KOSEKI,
        title="戸籍全部事項証明書（全部事項証明）",
    )
