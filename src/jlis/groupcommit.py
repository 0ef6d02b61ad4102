"""Group commit: units of work submitted by concurrent callers share one transaction and one commit.

A counter action writes a few rows; its commit costs more than the rows (on SQLite the commit writes
every page the transaction dirtied to the WAL; on PostgreSQL it waits for the WAL flush). When many
clerks work at once, :class:`GroupCommit` runs the actions that arrive while the previous group is
being written one after the other in a single transaction, commits once, and only then hands each
caller its own result — so no caller hears "done" before its change is durable, and each sees the
others' changes in the order they ran, as if serially.

Isolation of failures:

- if an action raises (a refusal, a database error), the whole group is rolled back and run again
  in the same order: the actions before it as a group, the failed one alone in its own transaction
  (so its caller gets its error exactly as a direct call would give it, with nothing of it written),
  then the rest as a group;
- if the group's commit itself fails, nothing of the group was written: each action is run again
  alone, so a fault fails only its own caller;
- a group or a lone action that fails because another writer (another process) changed what it
  read since it read it (what ``conflict`` recognises) is run again, reading it as it is then, up
  to ``CONFLICT_RETRIES`` times; then a group's actions run alone, and a lone action's caller gets
  what ``conflict`` made of the failure.

An action may therefore run more than once before it is committed: it must keep its effects inside
the session (every counter action does: it writes only through it). Refusals are rare at a counter
(forms and the API check their input before the action), so the rerun costs little; a savepoint per
action would cost two statements on every action instead.

Without a running committer (``start`` not called, or after ``stop``), :meth:`GroupCommit.run` runs
the action alone in its own transaction, exactly as before; so does a call from the committer's own
thread.

Planned groups (SQLite, with a :class:`Planning`): SQLite lets one transaction write at a time, and
a group holds the write lock for all of its actions' Python. A planned group runs first on a
snapshot, without the lock, its writes recorded (jlis.planned); then, under the lock, only its
guards and writes are replayed. An action the plan refuses (a statement it cannot defer, a read it
cannot vouch for) or that fails is given up in the plan, with what it held, and runs after it the
ordinary way; so does the whole group when its replay finds that what it read has changed, and
then the next group, the next two, four … up to ``MAX_BACKOFF`` after each such refusal in a row: a
refused replay costs a rerun, and refusals come in runs (another process writing the same rows).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from jlis.db import read_only, transaction
from jlis.planned import PlanningConnection, planning, replay

log = logging.getLogger(__name__)

T = TypeVar("T")
J = TypeVar("J")
WAIT_SECONDS = 120.0  # a caller gives up on its group after this (a stuck database), never sooner
MAX_BACKOFF = 64  # groups run unplanned after a refused replay, at most (see GroupCommit._planned)
CONFLICT_RETRIES = 3  # runs more of work another writer raced (see GroupCommit, ``conflict``)


class Grouper(Generic[J]):
    """A thread that takes the jobs submitted to it in groups: whatever queued up while the previous
    group was being handled (up to ``max_group``; once one job is there, waiting up to ``max_wait``
    seconds for more). Subclasses handle a group in :meth:`_run`. After :meth:`stop` nothing more
    is queued (``_submit`` says so and the caller does the job itself), and what was queued before
    is handled first."""

    def __init__(self, *, name: str, max_group: int, max_wait: float = 0.0) -> None:
        if not 1 <= max_group <= 1000:
            raise ValueError("max_group must be between 1 and 1000")
        self.name = name
        self.max_group = max_group
        self.max_wait = max_wait
        self._queue: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._gate = threading.Lock()  # orders submissions against stop(): none lands after the end

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        with self._gate:
            if not self.running:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Handle what is queued, then stop; later submissions are done by their callers."""
        with self._gate:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue.put(None)  # the last item: _submit queues nothing once _thread is None
        thread.join(timeout)

    def _submit(self, job: J) -> bool:
        """Queue ``job``; False when the grouper is not running (or this is its own thread)."""
        with self._gate:
            thread = self._thread
            if thread is None or not thread.is_alive() or thread is threading.current_thread():
                return False
            self._queue.put(job)
            return True

    def _loop(self) -> None:
        woken = 0  # callers the last group handed their results to
        while True:
            if woken > 1:
                # Let the callers just woken run first: each submits its next job in a few tens of
                # µs, so they join this group instead of taking the interpreter lock from the
                # committer once it holds the database's write lock (on SQLite: ~0.5 ms of a
                # group's BEGIN went to them; see bench/RESULTS.md, Propagation). A lone caller
                # (a group of one) still goes at once.
                time.sleep(0)
            first = self._queue.get()
            if first is None:
                return
            jobs: list[J] = [first]
            stopping = False
            deadline = time.monotonic() + self.max_wait
            while len(jobs) < self.max_group:
                remaining = deadline - time.monotonic()
                try:
                    job = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            self._run(jobs)
            woken = len(jobs)
            if stopping:
                return

    def _run(self, jobs: Sequence[J]) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Planning:
    """How a :class:`GroupCommit` plans its groups (see the module's docstring). ``prepare`` replaces
    the group commit's own on the plan's session; ``mark`` and ``rewind`` take and restore what the
    session holds for the group, around each action (one that is given up leaves nothing);
    ``finish`` replaces ``finish``, and returns what must still be written under the lock, after
    the replay, in its transaction."""

    tables: frozenset[str]  # the only tables a planned group may touch
    prepare: Callable[[Session], None]
    mark: Callable[[Session], Any]
    rewind: Callable[[Session, Any], None]
    finish: Callable[[Session], Callable[[Session], None]]


class Outcome(Generic[T]):
    """A job's result or exception, handed from a grouper's thread to the caller waiting for it:
    the part of ``concurrent.futures.Future`` a grouper uses, on one lock. Future's condition
    variable cost ~10 µs of Python a job (32 clerks through the counter desk: 23.5 against 12.5 µs
    of user CPU a job, the group commit's own cost)."""

    __slots__ = ("_error", "_ready", "_set", "_value")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()  # released once the outcome is set
        self._set = False
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._set

    def set_result(self, value: T) -> None:
        self._settle(value, None)

    def set_exception(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        if self._set:
            raise RuntimeError("the outcome is set already")
        self._value, self._error, self._set = value, error, True
        self._ready.release()

    def _wait(self, timeout: float | None) -> None:
        if not self._ready.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("no outcome in time")
        self._ready.release()  # for whoever else asks

    def result(self, timeout: float | None = None) -> T:
        """The value, waiting for it; or the exception, raised."""
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return self._error


@dataclass
class _Job(Generic[T]):
    work: Callable[[Session], T]
    hint: Any = None  # what the action will read (see GroupCommit.prefetch)
    future: Outcome[T] = field(default_factory=Outcome)


class GroupCommit(Grouper[_Job[Any]]):
    """One committer thread per database and purpose (``name`` names the thread). No waiting for
    more once an action is there: a lone clerk pays nothing, and a busy counter gets groups as large
    as its load."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        name: str,
        max_group: int = 64,
        prepare: Callable[[Session], None] | None = None,
        finish: Callable[[Session], None] | None = None,
        planning: Planning | None = None,
        prefetch: Callable[[Session, list[Any]], None] | None = None,
        conflict: Callable[[BaseException], Exception | None] | None = None,
    ) -> None:
        """``prepare`` and ``finish`` run in each group's transaction, before its first action and
        after its last (e.g. to hold back rows the actions would write one by one and write them
        in bulk); an action run alone gets neither. With ``planning``, groups are planned where
        the database allows it (SQLite). ``prefetch`` runs after ``prepare`` in a group of
        actions that name what they will read (``run(work, hint=...)``), with their hints: one
        statement may then read for all of them what each would read on its own, one round trip
        each (the actions must still find anything an earlier one changed as it is now).
        ``conflict`` recognises a failure caused by a concurrent writer of what the actions read
        (None for any other): work that fails so is run again, and after ``CONFLICT_RETRIES``
        more runs a lone action's caller gets the error ``conflict`` returned."""
        super().__init__(name=name, max_group=max_group)
        self.factory = factory
        self.prepare = prepare
        self.finish = finish
        self.planning = planning
        self.prefetch = prefetch
        self.conflict = conflict
        self.groups = 0  # committed groups and the actions in them, for tests and benchmarks
        self.actions = 0
        self.planned_groups = 0  # of those, the planned ones and their actions
        self.planned_actions = 0
        self.given_up = 0  # actions a plan gave up (run after it the ordinary way)
        self.replays_failed = 0  # planned groups whose replay found their reads changed
        self.conflicts = 0  # runs again of work a concurrent writer raced (see ``conflict``)
        self._unplanned_for = 0  # groups to run the ordinary way before the next plan
        self._backoff = 1  # how many, after the next refused replay (doubling, see MAX_BACKOFF)

    def run(self, work: Callable[[Session], T], *, hint: Any = None) -> T:
        """``work(session)``'s result once it is committed (or its exception, with nothing of it
        written). ``hint``: what it will read, for the group's ``prefetch``."""
        job: _Job[T] = _Job(work, hint)
        if not self._submit(job):
            attempt = 0
            while True:
                try:
                    with transaction(self.factory) as s:
                        return work(s)
                except Exception as exc:
                    if not self._again(exc, attempt):
                        error = self._error_for(exc)
                        if error is exc:
                            raise
                        raise error from exc
                attempt += 1
        return job.future.result(WAIT_SECONDS)

    def _again(self, exc: BaseException, attempt: int) -> bool:
        """Whether work that failed with ``exc`` after ``attempt`` earlier runs is to run again: a
        concurrent writer changed what it read (``conflict``), and it has runs left."""
        if self.conflict is None or attempt >= CONFLICT_RETRIES or self.conflict(exc) is None:
            return False
        self.conflicts += 1
        log.debug("%s: a concurrent writer changed what the work read; running it again", self.name)
        return True

    def _error_for(self, exc: BaseException) -> BaseException:
        """What the caller of an action that failed with ``exc`` gets."""
        error = None if self.conflict is None else self.conflict(exc)
        if error is None:
            return exc
        error.__cause__ = exc
        return error

    def _run(self, jobs: Sequence[_Job[Any]]) -> None:
        if self._unplanned_for:  # backing off after a replay that found its reads changed
            self._unplanned_for -= 1
        elif self.planning is not None:
            try:
                jobs = self._planned(self.planning, jobs)
            except BaseException as exc:  # interpreter shutdown: nobody waits forever
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                raise
            if not jobs:
                return
        self._ordinary(jobs)

    def _planned(self, how: Planning, jobs: Sequence[_Job[Any]]) -> Sequence[_Job[Any]]:
        """Run the group planned; return the jobs that must still run the ordinary way."""
        done: list[tuple[_Job[Any], Any]] = []
        left: list[_Job[Any]] = []
        with self.factory() as s:
            read_only(s)
            raw = s.connection().connection.driver_connection
            if not isinstance(raw, PlanningConnection):  # PostgreSQL: its writers do not queue
                self.planning = None
                return jobs
            try:
                with planning(raw, how.tables) as plan:
                    how.prepare(s)
                    for job in jobs:
                        at, held = plan.mark(), how.mark(s)
                        try:
                            done.append((job, job.work(s)))
                        except Exception:  # refused by the plan, or failed: it runs again, alone
                            plan.rewind(at)
                            how.rewind(s, held)
                            left.append(job)
                    if not done:  # everything was given up: nothing to finish or replay
                        return jobs
                    live = how.finish(s)
            except Exception as why:  # refused as a whole, or the snapshot failed: nothing is lost
                log.debug("%s: group not planned: %s", self.name, why)
                return jobs
            finally:
                s.rollback()
        try:
            with transaction(self.factory) as w:
                replay(w.connection().connection.driver_connection, plan)
                live(w)
        except Exception as why:  # nothing of it is written: the guards failed, or the commit
            log.debug("%s: planned group not replayed: %s", self.name, why)
            self.replays_failed += 1
            # Another writer is busy with what these groups read (another worker of the same
            # municipalities, say): each refused replay costs a rerun, so plan less for a while.
            self._unplanned_for, self._backoff = self._backoff, min(self._backoff * 2, MAX_BACKOFF)
            return jobs
        self._backoff = 1
        self.groups += 1
        self.actions += len(done)
        self.planned_groups += 1
        self.planned_actions += len(done)
        self.given_up += len(left)
        for job, value in done:
            job.future.set_result(value)
        return left

    def _ordinary(self, jobs: Sequence[_Job[Any]], attempt: int = 0) -> None:
        """Run ``jobs`` as one group (``attempt``: how many times it ran before, see ``conflict``)."""
        results: list[Any] = []
        failed: BaseException | None = None
        try:
            with transaction(self.factory) as s:
                if self.prepare is not None:
                    self.prepare(s)
                if self.prefetch is not None:
                    hints = [job.hint for job in jobs if job.hint is not None]
                    if len(hints) > 1:
                        self.prefetch(s, hints)
                for job in jobs:
                    try:
                        results.append(job.work(s))
                    except Exception as exc:
                        failed = exc
                        raise _Refused from exc  # nothing of the group is written (see below)
                if self.finish is not None:
                    self.finish(s)
        except _Refused:
            assert failed is not None
            i = len(results)
            if len(jobs) == 1:
                if self._again(failed, attempt):
                    self._ordinary(jobs, attempt + 1)
                else:
                    jobs[0].future.set_exception(self._error_for(failed))
                return
            # An action that fails may have written part of itself before it failed: rather than
            # wrap every action in a savepoint (two more statements each, round trips on
            # PostgreSQL), the group is rolled back and run again in the same order: the actions
            # before the failed one as a group, the failed one alone (exactly as a direct call,
            # error included), then the rest as a group.
            for part in (jobs[:i], jobs[i : i + 1], jobs[i + 1 :]):
                if part:
                    self._ordinary(part)
            return
        except Exception as exc:  # the commit failed: nothing of the group is written
            if self._again(exc, attempt):  # raced by another writer: run it again, reading again
                self._ordinary(jobs, attempt + 1)
                return
            if len(jobs) == 1:
                jobs[0].future.set_exception(self._error_for(exc))
                return
            log.warning(
                "%s: a group of %d failed to commit (%s); running each alone", self.name, len(jobs), exc
            )
            for job in jobs:
                self._ordinary([job])
            return
        except BaseException as exc:  # interpreter shutdown: nobody waits forever
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            raise
        self.groups += 1
        self.actions += len(jobs)
        for job, value in zip(jobs, results, strict=True):
            job.future.set_result(value)


class _Refused(Exception):
    """An action of the group failed: roll the group back."""
