"""Group commit for single queries: concurrent callers' queries run together in one transaction.

Every exchange costs three record appends and a commit; under load most of that is the commit and
the lock of the hub's chain head, which every exchange takes. :class:`QueryBatcher` collects the
queries that arrive while the previous group is being written (up to ``max_batch``, waiting at
most ``max_wait`` for more once one is there), runs them through
:meth:`ExchangeHub.query_group` in one transaction, and hands each caller its own answer once the
group is committed — so an answer never reaches a caller before its records are durable.

Every ``prune_every`` seconds a group's transaction also forgets request ids too old to be replayed
(:func:`jlis.linkage.exchange.service.prune_requests`), so the replay ledger stays small.

Failure isolation: if a group's transaction fails (a database error, a requester deactivated
meanwhile), each of its queries is run again alone, so one bad query fails only its own caller.
Shape errors (InvalidInput) are raised in the caller's thread before the query is queued: nothing
is recorded for them, as on the direct path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from jlis.db import transaction
from jlis.groupcommit import Grouper, Outcome
from jlis.linkage.exchange.models import QueryAnswer, QueryRequest
from jlis.linkage.exchange.service import ExchangeHub, prune_requests
from jlis.linkage.hub.members import Member

log = logging.getLogger(__name__)


@dataclass
class _Job:
    member: Member
    request: QueryRequest
    future: Outcome[QueryAnswer] = field(default_factory=Outcome)


class QueryBatcher(Grouper[_Job]):
    def __init__(
        self,
        factory: sessionmaker[Session],
        make_hub: Callable[[Session], ExchangeHub],
        *,
        max_batch: int = 200,
        max_wait: float = 0.002,
        prune_every: float = 60.0,
    ) -> None:
        if not 1 <= max_batch <= 1000:
            raise ValueError("max_batch must be between 1 and 1000")
        super().__init__(name="linkage-query-batcher", max_group=max_batch, max_wait=max_wait)
        self.factory = factory
        self.make_hub = make_hub
        self.prune_every = prune_every
        self._pruned_at = time.monotonic()
        self.groups = 0  # committed groups, for tests and the bench
        self.queries = 0

    def submit(self, member: Member, request: QueryRequest, timeout: float = 30.0) -> QueryAnswer:
        """The answer to one query (refusals included, as answers), once its group is committed.
        Without a running batcher the query runs alone, in its own transaction."""
        request.checked()
        job = _Job(member, request)
        if not self._submit(job):
            return self._alone(member, request)
        return job.future.result(timeout)

    def _alone(self, member: Member, request: QueryRequest) -> QueryAnswer:
        with transaction(self.factory) as s:
            return self.make_hub(s).query_group([(member, request)])[0]

    def _run(self, jobs: Sequence[_Job]) -> None:
        try:
            with transaction(self.factory) as s:
                hub = self.make_hub(s)
                answers = hub.query_group([(j.member, j.request) for j in jobs])
                if time.monotonic() - self._pruned_at >= self.prune_every:
                    prune_requests(s, hub.clock.now())  # the replay ledger keeps only ~10 minutes
                    self._pruned_at = time.monotonic()
        except Exception as exc:  # the whole group rolled back: nothing of it is recorded
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            log.warning("a group of %d queries failed (%s); running each alone", len(jobs), exc)
            for job in jobs:
                self._run([job])
            return
        self.groups += 1
        self.queries += len(jobs)
        for job, answer in zip(jobs, answers, strict=True):
            job.future.set_result(answer)
