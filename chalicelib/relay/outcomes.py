"""Every way an inbound message can end (R6, R7, R9, R12), in one place."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """Why an inbound message was relayed or dropped."""

    RELAYED = "relayed"
    CHAT_NOT_FOUND = "chat_not_found"
    NOT_A_PARTICIPANT = "not_a_participant"
    SENDER_INACTIVE = "sender_inactive"
    CHAT_NOT_OPEN = "chat_not_open"
    CHAT_CLOSED = "chat_closed"
    AUTH_FAILED = "auth_failed"
    SPAM = "spam"
    VIRUS = "virus"
    AUTO_REPLY = "auto_reply"
    DELIVERY_REPORT = "delivery_report"
    NULL_SENDER = "null_sender"
    LOOP = "loop"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    MALFORMED = "malformed"
    FROM_INVALID = "from_invalid"  # R6: not exactly one well-formed From address
    TOO_COMPLEX = "too_complex"  # R12: header size or MIME part count over the cap
    RENDER_FAILED = "render_failed"  # R9: the message could not be rendered safely
    SENDER_REMOVED = "sender_removed"  # R15: an organizer removed or blocked the sender
    HELD = "held"  # R15: waits for an organizer's decision (then relayed, rejected or expired)
    MODERATION_REJECTED = "moderation_rejected"  # R15: an organizer declined it
    MODERATION_EXPIRED = "moderation_expired"  # R15: nobody decided in time
    BOT_ANSWERED = "bot_answered"  # issue 12: a keyword or ride command, answered privately, not relayed

    @property
    def relayed(self) -> bool:
        return self is Outcome.RELAYED

    @property
    def may_bounce(self) -> bool:
        """A polite bounce may go back (to an authenticated sender, R6).

        Never for mail that may be forged, automatic or already handled:
        answering those is how backscatter and mail loops start.
        """
        return self in _BOUNCEABLE

    @property
    def bounce_text(self) -> str:
        """The sentence a bounce uses to explain this outcome ('' if none)."""
        return _BOUNCE_TEXT.get(self, "")


_BOUNCE_TEXT: dict[Outcome, str] = {
    Outcome.CHAT_NOT_FOUND: "This chat address does not exist (anymore).",
    Outcome.NOT_A_PARTICIPANT: (
        "You are not in this chat, so your message was not shared. Only the people "
        "signed up for this shift and its organizers can post, from the address "
        "they signed up with."
    ),
    Outcome.SENDER_INACTIVE: ("Your signup for this shift is no longer active, so your message was not shared."),
    Outcome.SENDER_REMOVED: ("An organizer of this chat has removed you from it, so your message was not shared."),
    Outcome.CHAT_NOT_OPEN: "This chat is not open yet, so your message was not shared.",
    Outcome.CHAT_CLOSED: "This chat is closed, so your message was not shared.",
    Outcome.TOO_LARGE: (
        "Your message is too large to share. Please send a smaller message "
        "(for example, link to large files instead of attaching them)."
    ),
    Outcome.TOO_COMPLEX: (
        "Your message has too many parts or too large a header to share. Please send a simpler message."
    ),
    Outcome.RENDER_FAILED: (
        "Your message could not be processed, so it was not shared. Please send it again as plain text."
    ),
    Outcome.RATE_LIMITED: (
        "You have sent too many messages to this chat in a short time. Please wait a while and try again."
    ),
}

_BOUNCEABLE: frozenset[Outcome] = frozenset(_BOUNCE_TEXT)
