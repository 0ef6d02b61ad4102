"""Issue 4 §5: at least 1,000 concurrent requests for different residents through the whole center
(card answer → OCSP → holder → content → PDF → register), each PDF read back (pypdf) and checked to
name exactly its own requester and request id: zero mismatches.

RSA work is kept down: the residents' authentication certificates are issued by the real JPKI CA
for public keys from the card tests' pool, and each "card" is that pooled private key signing the
challenge exactly as a card's authentication key would (a PKCS#1 v1.5 signature of the challenge)."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jlis.db import transaction
from jlis.jpki.holder import HolderInfo
from jlis.jpki.rp.login import Challenge, LoginResponse
from jlis.jpki.tables import AUTH
from jlis.juki.network import build_relay
from jlis.kiosk.center.models import IssuedCertificate
from jlis.kiosk.center.tables import CenterLogRow
from jlis.kiosk.content import CertificateKind
from jlis.kiosk.pdf.render import read_binding
from jlis.kiosk.pdf.tables import IssuedDocumentRow
from jlis.registry import Sex

from ...card.conftest import _rsa_keys
from .conftest import CHIYODA, KIOSK, SHINJUKU, CenterWorld, pdf_text

REQUESTS = int(__import__("os").environ.get("JLIS_CENTER_REQUESTS", "1000"))
THREADS = 16


def _words(text: str) -> list[str]:
    return text.split()


FAMILIES = _words(
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 中島 斎藤 清水"
)
GIVENS = _words(
    "一郎 二郎 三郎 四郎 五郎 健太 翔太 大輔 拓也 直樹 花子 陽子 恵子 直子 美香 真理 由美 愛子 友美 "
    "結衣 陽菜 葵 蓮 湊 樹 悠真 大和 陸 悠人 颯 結菜 凛 芽依 杏 紬 美咲 七海 彩 舞 楓 隼 誠 豊 実 "
    "剛 勇 聡 学 茂 進"
)


@dataclass
class SoftCard:
    resident_code: str
    name: str  # family + given, no blank
    key: rsa.RSAPrivateKey
    certificate_der: bytes

    def answer(self, challenge_text: str) -> LoginResponse:
        data = Challenge.from_text(challenge_text).to_bytes()
        return LoginResponse(self.certificate_der, self.key.sign(data, padding.PKCS1v15(), hashes.SHA256()))


def _population(w: CenterWorld, n: int) -> list[SoftCard]:
    names = list(itertools.islice(itertools.product(FAMILIES, GIVENS), n))
    assert len(set(names)) == n
    residents = []
    for i, (family, given) in enumerate(names):
        lg = CHIYODA if i % 2 == 0 else SHINJUKU
        sex = Sex.MALE if i % 3 else Sex.FEMALE
        residents.append(
            w.person(lg, family=family, given=given, family_kana="テスト", given_kana="テスト", sex=sex)
        )
    build_relay(w.factory, w.clock, w.container.geography).drain()  # to the national copy
    keys = itertools.cycle(_rsa_keys()[2:])
    cards = []
    with transaction(w.factory) as s:
        ca = w.deps.ca(s)
        for i, r in enumerate(residents):
            key = next(keys)
            info = HolderInfo(
                r.resident_code, r.lg_code, r.name.family, r.name.given, r.sex.value, r.birth_date, "東京都"
            )
            row = ca.issue(
                AUTH,
                key.public_key(),
                info,
                card_id=f"SOFT{i:06d}",
                card_expires_on=w.clock.today() + dt.timedelta(days=3650),
            )
            cards.append(SoftCard(r.resident_code, r.name.family + r.name.given, key, row.der))
    w.clock.advance(days=1)  # past the day of the 転入
    return cards


def _flow(w: CenterWorld, card: SoftCard) -> tuple[SoftCard, str, IssuedCertificate]:
    challenge = w.center.open_session(KIOSK)
    session = w.center.authenticate(challenge, card.answer(challenge.text))
    quote = w.center.request(session, CertificateKind.RESIDENT)
    issued = w.center.issue(session, w.center.pay(quote))
    w.center.close(session)
    return card, quote.request_id, issued


@pytest.mark.slow
def test_a_thousand_concurrent_requests_each_pdf_names_its_own_requester(center_world: CenterWorld) -> None:
    w = center_world
    cards = _population(w, REQUESTS)
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda c: _flow(w, c), cards))
    elapsed = time.monotonic() - started
    names = [c.name for c in cards]
    blank = re.compile(r"[\s\u3000]")
    mismatches = []
    for card, request_id, issued in results:
        text = blank.sub("", pdf_text(issued.pdf))
        named = [n for n in names if n in text]
        binding = read_binding(issued.pdf)
        if named != [card.name] or request_id not in text or binding.request_id != request_id:
            mismatches.append((card.name, named, request_id, binding))
        if issued.request_id != request_id:
            mismatches.append((card.name, "request id", request_id, issued.request_id))
    assert mismatches == []
    assert len({i.certificate_number for _, _, i in results}) == REQUESTS
    assert len({rid for _, rid, _ in results}) == REQUESTS
    log = w.rows(CenterLogRow)
    assert len(log) == REQUESTS and all(r.outcome == "issued" for r in log)
    assert w.count(IssuedDocumentRow) == REQUESTS
    print(f"{REQUESTS} requests on {THREADS} threads in {elapsed:.1f} s ({REQUESTS / elapsed:.1f}/s)")
