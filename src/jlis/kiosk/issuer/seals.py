"""印鑑登録: a resident registers one seal impression with the municipality, receives the
印鑑登録証 (its number is the 登録番号), and may have it abolished. The 印鑑登録証明書 prints the
impression of the active registration."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from jlis.auth.models import Principal
from jlis.clock import Clock
from jlis.codes import LgCode, ResidentCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.kiosk.issuer.access import audit_read, require_keeper, require_reader
from jlis.kiosk.issuer.models import (
    SEAL_MIN_AGE,
    AbolishReason,
    SealImage,
    SealRegistration,
    SealStatus,
    check_seal_image,
    synthetic_impression,
)
from jlis.kiosk.issuer.rules import age_on
from jlis.kiosk.issuer.tables import SealRegistrationRow
from jlis.registry import ChangeReason, RegistryService, Status
from jlis.registry.service import active_codes

RegisterFactory = Callable[[Session, str, str], RegistryService]


def _view(row: SealRegistrationRow) -> SealRegistration:
    return SealRegistration(
        lg_code=row.lg_code,
        registration_no=row.registration_no,
        resident_code=row.resident_code,
        registered_on=row.registered_on,
        status=SealStatus(row.status),
        impression=SealImage(row.impression_png, row.width_px, row.height_px, row.impression_sha256),
        abolished_on=row.abolished_on,
        abolish_reason=AbolishReason(row.abolish_reason) if row.abolish_reason else None,
    )


class SealRegister:
    """The 印鑑登録 of one municipality, for one acting principal."""

    def __init__(
        self, session: Session, clock: Clock, lg_code: str, principal: Principal, registry: RegisterFactory
    ) -> None:
        self.s = session
        self.clock = clock
        self.lg_code = str(LgCode.parse(lg_code))
        self.principal = principal
        self.registry = registry

    def register(self, resident_code: str, impression_png: bytes) -> SealRegistration:
        """Register a seal for a current resident of 15 or over who has none active."""
        require_keeper(self.principal, self.lg_code)
        code = str(ResidentCode.parse(resident_code))
        image = check_seal_image(impression_png)
        person = self.registry(self.s, self.lg_code, self.principal.actor).find_by_code(code)
        if person.status is not Status.ACTIVE:
            raise RuleViolation("住民票", "only a current resident (no 転出届 pending) may register a seal")
        today = self.clock.today()
        if age_on(person.birth_date, today) < SEAL_MIN_AGE:
            raise RuleViolation("生年月日", f"印鑑登録 is open from age {SEAL_MIN_AGE}")
        if self._active_row(code) is not None:
            raise RuleViolation("印鑑登録", "the person already has an active registration")
        row = SealRegistrationRow(
            lg_code=self.lg_code,
            registration_no="",
            resident_code=code,
            impression_png=image.png,
            impression_sha256=image.sha256,
            width_px=image.width,
            height_px=image.height,
            registered_on=today,
            registered_at=self.clock.now(),
            registered_by=self.principal.actor,
            status=SealStatus.ACTIVE.value,
        )
        self.s.add(row)
        self.s.flush()
        row.registration_no = f"{row.id:08d}"
        self.s.flush()
        return _view(row)

    def abolish(self, registration_no: str, reason: AbolishReason | str) -> SealRegistration:
        require_keeper(self.principal, self.lg_code)
        try:
            why = AbolishReason(reason)
        except ValueError:
            raise InvalidInput(
                "廃止事由", f"must be one of {', '.join(r.value for r in AbolishReason)}"
            ) from None
        row = self._row(registration_no)
        if row.status != SealStatus.ACTIVE.value:
            raise RuleViolation("印鑑登録", "the registration is already abolished")
        row.status = SealStatus.ABOLISHED.value
        row.abolished_on = self.clock.today()
        row.abolish_reason = why.value
        row.abolished_by = self.principal.actor
        self.s.flush()
        return _view(row)

    def sweep(self) -> list[SealRegistration]:
        """職権消除 of the registrations of people no longer on the register (death, 転出 confirmed,
        国外転出): a batch the municipality runs after the day's changes. Returns what it abolished."""
        require_keeper(self.principal, self.lg_code)
        t = SealRegistrationRow
        rows = self.s.execute(
            select(t).where(t.lg_code == self.lg_code, t.status == SealStatus.ACTIVE.value).order_by(t.id)
        ).scalars()
        register = self.registry(self.s, self.lg_code, self.principal.actor)
        done = []
        for row in list(rows):
            person = register.find_by_code(row.resident_code)
            if person.status is not Status.REMOVED:
                continue
            dead = person.last_reason is ChangeReason.DEATH
            done.append(
                self.abolish(row.registration_no, AbolishReason.DECEASED if dead else AbolishReason.MOVED_OUT)
            )
        return done

    def get(self, registration_no: str) -> SealRegistration:
        require_reader(self.principal, self.lg_code)
        row = self._row(registration_no)
        audit_read(self.s, self.clock, self.principal, self.lg_code, row.resident_code, "印鑑登録照会")
        return _view(row)

    def active_for(self, resident_code: str) -> SealRegistration | None:
        """The person's active registration, or None (audited when found)."""
        require_reader(self.principal, self.lg_code)
        row = self._active_row(str(ResidentCode.parse(resident_code)))
        if row is None:
            return None
        audit_read(self.s, self.clock, self.principal, self.lg_code, row.resident_code, "印鑑登録照会")
        return _view(row)

    def _active_row(self, code: str) -> SealRegistrationRow | None:
        t = SealRegistrationRow
        return self.s.execute(
            select(t).where(
                t.lg_code == self.lg_code, t.resident_code == code, t.status == SealStatus.ACTIVE.value
            )
        ).scalar_one_or_none()

    def _row(self, registration_no: str) -> SealRegistrationRow:
        t = SealRegistrationRow
        row = self.s.execute(
            select(t).where(t.lg_code == self.lg_code, t.registration_no == str(registration_no).strip())
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("印鑑登録", str(registration_no))
        return row


def seed_seals(
    session: Session,
    clock: Clock,
    lg_code: str,
    principal: Principal,
    registry: RegisterFactory,
    *,
    seed: bytes,
    share: float = 0.3,
) -> int:
    """Register a :func:`synthetic_impression` for a deterministic ``share`` of the current
    residents who may register (15 and over, no 転出届 pending, none active). Returns how many."""
    if not 0 <= share <= 1:
        raise InvalidInput("share", "must be between 0 and 1")
    reg = SealRegister(session, clock, lg_code, principal, registry)
    require_keeper(principal, reg.lg_code)
    made = 0
    for code in sorted(active_codes(session, reg.lg_code)):
        pick = int.from_bytes(hashlib.sha256(seed + f"|pick|{code}".encode()).digest()[:4], "big")
        if pick >= share * 2**32 or reg._active_row(code) is not None:
            continue
        try:
            with session.begin_nested():
                reg.register(code, synthetic_impression(seed, code))
        except RuleViolation:
            continue  # under 15 or moving out: not registered
        made += 1
    return made
