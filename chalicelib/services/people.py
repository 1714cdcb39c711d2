"""What people do to their own participation (R11, issue 9): mute and unmute,
leave, every message or a daily digest -- all from the signed link in every
copy's footer. What SES tells us about their addresses (bounces and complaints,
R11) is services/suppressions.py.

Leaving is muting for good: ``Participant.left`` keeps them muted across signup
upserts and stops the late kickoff a new signup for the shift would send
(services/events.py); unmuting (rejoining) clears both.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action

from chalicelib import clock
from chalicelib.models import Chat, ChatKpi, Participant
from chalicelib.observability import logger, metrics
from chalicelib.relay.tokens import TokenClaims
from chalicelib.services import kpis, signals
from chalicelib.services.bounces import handle_feedback  # noqa: F401  (moved there; kept for callers)
from chalicelib.services.digest import DELIVERY_MODES, Delivery, effective_delivery
from chalicelib.services.links import read_mute_token  # noqa: F401  (the settings page reads it here)
from chalicelib.services.roster import is_active, participants, recipients
from chalicelib.services.suppressions import suppress  # noqa: F401  (moved there; kept for callers)
from chalicelib.settings import Settings, get_settings


def _change(claims: TokenClaims, actions: list[Action], metric: str, what: str) -> bool:
    """Apply ``actions`` to one participant; False if they are no longer in the chat."""
    record = Participant(f"CH#{claims.chat_id}", f"P#{claims.participant_key}")
    try:
        record.update(actions=[*actions, Participant.updated_at.set(clock.now())], condition=Participant.pk.exists())
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    metrics.add_metric(name=metric, unit="Count", value=1)
    logger.info(what, extra={"chat_id": claims.chat_id, "participant": claims.participant_key})
    _signal(metric, claims)
    return True


def _signal(metric: str, claims: TokenClaims) -> None:
    """Issue 11: the KPI sets (mute, leave) and the integration event. A failure
    here is logged and counted, never the person's problem: their change is made."""
    what = {"Muted": "mute", "Unmuted": "unmute", "Left": "leave"}.get(metric)
    if what is None:
        return
    try:
        ids: Chat | ChatKpi
        if what == "unmute":
            ids = Chat.get(f"CH#{claims.chat_id}", "META")
        else:
            ids = (kpis.left if what == "leave" else kpis.muted)(claims.chat_id, claims.participant_key)
            if ids.integration is None:  # a chat from before issue 11
                ids = Chat.get(f"CH#{claims.chat_id}", "META")
        chat = SimpleNamespace(
            integration=ids.integration, chat_id=claims.chat_id, event_id=ids.event_id, timeslot_id=ids.timeslot_id
        )
        signals.participant(what, chat, claims.participant_key)
    except Exception:
        logger.exception("participant change not counted", extra={"chat_id": claims.chat_id})
        metrics.add_metric(name="KpiWriteFailed", unit="Count", value=1)


def mute(claims: TokenClaims) -> bool:
    """Mute one participant in one chat; False if they are no longer in it."""
    return _change(claims, [Participant.muted.set(True)], "Muted", "participant muted")


def unmute(claims: TokenClaims) -> bool:
    """Unmute (and rejoin, after leaving): mail flows again as they chose."""
    return _change(
        claims, [Participant.muted.set(False), Participant.left.set(False)], "Unmuted", "participant unmuted"
    )


def leave(claims: TokenClaims) -> bool:
    """Leave the chat: muted, and no kickoff if they sign up for the shift again."""
    return _change(claims, [Participant.muted.set(True), Participant.left.set(True)], "Left", "participant left")


def set_delivery(claims: TokenClaims, delivery: Delivery) -> bool:
    """Every message (``each``) or one ``digest`` a day, from the next message on."""
    if delivery not in DELIVERY_MODES:
        raise ValueError(f"unknown delivery {delivery!r}")
    return _change(claims, [Participant.delivery.set(delivery)], "DeliveryChanged", "participant delivery changed")


@dataclass(frozen=True)
class Following:
    """What the settings page shows: one participant's state in one chat."""

    chat: Chat
    person: Participant
    delivery: Delivery  # effective: their choice, the chat's default, or the size rule

    @property
    def active(self) -> bool:
        return is_active(self.person)


def following(claims: TokenClaims, settings: Settings | None = None) -> Following | None:
    """The participant and chat a token names; None if either is gone."""
    settings = settings or get_settings()
    try:
        person = Participant.get(f"CH#{claims.chat_id}", f"P#{claims.participant_key}", consistent_read=True)
        chat = Chat.get(f"CH#{claims.chat_id}", "META")
    except DoesNotExist:
        return None
    size = 0
    if person.delivery is None and chat.default_delivery is None and settings.digest_above:
        size = len(recipients(participants(claims.chat_id)))  # only the size rule needs it
    return Following(chat=chat, person=person, delivery=effective_delivery(person, chat, size, settings))
