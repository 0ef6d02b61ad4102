"""The 本人確認情報 tiers: CS → 都道府県サーバ → 全国サーバ.

Each node is a relay handler: it gets a batch of messages addressed to it, applies them to its own
copy in the relay's transaction (with the inbox row that makes a repeat harmless) and publishes what
it passes on in that same transaction. A node checks who sent what before applying anything: a
message from a source that may not send it is refused (see :class:`MessageRefused`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy.orm import Session

from jlis.clock import Clock
from jlis.codes import NumberAuthority
from jlis.juki.copies import Entries, Tier, apply_records_many
from jlis.juki.errors import MessageRefused
from jlis.juki.models import CS, NATIONAL, PREF, REGISTRY, kana_key, name_key, node_parts, pref_node
from jlis.juki.tables import (
    cs_history,
    cs_identities,
    national_history,
    national_identities,
    pref_history,
    pref_identities,
    utc,
)
from jlis.masters import Geography
from jlis.messaging import Message, publish_many
from jlis.messaging.outbox import derived_message_id, encode_payload
from jlis.registry import IdentityRecord, RegistryService
from jlis.registry.events import TOPIC_IDENTITY, TOPIC_MOVE_IN_NOTICE, TOPIC_MOVE_OUT_CERT
from jlis.registry.models import ChangeReason

CS_TIER = Tier("cs", cs_identities, cs_history, node_keyed=True)
PREF_TIER = Tier("pref", pref_identities, pref_history, node_keyed=True)
NATIONAL_TIER = Tier("national", national_identities, national_history, node_keyed=False)

IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(IdentityRecord))


def identity_row(record: IdentityRecord) -> dict[str, Any]:
    row = {f: getattr(record, f) for f in IDENTITY_FIELDS}
    row["reason"] = record.reason.value
    row["recorded_at"] = utc(record.recorded_at)
    return row


_REASONS = frozenset(r.value for r in ChangeReason)


def payload_row(
    payload: dict[str, Any], fields: frozenset[str], dates: Sequence[str]
) -> dict[str, Any] | None:
    """The copy's row of a record payload, parsed as the record's ``from_payload`` would (ISO dates,
    the change reason checked, ``recorded_at`` in UTC) without building the dataclass; None when
    the payload's keys are not exactly ``fields`` (the caller then goes through the dataclass,
    which fills defaults or names what is wrong)."""
    if payload.keys() != fields:
        return None
    row = dict(payload)
    for f in dates:
        row[f] = dt.date.fromisoformat(row[f])
    if row["reason"] not in _REASONS:  # a set look-up per row; the enum names what is wrong
        row["reason"] = ChangeReason(row["reason"]).value
    row["recorded_at"] = utc(dt.datetime.fromisoformat(row["recorded_at"]))
    return row


_IDENTITY_KEYS = frozenset(IDENTITY_FIELDS)
_IDENTITY_DATES = ("birth_date", "change_date")


def identity_payload_row(payload: dict[str, Any]) -> dict[str, Any]:
    """``identity_row(IdentityRecord.from_payload(payload))``, faster."""
    row = payload_row(payload, _IDENTITY_KEYS, _IDENTITY_DATES)
    return identity_row(IdentityRecord.from_payload(payload)) if row is None else row


Parse = Callable[[dict[str, Any]], dict[str, Any]]


def parsed(m: Message, parse: Parse) -> dict[str, Any]:
    """``parse(m.payload)``, or the row the hop before made of this same payload with the same
    function, which :func:`onward` handed on with it in the relay round: a record is parsed once on
    its way through the tiers. The row may be shared: read it, copy it to change it."""
    if m.parsed is not None and m.parsed[0] is parse:
        row: dict[str, Any] = m.parsed[1]
        return row
    return parse(m.payload)


def with_search_keys(identity: dict[str, Any]) -> dict[str, Any]:
    """The national copy's row: an identity row and the search keys of its names."""
    row = dict(identity)
    row["name_key"] = name_key(row["family_name"], row["given_name"])
    row["kana_key"] = kana_key(row["family_kana"], row["given_kana"])
    return row


def national_payload_row(payload: dict[str, Any]) -> dict[str, Any]:
    return with_search_keys(identity_payload_row(payload))


def national_row(record: IdentityRecord) -> dict[str, Any]:
    row = identity_row(record)
    row["name_key"] = name_key(record.family_name, record.given_name)
    row["kana_key"] = kana_key(record.family_kana, record.given_kana)
    return row


def forward_id(message_id: str, destination: str) -> str:
    """The id of the message a node sends on, derived from the one it applied: a record can be traced
    hop by hop, and a second publication of it would collide on the outbox's unique id."""
    return derived_message_id(message_id, destination)


def onward(
    node: str,
    destination: str,
    topic: str,
    messages: Sequence[Message],
    *,
    payloads: Sequence[dict[str, Any]] | None = None,
    parse: Parse | None = None,
    rows: Sequence[dict[str, Any]] = (),
) -> list[Message]:
    """What a node passes on: each applied message's payload (or ``payloads``, one per message,
    encoded once here for the outbox and for every later hop that passes them on), under the same
    key so order per resident holds on the next hop too. ``parse`` and ``rows``: what this node
    made of each payload, handed on with it (see :func:`parsed`)."""
    carried: list[tuple[dict[str, Any], str | None, tuple[Parse, dict[str, Any]] | None]]
    texts: list[tuple[dict[str, Any], str | None]]
    if payloads is not None:
        texts = [(p, encode_payload(p)) for p in payloads]
    else:
        texts = [(m.payload, m.raw) for m in messages]
    if parse is None:
        carried = [(p, raw, None) for p, raw in texts]
    else:
        carried = [(p, raw, (parse, row)) for (p, raw), row in zip(texts, rows, strict=True)]
    return [
        Message(
            forward_id(m.message_id, destination),
            node,
            destination,
            topic,
            m.key,
            payload,
            raw=raw,
            parsed=made,
        )
        for m, (payload, raw, made) in zip(messages, carried, strict=True)
    ]


def forward(
    session: Session,
    node: str,
    destination: str,
    topic: str,
    messages: Sequence[Message],
    now: dt.datetime,
    *,
    payloads: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Publish what a node passes on (see :func:`onward`)."""
    publish_many(session, onward(node, destination, topic, messages, payloads=payloads), now=now)


def refuse_unless(ok: bool, node: str, m: Message, rule: str) -> None:
    if not ok:
        raise MessageRefused(node, m.source, m.topic, rule)


class _NoNumbers:
    """Stands in for the NumberAuthority of a RegistryService the CS builds only to hand over
    messages: those methods issue no numbers, and if one ever did, this fails loudly instead of
    deriving 個人番号 under a made-up secret (fails closed)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the CS hands messages to the register; it issues no numbers ({name})")


class CsNode:
    """コミュニケーションサーバ of one municipality (``cs:<lg_code>``).

    - ``identity.changed`` from its own register: kept in the CS copy, sent on to the prefecture;
    - ``move_out_certificate`` (転出証明書情報, 特例転入) from another municipality's register: handed
      to this municipality's register;
    - ``move_in_notice`` (転入通知) from the municipality the person moved to: handed to the register,
      which closes (消除) the record that was moving out.
    """

    def __init__(self, clock: Clock, geography: Geography) -> None:
        self.clock = clock
        self.geo = geography

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        now = self.clock.now()
        applied: list[tuple[str, Entries]] = []
        out: list[Message] = []
        for node, messages in groups:
            _kind, lg = node_parts(node)
            rows: list[tuple[str | None, dict[str, Any]]] = []
            passed: list[Message] = []
            register: RegistryService | None = None
            for m in messages:
                src_kind, src_lg = node_parts(m.source)
                if m.topic == TOPIC_IDENTITY:
                    refuse_unless(
                        m.source == f"{REGISTRY}:{lg}", node, m, "only the municipality's own register"
                    )
                    row = identity_payload_row(m.payload)
                    refuse_unless(
                        row["lg_code"] == lg, node, m, "the record must belong to this municipality"
                    )
                    rows.append((m.message_id, row))
                    passed.append(m)
                elif m.topic == TOPIC_MOVE_OUT_CERT:
                    refuse_unless(
                        src_kind == REGISTRY and m.payload.get("from_lg_code") == src_lg and src_lg != lg,
                        node,
                        m,
                        "転出証明書情報 comes from the register of the municipality moved out of",
                    )
                    register = register or self._register(session, lg)
                    register.receive_move_out_certificate(m.payload)
                elif m.topic == TOPIC_MOVE_IN_NOTICE:
                    refuse_unless(
                        src_kind == REGISTRY and m.payload.get("to_lg_code") == src_lg and src_lg != lg,
                        node,
                        m,
                        "転入通知 comes from the register of the municipality moved into",
                    )
                    register = register or self._register(session, lg)
                    register.receive_move_in_notice(m.payload)
                else:
                    raise MessageRefused(node, m.source, m.topic, "unknown topic for a CS")
            if rows:
                applied.append((node, rows))
                destination = pref_node(self.geo.municipality(lg).pref_code)
                parses = [r for _, r in rows]
                out.extend(
                    onward(node, destination, TOPIC_IDENTITY, passed, parse=identity_payload_row, rows=parses)
                )
        if applied:
            apply_records_many(session, CS_TIER, applied, now)
            publish_many(session, out, now=now)

    def _register(self, session: Session, lg: str) -> RegistryService:
        return RegistryService(
            session,
            lg_code=lg,
            clock=self.clock,
            geography=self.geo,
            numbers=cast(NumberAuthority, _NoNumbers()),
            rng=random.Random(),
            staff="CS",
        )


class PrefNode:
    """都道府県サーバ (``pref:<pref_code>``): keeps the records of its municipalities' CSs and sends
    them on to J-LIS (住基法 §30の6, §30の7)."""

    def __init__(self, clock: Clock, geography: Geography) -> None:
        self.clock = clock
        self.geo = geography

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        now = self.clock.now()
        prefs: dict[str, str] = {}
        applied: list[tuple[str, Entries]] = []
        out: list[Message] = []
        for node, messages in groups:
            _kind, pp = node_parts(node)
            rows: list[tuple[str | None, dict[str, Any]]] = []
            for m in messages:
                refuse_unless(
                    m.topic == TOPIC_IDENTITY, node, m, "a prefecture server takes identity records only"
                )
                src_kind, src_lg = node_parts(m.source)
                if src_kind == CS and src_lg not in prefs:
                    prefs[src_lg] = self.geo.municipality(src_lg).pref_code
                refuse_unless(
                    src_kind == CS and prefs[src_lg] == pp, node, m, "only the CSs of this prefecture"
                )
                row = parsed(m, identity_payload_row)
                refuse_unless(
                    row["lg_code"] == src_lg, node, m, "a CS sends its own municipality's records only"
                )
                rows.append((m.message_id, row))
            applied.append((node, rows))
            parses = [r for _, r in rows]
            out.extend(
                onward(node, NATIONAL, TOPIC_IDENTITY, messages, parse=identity_payload_row, rows=parses)
            )
        apply_records_many(session, PREF_TIER, applied, now)
        publish_many(session, out, now=now)


class NationalNode:
    """全国サーバ (``national``): the 機構保存本人確認情報 that the provision server answers from.

    ``subscribers``: destinations that get every applied record (the national change stream that
    JPKI, the card system and the linkage consume; none by default)."""

    def __init__(self, clock: Clock, subscribers: Sequence[str] = ()) -> None:
        self.clock = clock
        self.subscribers = tuple(subscribers)

    def __call__(self, session: Session, node: str, messages: list[Message]) -> None:
        self.apply_groups(session, [(node, messages)])

    def apply_groups(self, session: Session, groups: list[tuple[str, list[Message]]]) -> None:
        now = self.clock.now()
        applied: list[tuple[str, Entries]] = []
        out: list[Message] = []
        for node, messages in groups:
            rows: list[tuple[str | None, dict[str, Any]]] = []
            for m in messages:
                refuse_unless(
                    m.topic == TOPIC_IDENTITY, node, m, "the national server takes identity records only"
                )
                src_kind, src_pp = node_parts(m.source)
                refuse_unless(src_kind == PREF, node, m, "only the prefecture servers")
                row = with_search_keys(parsed(m, identity_payload_row))
                # A 地方公共団体コード starts with its prefecture's code.
                refuse_unless(
                    row["lg_code"][:2] == src_pp, node, m, "a prefecture sends its own records only"
                )
                rows.append((m.message_id, row))
            applied.append((node, rows))
            for destination in self.subscribers:
                out.extend(onward(node, destination, TOPIC_IDENTITY, messages))
        apply_records_many(session, NATIONAL_TIER, applied, now)
        publish_many(session, out, now=now)
