"""DV・ストーカー行為等の被害者への支援措置: while a measure is in force (one year, renewable), no
certificate about the person, or printing the person, leaves a kiosk. Kept by each municipality
(the one of residence, and the 本籍地 for the 戸籍の附票)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.auth.models import Principal
from jlis.clock import Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import InvalidInput, NotFound
from jlis.kiosk.issuer.access import audit_read, require_keeper, require_reader
from jlis.kiosk.issuer.tables import DvFlagRow

MEASURE_DAYS = 366  # a 支援措置 runs one year unless renewed


class SupportMeasures:
    def __init__(self, session: Session, clock: Clock, lg_code: str, principal: Principal) -> None:
        self.s = session
        self.clock = clock
        self.lg_code = str(LgCode.parse(lg_code))
        self.principal = principal

    def start(self, resident_code: str, *, since: dt.date | None = None, until: dt.date | None = None) -> int:
        """Put a measure in force (from today for a year unless given); returns its id."""
        require_keeper(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        start = since or self.clock.today()
        end = until or start + dt.timedelta(days=MEASURE_DAYS)
        if end <= start:
            raise InvalidInput("支援措置の終了日", "must be after the start")
        row = DvFlagRow(
            lg_code=self.lg_code,
            resident_code=code,
            since=start,
            until=end,
            set_by=self.principal.actor,
            set_at=self.clock.now(),
        )
        self.s.add(row)
        self.s.flush()
        return row.id

    def lift(self, measure_id: int) -> None:
        require_keeper(self.principal, self.lg_code)
        row = self.s.get(DvFlagRow, measure_id)
        if row is None or row.lg_code != self.lg_code or row.lifted_at is not None:
            raise NotFound("支援措置", str(measure_id))
        row.lifted_at, row.lifted_by = self.clock.now(), self.principal.actor
        self.s.flush()

    def flagged(self, resident_codes: Iterable[str], day: dt.date) -> set[str]:
        """Which of ``resident_codes`` are under a measure on ``day`` (each found is audited)."""
        require_reader(self.principal, self.lg_code)
        codes = sorted({str(ResidentCode.parse(c)) for c in resident_codes})
        if not codes:
            return set()
        t = DvFlagRow
        found = set(
            self.s.execute(
                select(t.resident_code).where(
                    t.lg_code == self.lg_code,
                    t.resident_code.in_(codes),
                    t.lifted_at.is_(None),
                    t.since <= day,
                    t.until >= day,
                )
            ).scalars()
        )
        for code in sorted(found):
            audit_read(self.s, self.clock, self.principal, self.lg_code, code, "支援措置照会")
        return found
