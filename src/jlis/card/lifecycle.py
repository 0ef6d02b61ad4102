"""The life of a My Number card as an explicit state machine (facts §10). Pure: no database.

::

    manufactured ──ship──> shipped ──notify──> notified ──deliver──> active ⇄ suspended
          │                   │                   │                    │          │
          └───────────────────┴──────void─────────┴────────────────────┴──────────┴──> voided

``voided`` (廃止) is terminal: "once the card has been voided, it cannot be revived" (facts §10).
Some events keep the state (a PIN reset, 継続利用, a new signing certificate): they are transitions
from a state to itself, allowed only where the table says, and recorded like any other.

Every refusal is a :class:`RuleViolation` that names the current state, the event and the rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from jlis.errors import InvalidInput, RuleViolation


class CardState(enum.StrEnum):
    """Values are stored in ``card_cards.state``."""

    MANUFACTURED = "manufactured"  # 製造済 (J-LIS, in a batch)
    SHIPPED = "shipped"  # 発送済 (to the municipality)
    NOTIFIED = "notified"  # 交付通知書 sent, waiting for the holder at the counter
    ACTIVE = "active"  # 交付済 (delivered, usable)
    SUSPENDED = "suspended"  # 一時停止 (hotline); lifted only at the counter
    VOIDED = "voided"  # 廃止 (terminal)

    @property
    def label(self) -> str:
        return _STATE_LABELS[self]

    @property
    def live(self) -> bool:
        """A card that still counts as the holder's card (one live card per person)."""
        return self is not CardState.VOIDED


_STATE_LABELS = {
    CardState.MANUFACTURED: "製造済",
    CardState.SHIPPED: "発送済",
    CardState.NOTIFIED: "交付通知済",
    CardState.ACTIVE: "交付済",
    CardState.SUSPENDED: "一時停止",
    CardState.VOIDED: "廃止",
}


class VoidReason(enum.StrEnum):
    """Why a card was voided (返納・廃止, facts §10). Values are stored in ``card_cards.void_reason``."""

    DEATH = "death"  # 死亡
    MOVE_ABROAD = "move_abroad"  # 国外転出 without 継続利用
    EXPIRY = "expiry"  # 有効期限切れ
    REPLACED = "replaced"  # a new card was delivered (renewal), or an old card found after a re-issue
    CODE_CHANGE = "code_change"  # 個人番号 or 住民票コード changed
    REGISTER_DELETED = "register_deleted"  # 住民票の消除 (other than death / 国外転出)
    RETURNED = "returned"  # 返納 at the holder's request
    LOST_REISSUED = "lost_reissued"  # re-issued after a loss
    DAMAGED = "damaged"  # re-issued after damage (焼失・損傷・機能不良), or the 追記欄 full
    UNCOLLECTED = "uncollected"  # never collected at the counter (交付前廃棄)

    @property
    def label(self) -> str:
        return _VOID_LABELS[self]

    @classmethod
    def parse(cls, value: str, field: str = "廃止理由") -> VoidReason:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(field, f"must be one of {', '.join(r.value for r in cls)}") from None


_VOID_LABELS = {
    VoidReason.DEATH: "死亡",
    VoidReason.MOVE_ABROAD: "国外転出",
    VoidReason.EXPIRY: "有効期限切れ",
    VoidReason.REPLACED: "新しいカードの交付",
    VoidReason.CODE_CHANGE: "個人番号・住民票コードの変更",
    VoidReason.REGISTER_DELETED: "住民票の消除",
    VoidReason.RETURNED: "返納",
    VoidReason.LOST_REISSUED: "紛失による再交付",
    VoidReason.DAMAGED: "損傷等による再交付",
    VoidReason.UNCOLLECTED: "未交付のまま廃棄",
}

_LIVE = frozenset(s for s in CardState if s.live)
_DELIVERED = frozenset({CardState.ACTIVE, CardState.SUSPENDED})
_UNDELIVERED = frozenset({CardState.MANUFACTURED, CardState.SHIPPED, CardState.NOTIFIED})

# Reasons that only make sense for a card the holder has (or had) in hand.
_NEEDS_DELIVERY = frozenset(
    {VoidReason.EXPIRY, VoidReason.RETURNED, VoidReason.LOST_REISSUED, VoidReason.DAMAGED}
)


class CardEvent(enum.StrEnum):
    """What can happen to a card. Values are stored in ``card_events.event``."""

    MANUFACTURE = "manufacture"  # 製造 (creates the card)
    SHIP = "ship"  # 発送
    NOTIFY = "notify"  # 交付通知書の送付
    DELIVER = "deliver"  # 交付 (identity check, PINs, certificates)
    SUSPEND = "suspend"  # 一時停止 (hotline)
    LIFT = "lift"  # 一時停止の解除 (counter)
    VOID = "void"  # 廃止
    CONTINUED_USE = "continued_use"  # 継続利用 / 住所の書換え and 追記
    ABROAD_REQUESTED = "abroad_requested"  # 国外転出者向けの継続利用の申出
    PIN_RESET = "pin_reset"  # 暗証番号の初期化 (counter)
    SIGN_CERT_ISSUED = "sign_cert_issued"  # a new 署名用電子証明書 (after a move or a name change)
    PHONE_PROVISIONED = "phone_provisioned"  # スマホ用電子証明書

    @property
    def label(self) -> str:
        return _EVENT_LABELS[self]


_EVENT_LABELS = {
    CardEvent.MANUFACTURE: "製造",
    CardEvent.SHIP: "発送",
    CardEvent.NOTIFY: "交付通知書送付",
    CardEvent.DELIVER: "交付",
    CardEvent.SUSPEND: "一時停止",
    CardEvent.LIFT: "一時停止解除",
    CardEvent.VOID: "廃止",
    CardEvent.CONTINUED_USE: "継続利用・追記",
    CardEvent.ABROAD_REQUESTED: "国外継続利用の申出",
    CardEvent.PIN_RESET: "暗証番号初期化",
    CardEvent.SIGN_CERT_ISSUED: "署名用電子証明書発行",
    CardEvent.PHONE_PROVISIONED: "スマホ用電子証明書発行",
}


@dataclass(frozen=True)
class Transition:
    """``sources``: the states the event is allowed in; ``target`` None keeps the state."""

    sources: frozenset[CardState]
    target: CardState | None
    rule: str


TRANSITIONS: dict[CardEvent, Transition] = {
    CardEvent.SHIP: Transition(
        frozenset({CardState.MANUFACTURED}), CardState.SHIPPED, "only a manufactured card is shipped"
    ),
    CardEvent.NOTIFY: Transition(
        frozenset({CardState.SHIPPED}),
        CardState.NOTIFIED,
        "a 交付通知書 is sent once, for a card the municipality has received",
    ),
    CardEvent.DELIVER: Transition(
        frozenset({CardState.NOTIFIED}),
        CardState.ACTIVE,
        "a card is delivered once, after its 交付通知書",
    ),
    CardEvent.SUSPEND: Transition(
        frozenset({CardState.ACTIVE}), CardState.SUSPENDED, "only a delivered, active card is suspended"
    ),
    CardEvent.LIFT: Transition(
        frozenset({CardState.SUSPENDED}), CardState.ACTIVE, "only a suspended card has a suspension to lift"
    ),
    CardEvent.VOID: Transition(_LIVE, CardState.VOIDED, "a voided card cannot be voided again or revived"),
    CardEvent.CONTINUED_USE: Transition(
        frozenset({CardState.ACTIVE}), None, "継続利用 needs an active card (lift a suspension first)"
    ),
    CardEvent.ABROAD_REQUESTED: Transition(
        frozenset({CardState.ACTIVE}), None, "継続利用 abroad needs an active card"
    ),
    CardEvent.PIN_RESET: Transition(
        _DELIVERED, None, "PINs are reset on a delivered card that is not voided"
    ),
    CardEvent.SIGN_CERT_ISSUED: Transition(
        frozenset({CardState.ACTIVE}), None, "a certificate is issued on an active card only"
    ),
    CardEvent.PHONE_PROVISIONED: Transition(
        frozenset({CardState.ACTIVE}), None, "smartphone certificates need an active card"
    ),
}


def next_state(state: CardState | str, event: CardEvent, reason: VoidReason | None = None) -> CardState:
    """The state after ``event``, or a :class:`RuleViolation` naming state, event and rule."""
    state = CardState(state)
    if event is CardEvent.MANUFACTURE:
        raise RuleViolation(
            "カードの状態",
            "a card is manufactured once, when it is created",
            f"card is {state.value}: event {event.value} refused (a card is manufactured once)",
        )
    t = TRANSITIONS[event]
    if state not in t.sources:
        raise RuleViolation(
            "カードの状態",
            t.rule,
            f"card is {state.value} ({state.label}): event {event.value} ({event.label}) refused: {t.rule}",
        )
    if event is CardEvent.VOID:
        if reason is None:
            raise InvalidInput("廃止理由", "must be given to void a card")
        if reason in _NEEDS_DELIVERY and state in _UNDELIVERED:
            rule = f"{reason.value} applies to a delivered card only"
            raise RuleViolation(
                "廃止理由", rule, f"card is {state.value}: event void ({reason.value}) refused: {rule}"
            )
        if reason is VoidReason.UNCOLLECTED and state not in _UNDELIVERED:
            rule = "uncollected applies to a card not yet delivered"
            raise RuleViolation(
                "廃止理由", rule, f"card is {state.value}: event void ({reason.value}) refused: {rule}"
            )
    return t.target if t.target is not None else state


def allowed_events(state: CardState | str) -> list[CardEvent]:
    """The events a card in ``state`` accepts (for the pages: which buttons to show)."""
    state = CardState(state)
    return [e for e, t in TRANSITIONS.items() if state in t.sources]
