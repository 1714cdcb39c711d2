"""Bring a Friend (issue 11): each participant's personal invite link, and
attributing a signup that arrives with one.

The event's ``invite_url`` is a template with ``{ref}``; a signup's link is the
template with its code (relay/reftokens.py: signed, opaque, bound to this
deployment and event). A signup upserted with ``referred_by`` equal to a valid
code of the same event (not its own) is attributed: ``SignupRef.referrer`` holds
the referring signup id, the chat's KPI item counts the new signup in
``referred`` and ``ReferralAttributed`` is emitted (keyed by the signup: once).
Anything else in ``referred_by`` is stored as given, and not attributed.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.models import Chat
from chalicelib.observability import logger, metrics
from chalicelib.relay.reftokens import read_ref, sign_ref
from chalicelib.services import kpis, signals
from chalicelib.settings import Settings


def _scope(integration: str, event_id: str) -> str:
    return f"{integration}/{event_id}"


def ref_for(settings: Settings, integration: str, event_id: str, signup_id: str) -> str:
    return sign_ref(
        settings.secret, deployment=settings.deployment, event=_scope(integration, event_id), signup_id=signup_id
    )


def invite_link(
    settings: Settings, template: str | None, integration: str, event_id: str, participant_key: str
) -> str | None:
    """The participant's Bring a Friend link; None without a template, or for an organizer."""
    if not template or not participant_key.startswith("s-"):
        return None
    return template.replace("{ref}", ref_for(settings, integration, event_id, participant_key[2:]), 1)


def referrer_of(
    settings: Settings, integration: str, event_id: str, signup_id: str, referred_by: str | None
) -> str | None:
    """The referring signup id if ``referred_by`` is a valid code of this event (and not the signup's own)."""
    if not referred_by:
        return None
    referrer = read_ref(
        settings.secret, referred_by, deployment=settings.deployment, event=_scope(integration, event_id)
    )
    if referrer is None or referrer == signup_id:
        if referred_by:
            metrics.add_metric(name="ReferralsNotAttributed", unit="Count", value=1)
        return None
    return referrer


def attributed(chat: Chat, signup_id: str, referrer: str, now: datetime) -> None:
    """Count and announce one attribution (both idempotent: a set, a keyed event)."""
    try:
        kpis.referred(chat.chat_id, f"s-{signup_id}")
    except Exception:
        logger.exception("referral not counted", extra={"chat_id": chat.chat_id})
        metrics.add_metric(name="KpiWriteFailed", unit="Count", value=1)
    signals.referral(chat, signup_id, referrer, now)
    metrics.add_metric(name="ReferralsAttributed", unit="Count", value=1)
