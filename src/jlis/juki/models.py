"""Domain types of the network, pure: node names, the 附票本人確認情報 message, name keys.

Node names are the relay's destinations; the part before ``:`` is the node kind the relay picks a
handler by.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any

import jaconv

from jlis.registry.events import FuhyoNotice, to_payload
from jlis.registry.models import ChangeReason

CS = "cs"  # コミュニケーションサーバ of one municipality: cs:<lg_code>
PREF = "pref"  # 都道府県サーバ: pref:<pref_code>
NATIONAL = "national"  # 全国サーバ (J-LIS)
HONSEKI = "honseki"  # 本籍地 of the 戸籍の附票: honseki:<lg_code>
FUHYO_PREF = "fuhyo-pref"  # 附票都道府県サーバ: fuhyo-pref:<pref_code>
FUHYO_NATIONAL = "fuhyo-national"  # 附票全国サーバ
REGISTRY = "registry"  # the municipal register (既存住基), a source only


def cs_node(lg_code: str) -> str:
    return f"{CS}:{lg_code}"


def pref_node(pref_code: str) -> str:
    return f"{PREF}:{pref_code}"


def honseki_node(lg_code: str) -> str:
    return f"{HONSEKI}:{lg_code}"


def fuhyo_pref_node(pref_code: str) -> str:
    return f"{FUHYO_PREF}:{pref_code}"


def node_parts(node: str) -> tuple[str, str]:
    """("cs", "131016") for "cs:131016"; ("national", "") for "national"."""
    kind, _, ident = node.partition(":")
    return kind, ident


@dataclass(frozen=True)
class FuhyoRecord:
    """附票本人確認情報 (住基法 §30の41): 氏名, 住所 (国外 for a 国外転出), 生年月日, 性別,
    住民票コード and the change information. Deliberately without 個人番号.
    Travels 本籍地 → 附票都道府県 → 附票全国."""

    resident_code: str
    honseki_lg_code: str
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str
    address: str
    reason: ChangeReason
    change_date: dt.date
    recorded_at: dt.datetime
    previous_resident_code: str | None = None

    @classmethod
    def from_notice(cls, notice: FuhyoNotice) -> FuhyoRecord:
        return cls(
            resident_code=notice.resident_code,
            honseki_lg_code=notice.honseki_lg_code,
            family_name=notice.family_name,
            given_name=notice.given_name,
            birth_date=notice.birth_date,
            sex=notice.sex,
            address=notice.address,
            reason=notice.reason,
            change_date=notice.change_date,
            recorded_at=notice.recorded_at,
            previous_resident_code=notice.previous_resident_code,
        )

    def to_payload(self) -> dict[str, Any]:
        return to_payload(self)

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> FuhyoRecord:
        return cls(
            **{
                **p,
                "birth_date": dt.date.fromisoformat(p["birth_date"]),
                "change_date": dt.date.fromisoformat(p["change_date"]),
                "recorded_at": dt.datetime.fromisoformat(p["recorded_at"]),
                "reason": ChangeReason(p["reason"]),
            }
        )


FUHYO_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(FuhyoRecord))


def name_key(family: str, given: str = "") -> str:
    """Search key of a written name: NFKC, blanks removed, upper case (for Latin names)."""
    return _squash(unicodedata.normalize("NFKC", family + given)).upper()


def kana_key(family_kana: str, given_kana: str = "") -> str:
    """Search key of a name in kana: NFKC, hiragana folded to katakana, blanks removed."""
    return _squash(jaconv.hira2kata(unicodedata.normalize("NFKC", family_kana + given_kana)))


def is_kana(text: str) -> bool:
    """True when a (normalised) name is written in kana only, so it is looked up by its reading."""
    key = kana_key(text)
    return bool(key) and all("\u30a1" <= c <= "\u30fa" or c in "ーヽヾ・" for c in key)


def _squash(text: str) -> str:
    return "".join(text.split())
