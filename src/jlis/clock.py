"""Injected time. Domain code never calls ``datetime.now()``; it receives a :class:`Clock`."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

JST = dt.timezone(dt.timedelta(hours=9), "JST")


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """An aware datetime in JST."""
        ...

    def today(self) -> dt.date: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(JST)

    def today(self) -> dt.date:
        return self.now().date()


class FixedClock:
    """A clock for tests and replays: it stands still until moved."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(JST)

    def now(self) -> dt.datetime:
        return self._at

    def today(self) -> dt.date:
        return self._at.date()

    def advance(self, **delta: float) -> None:
        self._at = self._at + dt.timedelta(**delta)

    def set(self, at: dt.datetime) -> None:
        self._at = at.astimezone(JST)
