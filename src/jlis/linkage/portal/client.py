"""The **user's software** (利用者クライアントソフト / マイナポータルアプリ), simulated.

In reality this runs on the user's computer or phone, with the card on a reader: it never sends the
card, a PIN or a key to the portal, only the card's answers. The demo runs it inside the server so
that a browser without a card reader can sign in; this module is the whole of that simulation and
uses nothing of the portal but the texts the portal hands out (a challenge, consent terms), exactly
what a real client would receive over HTTP.

- :func:`demo_cards`: the card files ``jlis demo`` exported (``<data dir>/cards/*.jcard``).
- :func:`open_card` / :func:`open_uploaded_card`: a reader on a card file (a demo card, or a file
  the user uploads with its passphrase). PIN counters are written back to the demo card's file; an
  uploaded file is a temporary copy, so its counters are lost with it (the user keeps the original).
- :func:`answer_challenge`: the card signs the portal's login challenge after the 4-digit PIN.
- :func:`sign_consent`: the card signs consent terms with the signing key (signing password).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jlis.card.chip.cardfile import CARD_SUFFIX, card_files
from jlis.card.chip.reader import CardReader
from jlis.clock import Clock
from jlis.errors import InvalidInput
from jlis.jpki.basic4 import consent_content
from jlis.jpki.rp import cms
from jlis.jpki.rp.login import Challenge, respond
from jlis.jpki.rp.sign import open_card as rp_open_card
from jlis.jpki.rp.trust import load_certificate
from jlis.linkage.portal.service import ConsentRequest

MAX_CARD_FILE = 1_000_000


demo_cards = card_files  # the demo's exported cards, listed by id


def demo_card(cards_dir: Path, card_id: str) -> Path:
    """The file of one demo card, by id (never a path the caller made up)."""
    for card in demo_cards(cards_dir):
        if card.card_id == card_id:
            return card.path
    raise InvalidInput("card", "must be one of the demo cards")


open_card = rp_open_card  # the SDK's: PIN counters written back to the file after each VERIFY


@contextmanager
def open_uploaded_card(data: bytes, passphrase: str) -> Iterator[CardReader]:
    """A reader on an uploaded card file, for the length of the ``with`` block."""
    if not data:
        raise InvalidInput("card_file", "must be a jlis-card/1 file")
    if len(data) > MAX_CARD_FILE:
        raise InvalidInput("card_file", "at most 1 MB")
    with tempfile.TemporaryDirectory(prefix="jlis-portal-card-") as tmp:
        path = Path(tmp) / f"upload{CARD_SUFFIX}"
        path.write_bytes(data)
        yield open_card(path, passphrase)


def check_pin(pin: str) -> str:
    if not isinstance(pin, str) or not re.fullmatch(r"[0-9]{4}", pin):
        raise InvalidInput("pin", "must be the 4-digit PIN of the authentication certificate")
    return pin


def answer_challenge(reader: CardReader, challenge_text: str, pin: str) -> dict[str, str]:
    """The login answer a client sends back: ``{"certificate", "signature"}`` (base64url). A wrong
    PIN raises WrongPin (one try fewer on the card) or PinBlocked."""
    challenge = Challenge.from_text(challenge_text)
    return respond(reader, challenge, check_pin(pin)).to_dict()


def sign_consent(reader: CardReader, terms: ConsentRequest, password: str, *, clock: Clock) -> bytes:
    """A CMS SignedData (content attached) over the consent document for ``terms``, naming the
    card's own signing certificate; signed by the card after the signing password."""
    if not isinstance(password, str) or not 6 <= len(password) <= 16:
        raise InvalidInput("password", "must be the 6-16 character signing password")
    certificate = load_certificate(reader.read_certificate("sign", pin=password))
    content = consent_content(
        verifier_id=terms.verifier_id,
        purpose=terms.purpose,
        certificate_serial=format(certificate.serial_number, "x"),
        nonce=terms.nonce,
        issued_at=terms.issued_at,
        valid_until=terms.valid_until,
    )

    def on_card(to_be_signed: bytes, hash_name: str) -> bytes:
        info = cms.digest_info(hash_name, cms.digest(hash_name, to_be_signed))
        return reader.sign_digest_info("sign", info, None)  # the password was verified above

    return cms.build(content, certificate, on_card, signing_time=clock.now(), detached=False)
