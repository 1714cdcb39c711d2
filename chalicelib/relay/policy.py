"""Who may post (R3, R6, R7, R12): a pure decision over plain data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from chalicelib.relay.addresses import domain_of, normalize_address
from chalicelib.relay.automatic import is_null_sender, loop_or_auto_reason
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import InboundMail, Verdicts

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
    return _relaxed_aligned(domain_of(envelope_sender or ""), domain_of(mail.from_address or ""))


def _relaxed_aligned(a: str, b: str) -> bool:
    """DMARC relaxed alignment, simplified: equal, or one is a subdomain of the other."""
    if not a or not b:
        return False
    return a == b or a.endswith("." + b) or b.endswith("." + a)


DKIM_SIGNATURE = "DKIM-Signature"
_FWS_RE = re.compile(r"\s+")


def dkim_domains(mail: InboundMail) -> tuple[str, ...]:
    """The ``d=`` domain of each DKIM-Signature header ('' where it has none)."""
    domains = []
    for value in mail.header_all(DKIM_SIGNATURE):
        domain = ""
        for tag in _FWS_RE.sub("", value).split(";"):
            name, eq, tag_value = tag.partition("=")
            if eq and name == "d":
                domain = domain_of("x@" + tag_value) if tag_value else ""
                break
        domains.append(domain)
    return tuple(domains)


def _real_address(addr: str | None) -> str | None:
    """The normalized address if it is one a person could read, else None."""
    if not addr or is_null_sender(addr):
        return None
    normalized = normalize_address(addr)
    local, at, domain = normalized.rpartition("@")
    return normalized if at and local and domain else None


def notice_recipient(verdicts: Verdicts, mail: InboundMail, envelope_sender: str | None) -> str | None:
    """The only address a polite notice may go to (R6), or None: never backscatter.

    1. The envelope sender, when SPF passed for it (and it is a real address, not
       the null sender or a mailer-daemon).
    2. Else the header From, when DKIM passed, DMARC did not fail, and a
       DKIM-Signature's ``d=`` is aligned (relaxed) with the From domain. SES
       reports one DKIM verdict for the message, not which signature passed:
       unless DMARC passed (which, SPF having failed, proves an aligned DKIM
       pass), every signature must be aligned, so a valid signature of some
       other domain cannot vouch for a forged aligned one.
    3. Else nobody.
    """
    if verdicts.spf == VERDICT_OK:
        envelope = _real_address(envelope_sender)
        if envelope is not None:
            return envelope
    if verdicts.dkim != VERDICT_OK or verdicts.dmarc == VERDICT_FAIL:
        return None
    author = _real_address(mail.from_address) if not mail.from_invalid else None
    if author is None:
        return None
    author_domain = domain_of(author)
    aligned = [_relaxed_aligned(d, author_domain) for d in dkim_domains(mail)]
    if not aligned or not any(aligned):
        return None
    if verdicts.dmarc != VERDICT_OK and not all(aligned):
        return None
    return author


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
    automatic mail / loops / null sender (R7), a refused From header (R6, never
    answered), over a complexity cap (R12: the body was never parsed), size
    (R12), no From at all, unknown chat, sender not a participant, inactive
    sender (R3), chat window (R1).
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
    if mail.from_invalid:
        return Outcome.FROM_INVALID
    if mail.too_complex:
        return Outcome.TOO_COMPLEX
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
