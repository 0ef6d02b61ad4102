"""The virtual My Number card (``jlis.card.chip``): a chip that answers ISO 7816-4 APDUs like the
real card (facts §2), its sealed store and chip pool, a reader-style client, and card files for
relying-party developers.

- ``chip.VirtualChip``: the chip; ``face.CardFace``: what the counter writes on it.
- ``apdu``, ``files``, ``tlv``, ``digestinfo``: the wire formats and the card layout as data.
- ``store.ChipStore``: encrypted at rest in ``card_chips``, with a pool in ``card_chip_pool``.
- ``reader.CardReader``: drives any ``transmit`` callable with APDUs only.
- ``cardfile``: export/import of one card under a passphrase.
"""

from jlis.card.chip.chip import SLOTS, Slot, VirtualChip
from jlis.card.chip.errors import CardError, CardVoided, PinBlocked, WrongPin
from jlis.card.chip.face import CardFace, TextAttributes

__all__ = [
    "SLOTS",
    "CardError",
    "CardFace",
    "CardVoided",
    "PinBlocked",
    "Slot",
    "TextAttributes",
    "VirtualChip",
    "WrongPin",
]
