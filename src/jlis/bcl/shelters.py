"""Shelters (避難所) and check-in / check-out with the My Number card (facts §11: card-based entry
and exit at shelters).

A municipality's staff open and close its shelters and run their reception. A person checks in by
presenting their card: the reader verifies the card (a signature over a challenge, outside this
module) and hands over the serial of its authentication certificate, which :func:`card_holder`
maps to the person. Anyone with a valid card may shelter anywhere; a person is in at most one
shelter at a time (a unique index holds that rule even when two shelters scan the card at once).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.auth.models import Principal
from jlis.bcl.disasters import get_disaster
from jlis.bcl.identity import CardHolder, card_holder
from jlis.bcl.models import MAX_NAME_LENGTH, check_text
from jlis.bcl.register import RESIDENTS
from jlis.bcl.tables import ShelterRow, ShelterStayRow
from jlis.clock import JST, Clock
from jlis.codes import LgCode
from jlis.errors import InvalidInput, NotFound, RuleViolation

ACCESS_LOG = AuditLog("access")
MAX_CAPACITY = 100_000
_R = RESIDENTS.c


@dataclass(frozen=True)
class ShelterView:
    id: int
    lg_code: str
    name: str
    address: str
    capacity: int
    disaster_id: str | None
    open: bool
    present: int


@dataclass(frozen=True)
class StayView:
    id: int
    shelter_id: int
    resident_code: str
    name: str | None  # from the person's register when it is in this database
    checked_in_at: dt.datetime
    checked_out_at: dt.datetime | None


class Shelters:
    """Shelters of the principal's municipality, in the caller's session (the caller commits)."""

    def __init__(self, session: Session, clock: Clock, principal: Principal) -> None:
        self.s = session
        self.clock = clock
        self.principal = principal

    def open(
        self, lg_code: str, *, name: str, address: str, capacity: int, disaster_id: str | None = None
    ) -> ShelterView:
        lg_code = str(LgCode.parse(lg_code, "地方公共団体コード"))
        self.principal.require_staff_of(lg_code)
        name = check_text("避難所名", name, max_length=MAX_NAME_LENGTH)
        address = check_text("所在地", address, max_length=200)
        if not isinstance(capacity, int) or not 1 <= capacity <= MAX_CAPACITY:
            raise InvalidInput("収容人数", f"must be between 1 and {MAX_CAPACITY}")
        if disaster_id:
            disaster = get_disaster(self.s, disaster_id)
            if not disaster.covers(lg_code):
                raise RuleViolation("災害", "the municipality must be in the disaster's area")
            disaster_id = disaster.id
        row = ShelterRow(
            lg_code=lg_code,
            name=name,
            address=address,
            capacity=capacity,
            disaster_id=disaster_id,
            opened_at=self.clock.now(),
        )
        self.s.add(row)
        self.s.flush()
        return self._view(row)

    def close(self, shelter_id: int) -> ShelterView:
        """閉鎖: refused while anyone is still checked in."""
        row = self._shelter(shelter_id)
        if self._present(row.id):
            raise RuleViolation(
                "避難所", "everyone must have checked out before closing", "退所していない避難者がいます"
            )
        if row.closed_at is None:
            row.closed_at = self.clock.now()
            self.s.flush()
        return self._view(row)

    def of_municipality(self, lg_code: str) -> list[ShelterView]:
        self.principal.require_staff_of(lg_code)
        rows = self.s.scalars(select(ShelterRow).where(ShelterRow.lg_code == lg_code).order_by(ShelterRow.id))
        return [self._view(r) for r in rows]

    def get(self, shelter_id: int) -> ShelterView:
        return self._view(self._shelter(shelter_id))

    def check_in(self, shelter_id: int, certificate_serial: str) -> StayView:
        row = self._shelter(shelter_id)
        if row.closed_at is not None:
            raise RuleViolation("避難所", "must be open", "この避難所は閉鎖されています")
        now = self.clock.now()
        holder = card_holder(self.s, certificate_serial, now)
        present = self.s.scalars(
            select(ShelterStayRow).where(
                ShelterStayRow.resident_code == holder.resident_code, ShelterStayRow.checked_out_at.is_(None)
            )
        ).first()
        if present is not None:
            where = "この避難所" if present.shelter_id == row.id else "他の避難所"
            raise RuleViolation("入所", "a person is in one shelter at a time", f"既に{where}に入所中です")
        if self._present(row.id) >= row.capacity:
            raise RuleViolation("収容人数", "the shelter is full", "この避難所は満員です")
        stay = ShelterStayRow(
            shelter_id=row.id,
            resident_code=holder.resident_code,
            home_lg_code=holder.lg_code,
            certificate_serial=holder.serial,
            checked_in_at=now,
            checked_in_by=self.principal.actor,
        )
        try:
            with self.s.begin_nested():
                self.s.add(stay)
                self.s.flush()
        except IntegrityError:
            raise RuleViolation("入所", "a person is in one shelter at a time", "既に入所中です") from None
        return self._stay(stay, holder, "避難所入所")

    def check_out(self, shelter_id: int, certificate_serial: str) -> StayView:
        row = self._shelter(shelter_id)
        now = self.clock.now()
        holder = card_holder(self.s, certificate_serial, now)
        stay = self.s.scalars(
            select(ShelterStayRow).where(
                ShelterStayRow.shelter_id == row.id,
                ShelterStayRow.resident_code == holder.resident_code,
                ShelterStayRow.checked_out_at.is_(None),
            )
        ).first()
        if stay is None:
            raise RuleViolation(
                "退所", "the person must be checked in at this shelter", "この避難所に入所していません"
            )
        stay.checked_out_at, stay.checked_out_by = now, self.principal.actor
        self.s.flush()
        return self._stay(stay, holder, "避難所退所")

    def occupants(self, shelter_id: int) -> list[StayView]:
        """Who is in the shelter now (名簿), with names from the register where it is held here."""
        row = self._shelter(shelter_id)
        stays = self.s.scalars(
            select(ShelterStayRow)
            .where(ShelterStayRow.shelter_id == row.id, ShelterStayRow.checked_out_at.is_(None))
            .order_by(ShelterStayRow.checked_in_at, ShelterStayRow.id)
        ).all()
        now = self.clock.now()
        out = []
        for stay in stays:
            out.append(self._view_stay(stay, self._name(stay.resident_code)))
        ACCESS_LOG.append_many(
            self.s,
            [
                {
                    "at": now,
                    "actor": self.principal.actor,
                    "action": "read",
                    "subject": s.resident_code,
                    "details": {
                        "system": "bcl",
                        "lg_code": row.lg_code,
                        "purpose": "避難者名簿",
                        "shelter_id": row.id,
                    },
                }
                for s in stays
            ],
        )
        return out

    # -- helpers

    def _shelter(self, shelter_id: int) -> ShelterRow:
        row = self.s.get(ShelterRow, shelter_id)
        if row is None:
            raise NotFound("避難所", str(shelter_id))
        self.principal.require_staff_of(row.lg_code)
        return row

    def _present(self, shelter_id: int) -> int:
        return int(
            self.s.scalar(
                select(func.count())
                .select_from(ShelterStayRow)
                .where(ShelterStayRow.shelter_id == shelter_id, ShelterStayRow.checked_out_at.is_(None))
            )
            or 0
        )

    def _view(self, row: ShelterRow) -> ShelterView:
        return ShelterView(
            row.id,
            row.lg_code,
            row.name,
            row.address,
            row.capacity,
            row.disaster_id,
            row.closed_at is None,
            self._present(row.id),
        )

    def _name(self, resident_code: str) -> str | None:
        """The current name on the person's register (the newest row with the code), if held here."""
        found = self.s.execute(
            select(_R.family_name, _R.given_name)
            .where(_R.resident_code == resident_code)
            .order_by(_R.id.desc())
            .limit(1)
        ).first()
        if found is None:
            return None
        return f"{found.family_name}\u3000{found.given_name}" if found.given_name else found.family_name

    def _stay(self, stay: ShelterStayRow, holder: CardHolder, purpose: str) -> StayView:
        name = self._name(holder.resident_code)
        ACCESS_LOG.append(
            self.s,
            at=self.clock.now(),
            actor=self.principal.actor,
            action="read",
            subject=holder.resident_code,
            details={
                "system": "bcl",
                "purpose": purpose,
                "shelter_id": stay.shelter_id,
                "serial": holder.serial,
            },
        )
        return self._view_stay(stay, name)

    @staticmethod
    def _view_stay(stay: ShelterStayRow, name: str | None) -> StayView:
        return StayView(
            stay.id,
            stay.shelter_id,
            stay.resident_code,
            name,
            stay.checked_in_at.astimezone(JST),
            stay.checked_out_at.astimezone(JST) if stay.checked_out_at else None,
        )
