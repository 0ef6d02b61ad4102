"""Domain types of queries and exchange records, pure: the request a member sends, its MAC, the answer,
a record as kept by each keeper, the fields its hash covers, and the portal's disclosure rule.

No database, no clock: times are arguments.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jlis.audit.chain import canonical_bytes
from jlis.errors import Forbidden, InvalidInput
from jlis.masters.exchange_table import DisclosurePolicy, Refusal

HUB_KEEPER = "hub"  # the keeper id of the hub's own copy of every record
MAX_REQUEST_ID = 64
MAX_CODE = 128
MAX_ITEMS = 32
MAX_SKEW = dt.timedelta(minutes=5)  # sent_at must lie within this of the hub's clock
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
UTC = dt.UTC

__all__ = [
    "HUB_KEEPER",
    "DisclosurePolicy",
    "ExchangeRecord",
    "ExchangeView",
    "Outcome",
    "QueryAnswer",
    "QueryRequest",
    "RefusalReason",
    "Role",
    "canonical_request",
    "record_fields",
    "request_mac",
    "sign_request",
    "visible",
]


class Outcome(enum.StrEnum):
    PROVIDED = "provided"  # 提供
    NO_MATCH = "no_match"  # 該当なし (the provider holds nothing for the person)
    REFUSED = "refused"  # 拒否

    @property
    def label(self) -> str:
        return {"provided": "提供", "no_match": "該当なし", "refused": "拒否"}[self.value]


class Role(enum.StrEnum):
    """The keeper's part in the exchange."""

    REQUESTER = "requester"
    PROVIDER = "provider"
    HUB = "hub"


class RefusalReason(enum.StrEnum):
    """Why the hub refused a query. Values are stable (records, API, CLI). The table's own reasons
    (:class:`jlis.masters.exchange_table.Refusal`) are members too."""

    STALE = "stale"  # sent_at outside the window around the hub's clock
    TAMPERED = "tampered"  # the MAC does not match
    REPLAYED = "replayed"  # the request id was used before
    INACTIVE = "inactive_member"  # the provider (or requester) is not an active member
    UNKNOWN_PROVIDER = "unknown_provider"
    SELF_QUERY = "self_query"  # a member asking itself
    UNKNOWN_CODE = "unknown_code"  # not a code the hub issued to the requester
    UNKNOWN_AFFAIR = Refusal.UNKNOWN_AFFAIR.value
    UNKNOWN_CATEGORY = Refusal.UNKNOWN_CATEGORY.value
    NOT_IN_TABLE = Refusal.NOT_IN_TABLE.value
    ITEMS_NOT_ALLOWED = Refusal.ITEMS_NOT_ALLOWED.value
    DISCLOSURE_NOT_ALLOWED = Refusal.DISCLOSURE_NOT_ALLOWED.value
    PROVIDER_REFUSED = "provider_refused"  # the provider's middle server refused (a rule of its own)

    @property
    def label(self) -> str:
        return _REASON_LABELS[self]


_REASON_LABELS = {
    RefusalReason.STALE: "送信時刻が許容範囲外",
    RefusalReason.TAMPERED: "改ざんされた要求（MAC 不一致）",
    RefusalReason.REPLAYED: "再送された要求（要求番号の重複）",
    RefusalReason.INACTIVE: "利用停止中の機関",
    RefusalReason.UNKNOWN_PROVIDER: "情報提供者が存在しない",
    RefusalReason.SELF_QUERY: "自機関への照会",
    RefusalReason.UNKNOWN_CODE: "照会者の符号ではない",
    RefusalReason.UNKNOWN_AFFAIR: "事務が表にない",
    RefusalReason.UNKNOWN_CATEGORY: "特定個人情報の種類が存在しない",
    RefusalReason.NOT_IN_TABLE: "照会者・事務・提供者・特定個人情報の組合せが表にない",
    RefusalReason.ITEMS_NOT_ALLOWED: "表にない項目の照会",
    RefusalReason.DISCLOSURE_NOT_ALLOWED: "この事務では指定できない開示区分",
    RefusalReason.PROVIDER_REFUSED: "情報提供者が提供を拒否",
}


# ---------------------------------------------------------------------------------------------
# The request and its MAC
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryRequest:
    """What a requester sends: its own code for the person, the affair, the provider, the category
    and items, a request id unique per requester, the time it was sent, and an HMAC-SHA256 (hex)
    over :func:`canonical_request` with the requester's request key.

    ``disclosure`` and ``disclose_after`` say when the person may see the record (facts §5.4);
    anything but ``immediate`` only where the table allows it for the affair."""

    request_id: str
    requester_code: str
    affair: str
    provider_id: str
    category: str
    items: tuple[str, ...]
    sent_at: dt.datetime
    mac: str
    disclosure: DisclosurePolicy = DisclosurePolicy.IMMEDIATE
    disclose_after: dt.date | None = None

    def checked(self) -> QueryRequest:
        """Structural checks (the shape of each field). A request failing them is not a request at
        all: InvalidInput naming the field, and nothing is recorded. Semantic checks (is the affair
        in the table, is the code the requester's) are refusals, recorded by the hub."""
        _text("request_id", self.request_id, MAX_REQUEST_ID)
        if not REQUEST_ID_RE.match(self.request_id):
            raise InvalidInput("request_id", "ascii letters, digits, '.', '_', ':' or '-', at most 64")
        _text("requester_code", self.requester_code, MAX_CODE)
        _ident("affair", self.affair)
        _text("provider_id", self.provider_id, 64)
        _ident("category", self.category)
        if isinstance(self.items, str) or not isinstance(self.items, Sequence):
            raise InvalidInput("items", "must be a list of item names")
        if not self.items:
            raise InvalidInput("items", "must name at least one item")
        if len(self.items) > MAX_ITEMS:
            raise InvalidInput("items", f"at most {MAX_ITEMS} items")
        for item in self.items:
            _ident("items", item)
        if len(set(self.items)) != len(self.items):
            raise InvalidInput("items", "no item twice")
        if not isinstance(self.sent_at, dt.datetime) or self.sent_at.tzinfo is None:
            raise InvalidInput("sent_at", "must be a timezone-aware date and time")
        if not isinstance(self.mac, str) or not re.fullmatch(r"[0-9a-f]{64}", self.mac):
            raise InvalidInput("mac", "must be 64 lower-case hex digits (HMAC-SHA256)")
        try:
            policy = DisclosurePolicy(self.disclosure)
        except ValueError:
            raise InvalidInput("disclosure", "must be one of immediate, deferred, never") from None
        if policy is DisclosurePolicy.DEFERRED:
            if not isinstance(self.disclose_after, dt.date) or isinstance(self.disclose_after, dt.datetime):
                raise InvalidInput("disclose_after", "a deferred disclosure needs a date")
        elif self.disclose_after is not None:
            raise InvalidInput("disclose_after", "only a deferred disclosure has a date")
        return self


def _text(name: str, value: object, max_len: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(name, "must be a non-empty string")
    if len(value) > max_len:
        raise InvalidInput(name, f"at most {max_len} characters")
    if any(ord(c) < 0x21 for c in value):
        raise InvalidInput(name, "no blanks or control characters")


def _ident(name: str, value: object) -> None:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidInput(name, "must be a lower-case ascii id (a-z, 0-9, '_', '-')")


def _utc_iso(at: dt.datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_request(requester_id: str, request: QueryRequest) -> bytes:
    """The bytes the MAC covers: canonical JSON of every field but the MAC, with the requester's id
    (a request cannot be replayed as another member's) and ``sent_at`` in UTC."""
    return canonical_bytes(
        {
            "v": 1,
            "requester": requester_id,
            "request_id": request.request_id,
            "requester_code": request.requester_code,
            "affair": request.affair,
            "provider": request.provider_id,
            "category": request.category,
            "items": list(request.items),
            "sent_at": _utc_iso(request.sent_at),
            "disclosure": DisclosurePolicy(request.disclosure).value,
            "disclose_after": request.disclose_after.isoformat() if request.disclose_after else None,
        }
    )


def request_mac(key: bytes, requester_id: str, request: QueryRequest) -> str:
    return hmac.new(key, canonical_request(requester_id, request), hashlib.sha256).hexdigest()


def mac_matches(key: bytes, requester_id: str, request: QueryRequest) -> bool:
    """Constant-time comparison. Fails closed on any malformed value."""
    try:
        expected = request_mac(key, requester_id, request)
    except (TypeError, ValueError, AttributeError):
        return False
    return isinstance(request.mac, str) and hmac.compare_digest(expected, request.mac)


def sign_request(
    key: bytes,
    requester_id: str,
    *,
    request_id: str,
    requester_code: str,
    affair: str,
    provider_id: str,
    category: str,
    items: Sequence[str],
    sent_at: dt.datetime,
    disclosure: DisclosurePolicy = DisclosurePolicy.IMMEDIATE,
    disclose_after: dt.date | None = None,
) -> QueryRequest:
    """The requester's side: build a request and MAC it with the member's request key."""
    draft = QueryRequest(
        request_id=request_id,
        requester_code=requester_code,
        affair=affair,
        provider_id=provider_id,
        category=category,
        items=tuple(items),
        sent_at=sent_at,
        mac="0" * 64,
        disclosure=DisclosurePolicy(disclosure),
        disclose_after=disclose_after,
    )
    return QueryRequest(
        **{**draft.__dict__, "mac": request_mac(key, requester_id, draft)},
    )


# ---------------------------------------------------------------------------------------------
# The answer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryAnswer:
    """What the requester gets back. ``exchange_no`` is the hub's number of the exchange (its record
    seq), the same in all three records. ``data`` is empty unless ``outcome`` is PROVIDED."""

    request_id: str
    exchange_no: int
    outcome: Outcome
    provider_id: str
    affair: str
    category: str
    items: tuple[str, ...]
    requested_at: dt.datetime
    provided_at: dt.datetime | None
    data: Mapping[str, object] = field(default_factory=dict)
    reason: RefusalReason | None = None
    message: str = ""

    def raise_if_refused(self) -> None:
        if self.outcome is Outcome.REFUSED:
            assert self.reason is not None
            raise Forbidden(
                f"照会拒否 ({self.reason.label}): {self.message}",
                field=_REASON_FIELDS.get(self.reason, "request"),
                rule=self.reason.value,
                exchange_no=self.exchange_no,
            )


_REASON_FIELDS = {
    RefusalReason.STALE: "sent_at",
    RefusalReason.TAMPERED: "mac",
    RefusalReason.REPLAYED: "request_id",
    RefusalReason.INACTIVE: "provider_id",
    RefusalReason.UNKNOWN_PROVIDER: "provider_id",
    RefusalReason.SELF_QUERY: "provider_id",
    RefusalReason.UNKNOWN_CODE: "requester_code",
    RefusalReason.UNKNOWN_AFFAIR: "affair",
    RefusalReason.UNKNOWN_CATEGORY: "category",
    RefusalReason.NOT_IN_TABLE: "affair",
    RefusalReason.ITEMS_NOT_ALLOWED: "items",
    RefusalReason.DISCLOSURE_NOT_ALLOWED: "disclosure",
    RefusalReason.PROVIDER_REFUSED: "items",
}


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeRecord:
    """One 情報提供等記録 as kept by one keeper (the requester, the provider, or the hub). ``person`` is
    the keeper's own name for the person: its code (a member) or the hub's link (the hub); None when
    the request named nobody the hub knows."""

    keeper: str
    seq: int
    role: Role
    exchange_no: int
    request_id: str
    person: str | None
    requester_id: str
    requester_name: str
    provider_id: str
    provider_name: str
    affair: str
    affair_name: str
    category: str
    items: tuple[str, ...]
    outcome: Outcome
    reason: RefusalReason | None
    requested_at: dt.datetime
    provided_at: dt.datetime | None
    non_disclosure: bool
    disclosure: DisclosurePolicy
    disclose_after: dt.date | None
    recorded_at: dt.datetime
    prev_hash: str
    hash: str


def record_fields(
    *,
    keeper: str,
    seq: int,
    role: str,
    exchange_no: int,
    request_id: str,
    person: str | None,
    requester_id: str,
    requester_name: str,
    provider_id: str,
    provider_name: str,
    affair: str,
    affair_name: str,
    category: str,
    items: Sequence[str],
    outcome: str,
    reason: str | None,
    requested_at: dt.datetime,
    provided_at: dt.datetime | None,
    non_disclosure: bool,
    disclosure: str,
    disclose_after: dt.date | None,
    recorded_at: dt.datetime,
) -> dict[str, Any]:
    """What a record's hash covers: every field, times in UTC ISO form, the keeper and seq included
    (a record can be neither moved to another keeper's chain nor renumbered)."""
    return {
        "keeper": keeper,
        "seq": seq,
        "role": str(role),
        "exchange_no": exchange_no,
        "request_id": request_id,
        "person": person,
        "requester_id": requester_id,
        "requester_name": requester_name,
        "provider_id": provider_id,
        "provider_name": provider_name,
        "affair": affair,
        "affair_name": affair_name,
        "category": category,
        "items": list(items),
        "outcome": str(outcome),
        "reason": None if reason is None else str(reason),
        "requested_at": _utc_iso(requested_at),
        "provided_at": None if provided_at is None else _utc_iso(provided_at),
        "non_disclosure": bool(non_disclosure),
        "disclosure": str(disclosure),
        "disclose_after": None if disclose_after is None else disclose_after.isoformat(),
        "recorded_at": _utc_iso(recorded_at),
    }


def visible(policy: DisclosurePolicy, disclose_after: dt.date | None, today: dt.date) -> bool:
    """The portal's rule: immediate records at once, deferred ones from ``disclose_after`` (in Japan's
    calendar), never-disclosed ones never. Fails closed: a deferred record without a date is hidden."""
    if policy is DisclosurePolicy.IMMEDIATE:
        return True
    if policy is DisclosurePolicy.DEFERRED:
        return disclose_after is not None and today >= disclose_after
    return False


@dataclass(frozen=True)
class ExchangeView:
    """One line of the portal's やりとり履歴: who asked whom, when, for what, and the outcome."""

    exchange_no: int
    requested_at: dt.datetime
    provided_at: dt.datetime | None
    requester_id: str
    requester_name: str
    provider_id: str
    provider_name: str
    affair: str
    affair_name: str
    category: str
    category_label: str
    items: tuple[str, ...]
    item_labels: tuple[str, ...]
    outcome: Outcome
    disclosure: DisclosurePolicy
