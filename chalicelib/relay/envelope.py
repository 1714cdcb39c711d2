"""The top-level headers of every message Muster sends (R4, R7, R10, R11).

Only these functions set top-level headers; nothing from the inbound message
reaches the top level except the cleaned, scrubbed subject. Every value passes
:func:`~chalicelib.relay.placeholders.strip_placeholders`, so no header can
carry a mute-URL placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

from chalicelib.relay import headers as h
from chalicelib.relay.context import ChatContext
from chalicelib.relay.names import clean_name, clean_plain
from chalicelib.relay.normalize import remove_invisible
from chalicelib.relay.parse import MSG_ID_RE, clean_subject
from chalicelib.relay.placeholders import strip_placeholders

if TYPE_CHECKING:
    from chalicelib.relay.scrub import Scrubber

OUTPUT_POLICY = policy.SMTP
_SUBJECT_TAG_RE = re.compile(
    r"^\s*(?P<tag>re|aw|sv|antw|vs|ref|r|fwd?|fw|wg|tr|rv|enc)\s*(?:\[\d+\])?\s*:\s*",
    re.IGNORECASE,
)
_FORWARD_TAGS = frozenset({"fwd", "fw", "wg", "tr", "rv", "enc"})


_ENCODED_WORD_RE = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")


def as_shown(text: str) -> str:
    """The text a header set to ``text`` shows. The stdlib decodes any encoded
    word it finds in a value it is given, so a word nested in a word (decoded
    once by the parser) would decode again on output, after scrubbing: decode
    to a fixpoint first, so the scrubber sees what readers see (R5)."""
    for _ in range(4):
        if "=?" not in text:
            return text
        try:
            shown = str(policy.default.header_factory("Subject", text))
        except Exception:
            break
        if shown == text:
            return text
        text = clean_subject(shown)
    return _ENCODED_WORD_RE.sub(" ", text)


def compose_subject(subject: str, prefix: str, scrubber: Scrubber | None = None) -> str:
    """``[Prefix] subject`` with one ``Re: `` or ``Fwd: `` kept, never a doubled prefix."""
    prefix = strip_placeholders(clean_subject(remove_invisible(prefix)))
    rest = strip_placeholders(as_shown(clean_subject(remove_invisible(subject))))
    is_reply = is_forward = False
    while True:
        m = _SUBJECT_TAG_RE.match(rest)
        if m:
            if m.group("tag").lower() in _FORWARD_TAGS:
                is_forward = True
            else:
                is_reply = True
            rest = rest[m.end() :]
            continue
        if prefix and rest.lower().startswith(prefix.lower()):
            rest = rest[len(prefix) :].lstrip()
            continue
        break
    if scrubber is not None:
        rest = strip_placeholders(clean_subject(scrubber.scrub(rest)))
    lead = "Re: " if is_reply else "Fwd: " if is_forward else ""
    return " ".join(p for p in (lead + prefix, rest or "(no subject)") if p).strip()


def _msg_id(value: str) -> str:
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if not MSG_ID_RE.fullmatch(value):
        raise ValueError(f"not a message id: {value!r}")
    return value


def list_id(chat: ChatContext) -> str:
    label = strip_placeholders(clean_plain(chat.list_name.replace(":", "."))) or "Muster chat"
    chat_id = re.sub(r"[^A-Za-z0-9-]", "", chat.chat_id).lower() or "chat"
    return f"{label} <{chat_id}.{chat.relay_domain}>"


def set_list_headers(message: EmailMessage, chat: ChatContext) -> None:
    """Headers every message from a chat carries (R7, R11): list identity and loop guard."""
    message[h.LIST_ID] = list_id(chat)
    message[h.LIST_POST] = f"<mailto:{chat.relay_address}>"
    message[h.X_LOOP] = chat.relay_domain
    message[h.X_AUTO_RESPONSE_SUPPRESS] = "All"


def set_envelope_headers(
    message: EmailMessage,
    *,
    from_name: str,
    chat: ChatContext,
    subject: str,
    message_id: str,
    date: datetime,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> None:
    """The top-level headers Muster sets; nothing else reaches the top level."""
    relay = chat.relay_address
    # Address() quotes the display name when it needs to: an organizer's
    # "Olivia O. (organizer)" keeps its brackets (unquoted they would be a comment).
    message[h.FROM] = Address(display_name=strip_placeholders(clean_name(from_name)), addr_spec=relay)
    message[h.TO] = Address(addr_spec=relay)
    message[h.REPLY_TO] = Address(addr_spec=relay)
    message[h.SUBJECT] = strip_placeholders(clean_subject(subject))
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    message[h.DATE] = format_datetime(date)
    message[h.MESSAGE_ID] = _msg_id(message_id)
    if in_reply_to:
        message[h.IN_REPLY_TO] = _msg_id(in_reply_to)
    refs = [_msg_id(r) for r in references]
    if refs:
        message[h.REFERENCES] = " ".join(refs)
    if h.MIME_VERSION not in message:
        message[h.MIME_VERSION] = "1.0"
