"""Tables of jlis.kiosk.screen: the kiosk's memory of the residents at its screen (one row a visit).

The copier's memory is a table rather than a dict because ``jlis serve --workers N`` runs the screen
in several worker processes and a visit's consecutive requests may reach any of them. A row lives
from 行政サービス to "カードをお取りください" and is deleted when the visit ends, with the PDF in it
(:mod:`jlis.kiosk.screen.visits`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column

from jlis.db import Base, UtcDateTime


class VisitRow(Base):
    """One resident at the kiosk's screen. The browser holds the visit token (a cookie); the row
    holds only its SHA-256, and the card's passphrase sealed with a key derived from the token, so
    the table alone opens no card.

    ``busy_until``/``claim`` serialise the steps of one visit across processes: a step claims the
    row with a conditional UPDATE (no transaction is held while the center works) and releases it
    when it saves the step's outcome; a claim left by a crashed process lapses at ``busy_until``.
    """

    __tablename__ = "kiosk_screen_visits"
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(16))  # visits.Step
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)  # idle since
    busy_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)  # who holds the step
    # The card on the reader: {"source": "demo" | "upload", "name": card id | file name, "label"}.
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    card_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # sealed passphrase
    challenge: Mapped[str | None] = mapped_column(Text, nullable=True)  # the text the card signs
    center: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the center's session
    menu: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    quote: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    printout: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # without the PDF
    pdf: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))  # read for its page
    __table_args__ = (Index("ix_kiosk_screen_visits_seen", "seen_at"),)
