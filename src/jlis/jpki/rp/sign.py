"""Sign a document with a (virtual) My Number card: the card's signing key, behind the signing
password, computes the signature; the host builds the CMS around it.

The host never sees a private key: it sends the card a PKCS#1 DigestInfo of the signed attributes
(COMPUTE DIGITAL SIGNATURE, facts §2.5) and receives the signature value.
"""

from __future__ import annotations

from pathlib import Path

from jlis.card.chip.cardfile import CardFile
from jlis.card.chip.reader import CardReader
from jlis.clock import Clock
from jlis.jpki.rp import cms
from jlis.jpki.rp.trust import load_certificate


def open_card(path: Path, passphrase: str) -> CardReader:
    """A reader on a card file (``jlis card export``). PIN counters are written back to the file
    after every VERIFY, so a wrong PIN costs a try exactly as on a real card."""
    return CardReader(CardFile.open(path, passphrase).transmit)


def sign_document(
    reader: CardReader, content: bytes, password: str, *, clock: Clock, detached: bool = True
) -> bytes:
    """CMS SignedData (DER) over ``content`` with the card's signing key. The signing password is
    verified once; the signing certificate (readable only after it) goes into the CMS. A wrong
    password raises WrongPin (one try fewer) or PinBlocked."""
    certificate = load_certificate(reader.read_certificate("sign", pin=password))

    def on_card(to_be_signed: bytes, hash_name: str) -> bytes:
        info = cms.digest_info(hash_name, cms.digest(hash_name, to_be_signed))
        return reader.sign_digest_info("sign", info, None)  # the password was verified above

    return cms.build(content, certificate, on_card, signing_time=clock.now(), detached=detached)


def to_pem(der: bytes) -> bytes:
    """The PEM form (``-----BEGIN CMS-----``) some tools prefer."""
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN CMS-----\n{body}\n-----END CMS-----\n".encode("ascii")
