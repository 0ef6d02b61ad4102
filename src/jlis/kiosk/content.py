"""What a certificate says, as plain values: the certificate server (``jlis.kiosk.issuer``) builds a
:class:`CertificateContent` from the municipality's data, and the PDF renderer (``jlis.kiosk.pdf``)
lays it out, signs it and registers it. Nothing here knows about PDFs or tables."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class CertificateKind(enum.StrEnum):
    """The certificates of コンビニ交付 (facts §6.2). Values are stable: stored and in URLs."""

    RESIDENT = "resident"  # 住民票の写し
    RESIDENT_ITEMS = "resident_items"  # 住民票記載事項証明書
    SEAL = "seal"  # 印鑑登録証明書
    FUHYO = "fuhyo"  # 戸籍の附票の写し
    INCOME = "income"  # 所得・課税証明書
    KOSEKI = "koseki"  # 戸籍全部事項証明書
    DAMAGE = "damage"  # 罹災証明書

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    CertificateKind.RESIDENT: "住民票の写し",
    CertificateKind.RESIDENT_ITEMS: "住民票記載事項証明書",
    CertificateKind.SEAL: "印鑑登録証明書",
    CertificateKind.FUHYO: "戸籍の附票の写し",
    CertificateKind.INCOME: "所得・課税証明書",
    CertificateKind.KOSEKI: "戸籍全部事項証明書",
    CertificateKind.DAMAGE: "罹災証明書",
}


@dataclass(frozen=True)
class Row:
    label: str  # 氏名, 生年月日, ...
    value: str


@dataclass(frozen=True)
class Section:
    """One block of the certificate: a person of a household, the 本籍, a tax year, a dwelling."""

    heading: str | None
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Image:
    """A picture the certificate prints beside its rows: the registered seal impression (登録印影)."""

    label: str
    png: bytes


@dataclass(frozen=True)
class CertificateContent:
    kind: CertificateKind
    title: str  # printed title, usually kind.label
    lg_code: str  # the issuing municipality
    issuer_title: str  # 職責: e.g. 東京都千代田区長
    subject_name: str  # the requester's 氏名 as printed: the end-to-end binding is checked on it
    request_id: str  # the kiosk request this answers; printed in small type and checked at every hop
    certificate_number: str  # printed, and the key of public verification
    issued_on: dt.date
    sections: tuple[Section, ...]
    attestation: str  # e.g. この写しは、住民票の原本と相違ないことを証明する。
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. 個人番号の記載を省略しています
    seal_image_png: bytes | None = None  # the municipal seal; the renderer draws one when None
    images: tuple[Image, ...] = field(default_factory=tuple)
