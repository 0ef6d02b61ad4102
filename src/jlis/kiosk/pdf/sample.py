"""A synthetic certificate (見本) for the CLI, the demo and the benchmark: a 住民票の写し of a made-up
household, shaped like what the certificate server (jlis.kiosk.issuer) produces. Not a real person."""

from __future__ import annotations

import datetime as dt

from jlis.kiosk.content import CertificateContent, CertificateKind, Row, Section


def sample_content(
    lg_code: str,
    issuer_title: str,
    *,
    certificate_number: str,
    request_id: str,
    issued_on: dt.date,
    subject_name: str = "見本 太郎",
    members: int = 2,
) -> CertificateContent:
    head = Section(
        "世帯主",
        (
            Row("氏名", subject_name),
            Row("氏名の振り仮名", "ミホン タロウ"),
            Row("生年月日", "平成2年2月17日"),
            Row("性別", "男"),
            Row("続柄", "世帯主"),
            Row("住所", "東京都千代田区千代田1丁目1番1号"),
            Row("住民となった年月日", "平成20年4月1日"),
        ),
    )
    others = tuple(
        Section(
            "世帯員",
            (
                Row("氏名", f"見本 {'花子' if i == 0 else f'子{i}'}"),
                Row("生年月日", f"平成{4 + i}年3月3日"),
                Row("続柄", "妻" if i == 0 else "子"),
            ),
        )
        for i in range(max(0, members - 1))
    )
    return CertificateContent(
        kind=CertificateKind.RESIDENT,
        title=CertificateKind.RESIDENT.label,
        lg_code=lg_code,
        issuer_title=issuer_title,
        subject_name=subject_name,
        request_id=request_id,
        certificate_number=certificate_number,
        issued_on=issued_on,
        sections=(head, *others),
        attestation="この写しは、住民票の原本と相違ないことを証明する。",
        notes=("見本です。個人番号・住民票コードの記載を省略しています。",),
    )
