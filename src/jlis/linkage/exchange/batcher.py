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
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from jlis.db import transaction
from jlis.linkage.exchange.models import QueryAnswer, QueryRequest
from jlis.linkage.exchange.service import ExchangeHub, prune_requests
from jlis.linkage.hub.members import Member

log = logging.getLogger(__name__)


@dataclass
class _Job:
    member: Member
    request: QueryRequest
    future: Future[QueryAnswer] = field(default_factory=Future)


class QueryBatcher:
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
        self.factory = factory
        self.make_hub = make_hub
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.prune_every = prune_every
        self._pruned_at = time.monotonic()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.groups = 0  # committed groups, for tests and the bench
        self.queries = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> QueryBatcher:
        if not self.running:
            self._thread = threading.Thread(target=self._loop, name="linkage-query-batcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Answer what is queued, then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def submit(self, member: Member, request: QueryRequest, timeout: float = 30.0) -> QueryAnswer:
        """The answer to one query (refusals included, as answers), once its group is committed.
        Without a running batcher the query runs alone, in its own transaction."""
        request.checked()
        if not self.running:
            return self._alone(member, request)
        job = _Job(member, request)
        self._queue.put(job)
        return job.future.result(timeout)

    def _alone(self, member: Member, request: QueryRequest) -> QueryAnswer:
        with transaction(self.factory) as s:
            return self.make_hub(s).query_group([(member, request)])[0]

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs = [first]
            deadline = time.monotonic() + self.max_wait
            while len(jobs) < self.max_batch:
                try:
                    remaining = deadline - time.monotonic()
                    job = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            self._run(jobs)

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
