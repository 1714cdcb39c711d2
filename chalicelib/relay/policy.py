"""Who may post (R3, R6, R7, R12): a pure decision over plain data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chalicelib.relay.addresses import domain_of
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import InboundMail, Verdicts, loop_or_auto_reason

VERDICT_OK = "PASS"
VERDICT_FAIL = "FAIL"


@dataclass(frozen=True)
class ChatWindow:
    """A chat's state and window; ``closes_at`` None: open until chat is turned off."""

    state: str  # "scheduled" | "open" | "closed" | "disabled"
    opens_at: datetime
    closes_at: datetime | None


@dataclass(frozen=True)
class SenderInfo:
    """The sender's participation; ``active`` for registered/confirmed/attended or organizers."""

    active: bool
    organizer: bool = False


def sender_authenticated(verdicts: Verdicts) -> bool:
    """R6: SPF or DKIM passed, and DMARC did not fail."""
    return (verdicts.spf == VERDICT_OK or verdicts.dkim == VERDICT_OK) and verdicts.dmarc != VERDICT_FAIL


def _aligned(verdicts: Verdicts, mail: InboundMail, envelope_sender: str | None) -> bool:
    """Whether the authenticated identity is the header From we match senders by.

    A DMARC PASS proves alignment. Without it (GRAY: the domain publishes no
    DMARC policy) an SPF pass only counts when the envelope domain is the From
    domain; otherwise anyone with an SPF-passing domain could post as a
    participant whose domain lacks DMARC.
    """
    if verdicts.dmarc == VERDICT_OK:
        return True
    if verdicts.spf != VERDICT_OK:
        return False
    envelope = domain_of(envelope_sender or "")
    header = domain_of(mail.from_address or "")
    if not envelope or not header:
        return False
    return envelope == header or envelope.endswith("." + header) or header.endswith("." + envelope)


def window_outcome(chat: ChatWindow, now: datetime) -> Outcome:
    """RELAYED if the chat accepts mail at ``now``, else why not."""
    if chat.state in ("closed", "disabled"):
        return Outcome.CHAT_CLOSED
    if chat.state == "scheduled" or now < chat.opens_at:
        return Outcome.CHAT_NOT_OPEN
    if chat.state != "open":
        return Outcome.CHAT_CLOSED
    if chat.closes_at is not None and now >= chat.closes_at:
        return Outcome.CHAT_CLOSED
    return Outcome.RELAYED


def authorize(
    *,
    verdicts: Verdicts,
    mail: InboundMail,
    envelope_sender: str | None,
    relay_domain: str,
    chat: ChatWindow | None,
    sender: SenderInfo | None,
    max_bytes: int,
    now: datetime,
    require_alignment: bool = True,
) -> Outcome:
    """Decide whether one inbound message may be relayed.

    Checks run in this order, first hit wins: virus, spam, authentication (R6),
    automatic mail / loops / null sender (R7), size (R12), no usable From,
    unknown chat, sender not a participant, inactive sender (R3), chat window (R1).
    Rate limits (R12) and duplicates (R8) need state and are checked by the caller.
    """
    if verdicts.virus == VERDICT_FAIL:
        return Outcome.VIRUS
    if verdicts.spam == VERDICT_FAIL:
        return Outcome.SPAM
    if not sender_authenticated(verdicts):
        return Outcome.AUTH_FAILED
    if require_alignment and not _aligned(verdicts, mail, envelope_sender):
        return Outcome.AUTH_FAILED
    reason = loop_or_auto_reason(mail, envelope_sender, relay_domain)
    if reason is not None:
        return reason
    if mail.size > max_bytes:
        return Outcome.TOO_LARGE
    if not mail.from_address:
        return Outcome.MALFORMED
    if chat is None:
        return Outcome.CHAT_NOT_FOUND
    if sender is None:
        return Outcome.NOT_A_PARTICIPANT
    if not sender.active:
        return Outcome.SENDER_INACTIVE
    return window_outcome(chat, now)
