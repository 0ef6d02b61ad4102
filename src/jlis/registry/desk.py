"""The counter's group commit: concurrent counter actions of one process share a transaction and a
commit (jlis.groupcommit), and their history rows and messages are written in bulk at the end of
each group (store.hold_changes). The web app's counter routes use it (registry.api.counter_desk),
and so does the propagation bench."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from jlis.groupcommit import GroupCommit
from jlis.registry import store


def counter_group_commit(factory: sessionmaker[Session]) -> GroupCommit:
    """Not started: call ``start()`` (the app's lifespan does); until then each action runs alone."""
    return GroupCommit(
        factory, name="counter-desk", prepare=store.hold_changes, finish=store.write_held_changes
    )
