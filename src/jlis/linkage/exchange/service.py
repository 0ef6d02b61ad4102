"""The hub's query path (情報照会・情報提供) and the portal's view of the 情報提供等記録.

A query flows, inside the caller's transaction:

1. shape checks of the request (InvalidInput naming the field; nothing recorded: it is no request);
2. freshness of ``sent_at`` (±5 minutes of the hub's clock) and the MAC with the requester's request
   key — both before the request id is claimed, so a forged request cannot burn a member's ids;
3. replay: the request id is claimed per requester (a second use is refused);
4. the provider must be an active member other than the requester; the legal exchange table must
   admit (requester, affair, provider, category, items, disclosure) — deny by default;
5. the hub resolves the requester's code to its link and translates it to the provider's code
   (an unknown code, or another member's, is refused);
6. the provider's middle server answers from its replica (no replica: ``no_match``);
7. the exchange is recorded at the hub, the requester and — when it was asked — the provider.

Every refusal from step 2 on is recorded too (at the hub and the requester), and is *returned*, not
raised: the caller commits, then turns it into :class:`jlis.errors.Forbidden` with
:meth:`QueryAnswer.raise_if_refused` (see :func:`run_query`). A refused answer carries no data.

:meth:`ExchangeHub.query_many` runs a batch of one member's queries with the same steps, but one
statement for the replay claims and one append of all records (one lock per keeper's chain head).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.clock import JST, Clock
from jlis.db import transaction
from jlis.errors import Forbidden, InvalidInput, NotFound, RuleViolation
from jlis.linkage.exchange import records as store
from jlis.linkage.exchange.models import (
    HUB_KEEPER,
    MAX_SKEW,
    DisclosurePolicy,
    ExchangeRecord,
    ExchangeView,
    Outcome,
    QueryAnswer,
    QueryRequest,
    RefusalReason,
    mac_matches,
    visible,
)
from jlis.linkage.exchange.records import ExchangeDraft
from jlis.linkage.exchange.tables import QueryRequestRow
from jlis.linkage.hub.errors import UnknownCode
from jlis.linkage.hub.members import Member, MemberKind
from jlis.masters.exchange_table import ExchangeTable, load_exchange_table

ACCESS_LOG = AuditLog("access")
HUB_ACTOR = "linkage-hub"
MAX_BATCH = 1000
_Q = cast(Table, QueryRequestRow.__table__)
_CLAIM = {
    "postgresql": postgresql.insert(_Q).on_conflict_do_nothing().returning(_Q.c.request_id),
    "sqlite": sqlite.insert(_Q).on_conflict_do_nothing().returning(_Q.c.request_id),
}

__all__ = [
    "ExchangeHub",
    "exchange_hub",
    "run_queries",
    "run_query",
]


class CodeHub(Protocol):
    """What the exchange needs of the hub's コアシステム (jlis.linkage.hub.codes.Hub)."""

    def person_link(self, member_id: str, code: str) -> str: ...
    def translate(self, from_member: str, code: str, to_member: str) -> str: ...


class Provider(Protocol):
    """A provider's middle server (jlis.linkage.middle.service.MiddleServer)."""

    def answer(self, code: str, category: str, items: Sequence[str]) -> dict[str, object]: ...


@runtime_checkable
class BatchCodeHub(Protocol):
    """Batch methods a hub may offer; :class:`ExchangeHub` uses them when present (see the docs)."""

    def person_links(self, member_id: str, codes: Sequence[str]) -> dict[str, str]:
        """code → link for the codes the hub issued to ``member_id``; the others are left out."""
        ...

    def codes_for_links(self, member_id: str, links: Sequence[str]) -> dict[str, str]:
        """link → ``member_id``'s code (issued on demand) for links the hub knows."""
        ...


@runtime_checkable
class BatchProvider(Protocol):
    """A batch method a middle server may offer; :class:`ExchangeHub` uses it when present."""

    def answer_many(
        self, codes: Sequence[str], category: str, items: Sequence[str]
    ) -> dict[str, dict[str, object]]:
        """code → the items of the person's current replica, for the codes with one; the codes
        not registered or without a replica are left out (no match). Raises like ``answer`` for
        a category or items the server refuses (the whole group is refused)."""
        ...


@dataclass
class _Work:
    """One query on its way through the steps."""

    request: QueryRequest
    member: Member
    reason: RefusalReason | None = None
    message: str = ""
    provider: Member | None = None
    link: str | None = None
    provider_code: str | None = None
    provider_asked: bool = False
    outcome: Outcome = Outcome.REFUSED
    data: Mapping[str, object] | None = None
    provided_at: dt.datetime | None = None

    def refuse(self, reason: RefusalReason, message: str) -> None:
        self.reason, self.message, self.outcome = reason, message, Outcome.REFUSED


class ExchangeHub:
    """The hub's query service in the caller's session (the caller commits).

    ``secret`` is the installation secret (the hub derives its own key from it); ``key_dir`` is where
    the storage key that seals the members' request keys lives. ``table``, ``request_keys``, ``hub``,
    ``provider_for`` and ``member_lookup`` default to the real parts and exist for wiring."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        secret: bytes,
        *,
        key_dir: Path | None = None,
        table: ExchangeTable | None = None,
        request_keys: Callable[[str], bytes] | None = None,
        hub: CodeHub | None = None,
        provider_for: Callable[[str], Provider] | None = None,
        member_lookup: Callable[[str], Member] | None = None,
    ) -> None:
        self.s = session
        self.clock = clock
        self.table = table if table is not None else load_exchange_table()
        if hub is None:
            from jlis.linkage.hub.codes import Hub

            hub = Hub(session, secret, clock)
        self.hub = hub
        if request_keys is None:
            if key_dir is None:
                raise ValueError("ExchangeHub needs key_dir (or request_keys) to check request MACs")
            from jlis.linkage.hub.members import MemberService

            request_keys = MemberService(session, clock, actor=HUB_ACTOR, key_dir=key_dir).request_key
        self._request_keys = request_keys
        self._provider_for = provider_for or self._middle_server
        if member_lookup is None:
            from jlis.linkage.hub.members import get_member

            def member_lookup(member_id: str) -> Member:
                return get_member(session, member_id)

        self._member_lookup = member_lookup
        self._members: dict[str, Member | None] = {}
        self._keys: dict[str, bytes] = {}
        self._providers: dict[str, Provider] = {}

    def _middle_server(self, member_id: str) -> Provider:
        from jlis.linkage.middle.service import MiddleServer

        # The hub's provider record is the record of this answer: no second audit entry for it.
        return MiddleServer(self.s, self.clock, member_id, actor=HUB_ACTOR, audit_answers=False)

    def _member(self, member_id: str) -> Member | None:
        if member_id not in self._members:
            try:
                self._members[member_id] = self._member_lookup(member_id)
            except NotFound:
                self._members[member_id] = None
        return self._members[member_id]

    def _provider(self, member_id: str) -> Provider:
        p = self._providers.get(member_id)
        if p is None:
            p = self._providers[member_id] = self._provider_for(member_id)
        return p

    def _key(self, member_id: str) -> bytes:
        k = self._keys.get(member_id)
        if k is None:
            k = self._keys[member_id] = self._request_keys(member_id)
        return k

    # -- queries ------------------------------------------------------------------------------

    def query(self, member: Member, request: QueryRequest) -> QueryAnswer:
        """One query by ``member`` (the authenticated requester). Refusals are returned, recorded."""
        return self.query_many(member, [request], _single=True)[0]

    def query_many(
        self, member: Member, requests: Sequence[QueryRequest], *, _single: bool = False
    ) -> list[QueryAnswer]:
        """A batch of ``member``'s queries, answered in order; one append of all their records."""
        if not _single and not 1 <= len(requests) <= MAX_BATCH:
            raise InvalidInput("requests", f"between 1 and {MAX_BATCH} queries per batch")
        checked = _checked(requests, "" if _single else "requests")
        return self._run([(member, r) for r in checked])

    def query_group(self, pairs: Sequence[tuple[Member, QueryRequest]]) -> list[QueryAnswer]:
        """Queries of several members at once (the group commit of :class:`QueryBatcher`), answered
        in order; one append of all their records. InvalidInput (``queries[i].<field>``) for a
        malformed one and Forbidden for an inactive requester fail the whole group (the batcher
        then runs each query alone)."""
        checked = _checked([r for _m, r in pairs], "queries" if len(pairs) > 1 else "")
        return self._run([(m, r) for (m, _r), r in zip(pairs, checked, strict=True)])

    def _run(self, pairs: Sequence[tuple[Member, QueryRequest]]) -> list[QueryAnswer]:
        now = self.clock.now()
        works = [_Work(r, m) for m, r in pairs]
        by_member: dict[str, list[_Work]] = {}
        for w in works:
            w.member.require_active()
            by_member.setdefault(w.member.id, []).append(w)
        for group in by_member.values():
            member = group[0].member
            self._authenticate(member, group, now)
            self._claim(member, group, now)
            for w in group:
                if w.reason is None:
                    self._check_table(member, w)
            self._resolve(member, [w for w in group if w.reason is None or w.reason in _LINKABLE])
        self._ask([w for w in works if w.reason is None])
        numbers = store.append_exchanges(self.s, [self._draft(w.member, w, now) for w in works], now)
        return [self._answer(w, no, now) for w, no in zip(works, numbers, strict=True)]

    def _authenticate(self, member: Member, works: Sequence[_Work], now: dt.datetime) -> None:
        key = self._key(member.id)
        for w in works:
            skew = abs(w.request.sent_at - now)
            if skew > MAX_SKEW:
                w.refuse(RefusalReason.STALE, f"sent_at is {skew} away from the hub's clock")
            elif not mac_matches(key, member.id, w.request):
                w.refuse(RefusalReason.TAMPERED, "the MAC does not match the request")

    def _claim(self, member: Member, works: Sequence[_Work], now: dt.datetime) -> None:
        """Claim the request ids of the authentic requests in one statement; an id already claimed
        (before, or earlier in this batch) is a replay."""
        wanted: dict[str, _Work] = {}
        for w in works:
            if w.reason is not None:
                continue
            rid = w.request.request_id
            if rid in wanted:
                w.refuse(RefusalReason.REPLAYED, f"request id {rid} is used twice in this batch")
            else:
                wanted[rid] = w
        if not wanted:
            return
        rows = [{"requester_id": member.id, "request_id": rid, "received_at": now} for rid in wanted]
        claim = _CLAIM[self.s.get_bind().dialect.name]
        # One statement (insertmanyvalues), compiled once: the ids that were new come back.
        claimed = set(self.s.execute(claim, rows).scalars())
        for rid, w in wanted.items():
            if rid not in claimed:
                w.refuse(RefusalReason.REPLAYED, f"request id {rid} was used before")

    def _check_table(self, member: Member, w: _Work) -> None:
        r = w.request
        provider = self._member(r.provider_id)
        if provider is None:
            w.refuse(RefusalReason.UNKNOWN_PROVIDER, f"no member {r.provider_id!r}")
            return
        w.provider = provider
        if provider.id == member.id:
            w.refuse(RefusalReason.SELF_QUERY, "a member does not query itself through the network")
            return
        if not provider.active:
            w.refuse(RefusalReason.INACTIVE, f"member {provider.id} is not active")
            return
        judgement = self.table.judge(
            requester=member.id,
            requester_municipal=member.kind is MemberKind.MUNICIPALITY,
            affair=r.affair,
            provider=provider.id,
            provider_municipal=provider.kind is MemberKind.MUNICIPALITY,
            category=r.category,
            items=r.items,
            disclosure=DisclosurePolicy(r.disclosure),
        )
        if not judgement.allowed:
            assert judgement.refusal is not None
            w.refuse(RefusalReason(judgement.refusal.value), judgement.message)

    def _resolve(self, member: Member, works: Sequence[_Work]) -> None:
        """The hub's link of each person and, for the lawful requests, the provider's code. With a
        hub that offers the batch methods (:class:`BatchCodeHub`), two statements per provider for
        the whole batch; otherwise one query at a time."""
        if not works:
            return
        hub = self.hub
        if isinstance(hub, BatchCodeHub):
            links = hub.person_links(member.id, list({w.request.requester_code for w in works}))
            by_provider: dict[str, list[_Work]] = {}
            for w in works:
                w.link = links.get(w.request.requester_code)
                if w.link is None:
                    if w.reason is None:
                        w.refuse(RefusalReason.UNKNOWN_CODE, "not a code the hub issued to the requester")
                elif w.reason is None:
                    assert w.provider is not None
                    by_provider.setdefault(w.provider.id, []).append(w)
            for provider_id, group in by_provider.items():
                codes = hub.codes_for_links(provider_id, [w.link for w in group if w.link])
                for w in group:
                    assert w.link is not None
                    w.provider_code = codes[w.link]
            return
        for w in works:
            r = w.request
            try:
                w.link = hub.person_link(member.id, r.requester_code)
                if w.reason is None:
                    assert w.provider is not None
                    w.provider_code = hub.translate(member.id, r.requester_code, w.provider.id)
            except (UnknownCode, InvalidInput, NotFound):  # unknown, another's or malformed: one refusal
                if w.reason is None:
                    w.refuse(RefusalReason.UNKNOWN_CODE, "not a code the hub issued to the requester")

    def _ask(self, works: Sequence[_Work]) -> None:
        """The providers' answers. A provider offering :class:`BatchProvider` answers each group of
        the same (category, items) in one call; otherwise one query at a time."""
        groups: dict[tuple[str, str, tuple[str, ...]], list[_Work]] = {}
        for w in works:
            if w.reason is not None or w.provider_code is None:
                continue
            assert w.provider is not None
            groups.setdefault((w.provider.id, w.request.category, tuple(w.request.items)), []).append(w)
        for (provider_id, category, items), group in groups.items():
            provider = self._provider(provider_id)
            for w in group:
                w.provider_asked = True
            if isinstance(provider, BatchProvider) and len(group) > 1:
                try:
                    found = provider.answer_many([w.provider_code or "" for w in group], category, items)
                except (InvalidInput, RuleViolation, Forbidden) as exc:
                    for w in group:
                        w.refuse(RefusalReason.PROVIDER_REFUSED, exc.message)
                else:
                    for w in group:
                        data = found.get(w.provider_code or "")
                        w.outcome = Outcome.NO_MATCH if data is None else Outcome.PROVIDED
                        w.data = data
                answered_at = self.clock.now()
                for w in group:
                    w.provided_at = answered_at
                continue
            for w in group:
                try:
                    w.data = provider.answer(w.provider_code or "", category, items)
                except NotFound:  # no replica, or the person is not registered there
                    w.outcome = Outcome.NO_MATCH
                except (InvalidInput, RuleViolation, Forbidden) as exc:
                    w.refuse(RefusalReason.PROVIDER_REFUSED, exc.message)
                else:
                    w.outcome = Outcome.PROVIDED
                w.provided_at = self.clock.now()

    def _draft(self, member: Member, w: _Work, now: dt.datetime) -> ExchangeDraft:
        r = w.request
        provider_name = (
            w.provider.name
            if w.provider is not None
            else (self.table.member_name(r.provider_id) or r.provider_id)
        )
        try:
            affair_name = self.table.affair(r.affair).name
        except InvalidInput:
            affair_name = "(表にない事務)"
        return ExchangeDraft(
            request_id=r.request_id,
            requester_id=member.id,
            requester_name=member.name,
            provider_id=r.provider_id,
            provider_name=provider_name,
            affair=r.affair,
            affair_name=affair_name,
            category=r.category,
            items=tuple(r.items),
            outcome=w.outcome,
            reason=w.reason,
            requested_at=now,
            provided_at=w.provided_at,
            disclosure=DisclosurePolicy(r.disclosure),
            disclose_after=r.disclose_after,
            requester_person=r.requester_code,
            hub_person=w.link,
            provider_person=w.provider_code if w.provider_asked else None,
            provider_asked=w.provider_asked,
        )

    @staticmethod
    def _answer(w: _Work, exchange_no: int, now: dt.datetime) -> QueryAnswer:
        r = w.request
        return QueryAnswer(
            request_id=r.request_id,
            exchange_no=exchange_no,
            outcome=w.outcome,
            provider_id=r.provider_id,
            affair=r.affair,
            category=r.category,
            items=tuple(r.items),
            requested_at=now,
            provided_at=w.provided_at,
            data=dict(w.data) if w.outcome is Outcome.PROVIDED and w.data is not None else {},
            reason=w.reason,
            message=w.message,
        )

    # -- records ------------------------------------------------------------------------------

    def records_of(
        self, member: Member, *, code: str | None = None, limit: int = 100
    ) -> list[ExchangeRecord]:
        """A member's own records (newest first), optionally about one person (by its own code).
        The read is written to the ``access`` audit chain (in the caller's transaction)."""
        member.require_active()
        found = store.records(self.s, member.id, person=code, limit=limit, newest_first=True)
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=member.id,
            action="read_records",
            subject=None,
            details={
                "system": "linkage",
                "keeper": member.id,
                "by_person": code is not None,
                "records": len(found),
            },
        )
        return found

    def history_for(self, portal: Member, portal_code: str, now: dt.datetime) -> list[ExchangeView]:
        """やりとり履歴 of the person the portal's code names: the hub's records about them, newest
        first, each only if its disclosure policy lets the person see it at ``now``. Fails closed:
        only the portal member may ask, and an unknown code is UnknownCode (404)."""
        if portal.kind is not MemberKind.PORTAL:
            raise Forbidden(
                f"member {portal.id} is not the portal", field="member", rule="must be the portal"
            )
        portal.require_active()
        link = self.hub.person_link(portal.id, portal_code)
        today = now.astimezone(JST).date()  # the legal calendar is Japan's
        out: list[ExchangeView] = []
        for rec in store.records(self.s, HUB_KEEPER, person=link, newest_first=True):
            if not visible(rec.disclosure, rec.disclose_after, today):
                continue
            out.append(self._view(rec))
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=portal.id,
            action="disclose",
            subject=None,
            details={"system": "linkage", "purpose": "情報提供等記録の開示", "records": len(out)},
        )
        return out

    def _view(self, rec: ExchangeRecord) -> ExchangeView:
        labels = self._item_labels(rec.category)
        return ExchangeView(
            exchange_no=rec.exchange_no,
            requested_at=rec.requested_at,
            provided_at=rec.provided_at,
            requester_id=rec.requester_id,
            requester_name=rec.requester_name,
            provider_id=rec.provider_id,
            provider_name=rec.provider_name,
            affair=rec.affair,
            affair_name=rec.affair_name,
            category=rec.category,
            category_label=self.table.category_label(rec.category) or rec.category,
            items=rec.items,
            item_labels=tuple(labels.get(i, i) for i in rec.items),
            outcome=rec.outcome,
            disclosure=rec.disclosure,
        )

    def _item_labels(self, category: str) -> Mapping[str, str]:
        from jlis.linkage.middle.schemas import load_replica_schemas

        schema = load_replica_schemas().get(category)
        return {} if schema is None else {name: spec.label for name, spec in schema.items.items()}


def _checked(requests: Sequence[QueryRequest], where: str) -> list[QueryRequest]:
    """Shape checks of every request before anything is done; ``where`` prefixes the field."""
    out: list[QueryRequest] = []
    for i, request in enumerate(requests):
        try:
            out.append(request.checked())
        except InvalidInput as exc:
            if not where:
                raise
            raise InvalidInput(f"{where}[{i}].{exc.field}", exc.rule) from None
    return out


# A refusal after which the hub still names the person in its own record (the request was
# authentic, so the code is worth resolving): the person's history then shows the attempt.
_LINKABLE = frozenset(
    {
        RefusalReason.UNKNOWN_PROVIDER,
        RefusalReason.SELF_QUERY,
        RefusalReason.INACTIVE,
        RefusalReason.UNKNOWN_AFFAIR,
        RefusalReason.UNKNOWN_CATEGORY,
        RefusalReason.NOT_IN_TABLE,
        RefusalReason.ITEMS_NOT_ALLOWED,
        RefusalReason.DISCLOSURE_NOT_ALLOWED,
    }
)


# ---------------------------------------------------------------------------------------------
# Adapters: one transaction, committed whatever the outcome, then raise for a refusal
# ---------------------------------------------------------------------------------------------


def exchange_hub(session: Session, container: object) -> ExchangeHub:
    """An ExchangeHub wired from a :class:`jlis.container.Container`."""
    from jlis.container import Container

    c = cast(Container, container)
    return ExchangeHub(session, c.clock, c.secret, key_dir=c.settings.resolved_key_dir)


def run_query(
    factory: sessionmaker[Session],
    make_hub: Callable[[Session], ExchangeHub],
    member_of: Callable[[Session], Member],
    request: QueryRequest,
) -> QueryAnswer:
    """The adapter for the API and CLI: the query in its own transaction, committed whatever the
    outcome (a refusal must stay on record), then :class:`Forbidden` for a refusal."""
    with transaction(factory) as s:
        answer = make_hub(s).query(member_of(s), request)
    answer.raise_if_refused()
    return answer


def run_queries(
    factory: sessionmaker[Session],
    make_hub: Callable[[Session], ExchangeHub],
    member_of: Callable[[Session], Member],
    requests: Sequence[QueryRequest],
) -> list[QueryAnswer]:
    """A batch in one transaction; refusals are answers in the list (the batch itself succeeds)."""
    with transaction(factory) as s:
        return make_hub(s).query_many(member_of(s), requests)


def prune_requests(session: Session, now: dt.datetime) -> int:
    """Forget request ids older than twice the freshness window: a request that old is refused as
    stale before its id is looked at, so its id can no longer be replayed."""
    cutoff = now - 2 * MAX_SKEW
    result = session.execute(delete(_Q).where(_Q.c.received_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def known_request(session: Session, requester_id: str, request_id: str) -> bool:
    return (
        session.execute(
            select(_Q.c.request_id).where(_Q.c.requester_id == requester_id, _Q.c.request_id == request_id)
        ).first()
        is not None
    )
