"""The rules of kiosk issuance (facts §6.3) as pure functions: plain values in, nothing out or an
:class:`IssuanceRefused` with a stable code and the kiosk's Japanese message. No clock, no SQL:
the caller passes ``now``/``today`` and what it read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from jlis.clock import JST
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.issuer.errors import IssuanceRefused, RefusalReason
from jlis.kiosk.issuer.policy import IssuerPolicy
from jlis.registry.models import ChangeReason, ResidentView, Status

# Certificates built from the register of the municipality of residence; the others (戸籍, 附票)
# come from the 本籍 municipality.
RESIDENCE_KINDS = frozenset(
    {CertificateKind.RESIDENT, CertificateKind.RESIDENT_ITEMS, CertificateKind.SEAL, CertificateKind.INCOME}
)
HONSEKI_KINDS = frozenset({CertificateKind.KOSEKI, CertificateKind.FUHYO})
MOVE_IN_REASONS = frozenset({ChangeReason.MOVE_IN, ChangeReason.SPECIAL_MOVE_IN})


def in_closure(day: dt.date, closed: tuple[tuple[int, int], tuple[int, int]]) -> bool:
    """Whether ``day`` falls in the closure ``(from, to)`` of month-days; a span whose end comes
    before its start (12-29 to 01-03) wraps over New Year."""
    start, end = closed
    md = (day.month, day.day)
    if start <= end:
        return start <= md <= end
    return md >= start or md <= end


def check_open(kind: CertificateKind, now: dt.datetime, policy: IssuerPolicy) -> None:
    """Service hours in JST: closed over the year end, outside the type's hours, and on Saturdays
    and Sundays for a type open on weekdays only (national holidays are not modelled)."""
    local = now.astimezone(JST)
    if in_closure(local.date(), policy.closed):
        raise IssuanceRefused(RefusalReason.CLOSED_YEAR_END, f"{local.date()} is in the year-end closure")
    hours = policy.hours_for(kind)
    if hours.weekdays_only and local.weekday() >= 5:
        raise IssuanceRefused(RefusalReason.CLOSED_HOURS, f"{kind.value} is offered on weekdays only")
    t = local.time().replace(tzinfo=None)
    if not hours.open <= t < hours.close:
        raise IssuanceRefused(
            RefusalReason.CLOSED_HOURS, f"{kind.value} is offered {hours.open:%H:%M}-{hours.close:%H:%M}"
        )


def check_offered(kind: CertificateKind, policy: IssuerPolicy) -> None:
    if kind not in policy.offered:
        raise IssuanceRefused(RefusalReason.NOT_OFFERED, f"{kind.value} is not offered")


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """満年齢 on ``day`` (a person born on 2/29 turns a year older on 3/1 of a common year)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def check_living(person: ResidentView) -> None:
    """The person's own 住民票 must be current: not deceased, not removed, no 転出届 pending."""
    if person.status is Status.REMOVED:
        if person.last_reason is ChangeReason.DEATH:
            raise IssuanceRefused(RefusalReason.DECEASED, "the record was removed by death")
        raise IssuanceRefused(RefusalReason.MOVED_OUT, f"the record was removed ({person.last_reason.value})")
    if person.status is Status.MOVING_OUT:
        raise IssuanceRefused(RefusalReason.MOVING_OUT, "a 転出届 is pending")


def check_not_moved_in_today(person: ResidentView, today: dt.date) -> None:
    """On the day of a 転入届 the kiosk data is not yet settled."""
    if person.last_reason in MOVE_IN_REASONS and person.notified_on == today:
        raise IssuanceRefused(RefusalReason.MOVED_IN_TODAY, "the 転入 was notified today")


def check_age(birth_date: dt.date, today: dt.date, policy: IssuerPolicy) -> None:
    if age_on(birth_date, today) < policy.min_age:
        raise IssuanceRefused(RefusalReason.UNDER_AGE, f"under {policy.min_age}")


def printed_length(text: str) -> int:
    """Characters the layout must hold: blanks between parts do not count."""
    return len(text.replace("\u3000", "").replace(" ", ""))


def check_layout(name: str, address: str | None, policy: IssuerPolicy) -> None:
    if printed_length(name) > policy.max_name_length:
        raise IssuanceRefused(RefusalReason.NAME_TOO_LONG, f"more than {policy.max_name_length} characters")
    if address is not None and printed_length(address) > policy.max_address_length:
        raise IssuanceRefused(
            RefusalReason.ADDRESS_TOO_LONG, f"more than {policy.max_address_length} characters"
        )


def check_dv(resident_codes: Iterable[str], flagged: Iterable[str]) -> None:
    if set(resident_codes) & set(flagged):
        raise IssuanceRefused(RefusalReason.DV_SUPPORT, "a 支援措置 is in force")


def check_subject(
    person: ResidentView, today: dt.date, policy: IssuerPolicy, *, flagged: Iterable[str]
) -> None:
    """Every rule about the requester of a residence-based certificate, in the order the kiosk
    reports them."""
    check_living(person)
    check_dv([person.resident_code], flagged)
    check_not_moved_in_today(person, today)
    check_age(person.birth_date, today, policy)
    check_layout(printed_name(person), person.address.text, policy)


def check_household(
    members: Sequence[ResidentView], today: dt.date, policy: IssuerPolicy, *, flagged: Iterable[str]
) -> None:
    """A household with a 転出届 pending gets nothing; every member printed must be printable."""
    if any(m.status is Status.MOVING_OUT for m in members):
        raise IssuanceRefused(RefusalReason.HOUSEHOLD_MOVING_OUT, "a member's 転出届 is pending")
    check_dv([m.resident_code for m in members], flagged)
    for m in members:
        check_not_moved_in_today(m, today)
        check_layout(printed_name(m), m.address.text, policy)


def check_honseki_access(*, lives_here: bool, registered: bool) -> None:
    """戸籍 and 附票 for a person living outside the 本籍 need a prior 本籍地利用登録."""
    if not lives_here and not registered:
        raise IssuanceRefused(RefusalReason.NO_HONSEKI_USE, "no 本籍地利用登録 at the 本籍 municipality")


def check_my_number(requested: bool, policy: IssuerPolicy) -> None:
    if requested and not policy.my_number_allowed:
        raise IssuanceRefused(RefusalReason.MY_NUMBER_NOT_ALLOWED, "the municipality omits the 個人番号")


def current_fiscal_year(today: dt.date, policy: IssuerPolicy) -> int:
    """The newest 年度 whose 所得・課税証明書 is available on ``today`` (the new 年度's from
    ``policy.income_from``, June in most municipalities)."""
    return today.year if (today.month, today.day) >= policy.income_from else today.year - 1


def printed_name(person: ResidentView) -> str:
    """The name as the certificate prints it (a foreign resident's 通称 is printed beside it)."""
    return person.name.full
