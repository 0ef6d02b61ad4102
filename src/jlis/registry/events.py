"""What a municipal register tells the network. These are the message contracts between
``jlis.registry`` and ``jlis.juki``: plain dataclasses with a JSON form."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from jlis import jsontext
from jlis.registry.models import ChangeReason

TOPIC_IDENTITY = "identity.changed"  # 本人確認情報の更新 (CS → 都道府県サーバ → 全国サーバ)
TOPIC_FUHYO = "fuhyo.address"  # 住所地 → 本籍地: 附票記載事項通知 (住基法 §19)
TOPIC_FUHYO_IDENTITY = "fuhyo.identity"  # 附票本人確認情報 (本籍地 → 附票都道府県 → 附票全国)
TOPIC_MOVE_OUT_CERT = "move_out_certificate"  # 転出証明書情報 (転出地 CS → 転入地 CS)
TOPIC_MOVE_IN_NOTICE = "move_in_notice"  # 転入通知 (転入地 CS → 転出地 CS)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_payload(obj: Any) -> dict[str, Any]:
    # Every change builds two of these: the field list is computed once per class.
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    out = {}
    for name in names:
        value = getattr(obj, name)
        out[name] = value.isoformat() if isinstance(value, dt.date) else value
    return out


def encoded(obj: Any) -> tuple[dict[str, Any], str]:
    """A record's payload (``to_payload(obj)``) and its JSON text, from one encoding in C: orjson
    writes a dataclass as it writes the payload (fields in order, dates and times in ISO form, an
    enum as its value; an offset in whole minutes, as every clock here gives). Half the cost of
    building the payload in Python and encoding it."""
    raw = jsontext.dumps(obj)
    return jsontext.loads(raw), raw


@dataclass(frozen=True)
class IdentityRecord:
    """本人確認情報: 基本4情報, furigana, codes and the change information (facts §4.2)."""

    resident_code: str
    my_number: str
    lg_code: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    alias: str | None
    former_surname: str | None
    birth_date: dt.date
    sex: str
    address: str
    status: str
    reason: ChangeReason
    change_date: dt.date
    recorded_at: dt.datetime
    previous_resident_code: str | None = None

    @property
    def name(self) -> str:
        return f"{self.family_name}\u3000{self.given_name}" if self.given_name else self.family_name

    @property
    def name_kana(self) -> str:
        return f"{self.family_kana}\u3000{self.given_kana}" if self.given_kana else self.family_kana

    def to_payload(self) -> dict[str, Any]:
        return to_payload(self)

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> IdentityRecord:
        return cls(
            **{
                **p,
                "birth_date": dt.date.fromisoformat(p["birth_date"]),
                "change_date": dt.date.fromisoformat(p["change_date"]),
                "recorded_at": dt.datetime.fromisoformat(p["recorded_at"]),
                "reason": ChangeReason(p["reason"]),
            }
        )


@dataclass(frozen=True)
class FuhyoNotice:
    """What the 住所地 tells the 本籍地 so it can keep the 戸籍の附票 (address history)."""

    resident_code: str
    honseki_lg_code: str
    honseki: str
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str
    address: str  # the latest address, or 国外 for a 国外転出
    address_lg_code: str | None
    address_since: dt.date
    reason: ChangeReason
    change_date: dt.date
    recorded_at: dt.datetime
    previous_resident_code: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return to_payload(self)

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> FuhyoNotice:
        return cls(
            **{
                **p,
                "birth_date": dt.date.fromisoformat(p["birth_date"]),
                "address_since": dt.date.fromisoformat(p["address_since"]),
                "change_date": dt.date.fromisoformat(p["change_date"]),
                "recorded_at": dt.datetime.fromisoformat(p["recorded_at"]),
                "reason": ChangeReason(p["reason"]),
            }
        )
