"""What organizers and reporters read (R15, issue 10): pure renderers.

- :func:`attendee_controls` / :func:`organizer_controls`: the per-recipient lines
  spliced into a relayed copy's footer (see :mod:`chalicelib.relay.template`);
- :func:`excerpt`: a short, anonymized excerpt of a rendered message (the
  rendered copy is already scrubbed: this only trims it);
- :func:`render_steward_notice`: mail from Muster to one organizer (a held
  message, an abuse report) or to one author (their held message was declined),
  with that reader's signed links written in.

Nothing here names a reporter, and nothing quotes an address: the excerpt comes
from the anonymized render, and display names are cleaned.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime

from chalicelib.relay import headers as h
from chalicelib.relay.anonymize import OUTPUT_POLICY, ChatContext, compose_subject, set_envelope_headers
from chalicelib.relay.names import clean_name
from chalicelib.relay.placeholders import strip_placeholders

SYSTEM_NAME = "Muster"
EXCERPT_CHARS = 400
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n{3,}")

# action -> (label with the author's name, label without one)
CONTROL_LABELS: dict[str, str] = {
    "remove": "Remove {name} from this chat",
    "block": "Block {name} from every chat",
    "private": "Reply privately to {name}",
    "hold": "Hold new messages for your approval",
    "release": "Stop holding messages (release the chat)",
    "close": "Close this chat",
    "reopen": "Reopen this chat",
}


@dataclass(frozen=True)
class Control:
    action: str
    url: str


def _name(name: str) -> str:
    return strip_placeholders(clean_name(name)) or "this person"


def attendee_controls(report_url: str) -> tuple[str, str]:
    """The report line of an attendee's copy: (text, HTML)."""
    text = f"Report this message to the organizers:\n{report_url}"
    markup = f'<a href="{html.escape(report_url, quote=True)}">Report this message</a>'
    return text, markup


def organizer_controls(author_name: str | None, controls: Sequence[Control]) -> tuple[str, str]:
    """An organizer's control block: (text, HTML). Each control is a signed
    link to a confirmation page; nothing happens until the organizer confirms."""
    if not controls:
        return "", ""
    name = _name(author_name or "")
    lines = ["", "Organizer controls (only organizers see these; each link asks you to confirm):"]
    items = []
    for control in controls:
        label = CONTROL_LABELS[control.action].format(name=name)
        lines.append(f"{label}:\n{control.url}")
        items.append(f'<li><a href="{html.escape(control.url, quote=True)}">{html.escape(label)}</a></li>')
    text = "\n".join(lines)
    markup = (
        '<div style="margin-top:8px;padding:6px 8px;border:1px solid #ccc">'
        "<strong>Organizer controls</strong> (only organizers see these; each link asks you to confirm):"
        f'<ul style="margin:4px 0">{"".join(items)}</ul></div>'
    )
    return text, markup


def excerpt(rendered: bytes, limit: int = EXCERPT_CHARS) -> str:
    """The start of a rendered (already anonymized) message's text, without its footer."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(rendered)
        part = message.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if part is not None else ""
        if part is not None and part.get_content_subtype() == "html":
            text = re.sub(r"<[^>]*>", " ", text)
            text = html.unescape(text)
    except Exception:
        return "(the message could not be shown)"
    text = str(text).split("\n-- \n", 1)[0]
    text = strip_placeholders(_BLANKS.sub("\n\n", _SPACES.sub(" ", text)).strip())
    if len(text) > limit:
        text = text[:limit].rstrip() + " ..."
    return text or "(no text)"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def render_steward_notice(
    *,
    to_address: str,
    to_name: str,
    chat: ChatContext,
    subject: str,
    intro: Sequence[str],
    quoted: str | None,
    links: Sequence[tuple[str, str]],
    message_id: str,
    date: datetime,
) -> bytes:
    """One notice from Muster to one person: ``intro`` paragraphs, an optional
    quoted (anonymized) excerpt, then ``links`` as (label, signed URL) pairs."""
    lines = [f"Hello {clean_name(to_name).split(' ')[0] or 'there'},", ""]
    for paragraph in intro:
        lines += [paragraph, ""]
    if quoted:
        lines += [_quote(quoted), ""]
    for label, url in links:
        lines += [f"{label}:", url, ""]
    lines += ["This is an automatic message from Muster; replies to it are not read."]
    message = EmailMessage(policy=OUTPUT_POLICY)
    message.set_content("\n".join(lines) + "\n", charset="utf-8", cte="quoted-printable")
    set_envelope_headers(
        message,
        from_name=SYSTEM_NAME,
        chat=chat,
        subject=compose_subject(subject, chat.subject_prefix),
        message_id=message_id,
        date=date,
    )
    del message[h.TO]
    message[h.TO] = Address(addr_spec=to_address)
    del message[h.REPLY_TO]
    message[h.AUTO_SUBMITTED] = "auto-generated"
    message[h.X_AUTO_RESPONSE_SUPPRESS] = "All"
    return message.as_bytes(policy=OUTPUT_POLICY)


def format_when(moment: datetime) -> str:
    return format_datetime(moment)
