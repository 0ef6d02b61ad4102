"""スマホ用電子証明書 (facts §3.7): a second pair of certificates on a phone's key store, linked to the
card and ending with it.

The phone's key store is a chip of its own (``VirtualChip``, id ``<card id>-phone``, stored in
``card_chips`` with kind ``phone``): its keys are generated on it and never leave it, like the
secure element or TEE of a real phone. Its certificates carry the smartphone policy OIDs of the
card's profile (``holder_kind=phone``) and ``card_id`` of the card, so voiding the card revokes
them too (``CardService.void``), and the hotline's hold leaves them alone (the phone is not lost).

Provisioning needs the card's signing certificate in force and its password (the マイナポータル
app reads the card and the holder types the password): a wrong password decrements the card's
counter like any VERIFY. One phone per card: provisioning a new phone revokes the old phone's
certificates (機種変更).

Who calls it: the holder through the portal, which jlis does not model yet; a J-LIS operator acts
for it (the API and the CLI), and the counter staff of the card's municipality may too.
"""

from __future__ import annotations

from dataclasses import dataclass

from jlis.auth.models import PrincipalKind
from jlis.card.chip.reader import CardReader
from jlis.card.lifecycle import CardEvent, next_state
from jlis.card.service import CardService, CardView
from jlis.errors import RuleViolation
from jlis.jpki.tables import AUTH, GOOD, PHONE, SIGN

PHONE_SUFFIX = "-phone"


def phone_chip_id(card_id: str) -> str:
    return f"{card_id}{PHONE_SUFFIX}"


@dataclass(frozen=True)
class PhoneProvisioning:
    card: CardView
    chip_id: str
    sign_serial: str
    auth_serial: str
    replaced: int  # the old phone's certificates revoked


class PhoneCertificates:
    def __init__(self, svc: CardService) -> None:
        self.svc = svc
        self.s = svc.s

    def provision(self, card_id: str, *, sign_password: str, device: str = "") -> PhoneProvisioning:
        from jlis.card.chip import PinBlocked, WrongPin
        from jlis.card.chip.chip import VirtualChip

        card = self.svc.load(card_id)
        if self.svc.principal.kind is PrincipalKind.MUNICIPAL_STAFF:
            self.svc.require_staff_of(card.lg_code)
        else:
            self.svc.require_operator()
        next_state(card.state, CardEvent.PHONE_PROVISIONED)
        if SIGN not in {k for k, c in self.svc.good_certificates(card.id).items() if c.status == GOOD}:
            raise RuleViolation(
                "署名用電子証明書", "provisioning needs the card's signing certificate in force"
            )
        chip = self.svc.chips.load(card.id)
        try:
            CardReader(chip.transmit).verify_pin("sign", sign_password)
        except (WrongPin, PinBlocked):
            self.svc.chips.save(chip)  # the card's counter went down: keep it, as the card would
            raise
        self.svc.chips.save(chip)  # a right password resets the counter
        resident = self.svc.register(card.lg_code).find_by_code(card.resident_code)
        old = self.svc.good_certificates(card.id, holder=PHONE)
        replaced = []
        if old:
            replaced = self.svc.revocations.revoke_many(
                list(old.values()), "superseded", f"phone:replaced:{card.id}"
            )
        chip_id = phone_chip_id(card.id)
        if self.svc.chips.exists(chip_id):
            self._retire(chip_id)
        phone = self.svc.chips.take_from_pool(chip_id, card.algorithm, kind=PHONE, owner=card.id)
        assert isinstance(phone, VirtualChip)
        issued = self.svc.issue_certificates(card, phone, resident, kinds=[AUTH, SIGN], holder_kind=PHONE)
        self.svc.chips.save(phone, kind=PHONE, card_id=card.id)
        self.svc.transition(
            card,
            CardEvent.PHONE_PROVISIONED,
            details={
                "chip_id": chip_id,
                "device": device.strip()[:80] or None,
                "certificates": {k: c.serial for k, c in issued.items()},
                "replaced": [c.serial for c in replaced],
            },
        )
        return PhoneProvisioning(
            CardView.of(card), chip_id, issued[SIGN].serial, issued[AUTH].serial, len(replaced)
        )

    def _retire(self, chip_id: str) -> None:
        """The old phone's key store is wiped (its row goes; its certificates are revoked above)."""
        from jlis.card.tables import ChipRow

        row = self.s.get(ChipRow, chip_id)
        if row is not None:
            self.s.delete(row)
            self.s.flush()
