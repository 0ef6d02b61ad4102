"""The counter's group commit: concurrent counter actions of one process share a transaction and a
commit (jlis.groupcommit), and their history rows and messages are written in bulk at the end of
each group (store.hold_changes). On SQLite each group is first planned on a snapshot, so that it
holds the write lock only to replay its writes (store.GroupPlan). The web app's counter routes use
it (registry.api.counter_desk), and so does the propagation bench."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from jlis.groupcommit import GroupCommit, Planning
from jlis.registry import store

COUNTER_PLANNING = Planning(
    tables=store.PLANNED_TABLES,
    prepare=store.plan_changes,
    mark=store.held_mark,
    rewind=store.rewind_held_changes,
    finish=store.write_planned_changes,
)


def counter_group_commit(factory: sessionmaker[Session], *, planned: bool = True) -> GroupCommit:
    """Not started: call ``start()`` (the app's lifespan does); until then each action runs alone.
    ``planned``: plan the groups where the database allows it (SQLite)."""
    return GroupCommit(
        factory,
        name="counter-desk",
        prepare=store.hold_changes,
        finish=store.write_held_changes,
        planning=COUNTER_PLANNING if planned else None,
        prefetch=store.prefetch_residents,
        conflict=store.raced,
    )
