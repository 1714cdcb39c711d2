"""The daily digest of a chat for one reader: a pure renderer (issue 9, R5, R10, R11).

A digest is one MIME message per (reader, chat, day)::

    multipart/mixed
      text/plain           the day's messages listed (author, time in the chat's
                           zone, subject), how to answer, and the reader's footer
      multipart/digest
        message/rfc822     each stored, already anonymized copy, in order

Each embedded copy is the message exactly as fan-out would have sent it to this
reader: the stored rendered bytes with the reader's mute URL spliced into its
footer slots by :class:`~chalicelib.relay.template.CopyTemplate` (the same
splice; no re-parsing, no re-encoding). It keeps Muster's own
``Message-ID: <message id@relay domain>`` -- SES only rewrites the *top-level*
Message-ID -- so a reply to an embedded message cites an id the inbound relay
resolves, and the reply threads like a reply to a single copy. When the stored
copy carries no threading headers (fan-out adds them per reader), the embedded
copy gets ``In-Reply-To``/``References`` built from the given Muster ids.

Nothing here can add an address: the listing is read back from the embedded
copies' own (anonymized) headers, cleaned to one line, and anything shaped like
an address is hidden again; the top-level headers are Muster's
(:mod:`~chalicelib.relay.envelope`). Stdlib only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from chalicelib.relay import headers as h
from chalicelib.relay.context import ChatContext
from chalicelib.relay.envelope import OUTPUT_POLICY, compose_subject, set_envelope_headers, set_list_headers
from chalicelib.relay.names import clean_name
from chalicelib.relay.parse import clean_subject
from chalicelib.relay.placeholders import strip_placeholders
from chalicelib.relay.template import CopyTemplate, list_unsubscribe_headers

SYSTEM_NAME = "Muster digest"
MAX_REFERENCES = 10
_ADDRESSLIKE = re.compile(r"[^\s<>\"'()\[\],;:]+@[^\s<>\"'()\[\],;:]+")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_HIDDEN = "[address hidden]"


@dataclass(frozen=True)
class DigestMessage:
    """One stored, anonymized copy (with its mute placeholders) and the Muster
    ids of the messages it answers, oldest first, parent last."""

    rendered: bytes
    ancestors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    author: str
    when: datetime | None
    subject: str
    message_id: str | None


def _head(rendered: bytes) -> bytes:
    ends = [i for sep in (b"\r\n\r\n", b"\n\n") if (i := rendered.find(sep)) >= 0]
    return rendered[: min(ends) + 2] if ends else rendered


def _one_line(text: str) -> str:
    """Printable, one line, no placeholder, nothing shaped like an address."""
    text = strip_placeholders(clean_subject(text))
    return _ADDRESSLIKE.sub(_HIDDEN, text)


def summarize(rendered: bytes) -> Summary:
    """Author display name, date, subject and Message-ID of a stored copy (headers only)."""
    head = BytesHeaderParser(policy=policy.default).parsebytes(_head(rendered))
    author = ""
    try:
        sender = head.get(h.FROM)
        addresses = getattr(sender, "addresses", ())
        author = addresses[0].display_name if addresses else str(sender or "")
    except Exception:
        author = ""
    when: datetime | None = None
    try:
        raw_date = head.get(h.DATE)
        when = parsedate_to_datetime(str(raw_date)) if raw_date else None
        if when is not None and when.tzinfo is None:
            when = None
    except (TypeError, ValueError, IndexError):
        when = None
    try:
        subject = str(head.get(h.SUBJECT) or "")
    except Exception:
        subject = ""
    try:
        message_id = str(head.get(h.MESSAGE_ID) or "").strip() or None
    except Exception:
        message_id = None
    return Summary(
        author=_one_line(clean_name(author)) or "Participant",
        when=when,
        subject=_one_line(subject) or "(no subject)",
        message_id=message_id,
    )


def _short_subject(subject: str, prefix: str) -> str:
    """The subject without the chat's prefix (every message has it)."""
    lead = ""
    for tag in ("Re: ", "Fwd: "):
        if subject.startswith(tag):
            lead, subject = tag, subject[len(tag) :]
            break
    if prefix and subject.startswith(prefix):
        subject = subject[len(prefix) :].strip()
    return (lead + subject).strip() or "(no subject)"


def _thread_headers(rendered: bytes, ancestors: Sequence[str], relay_domain: str) -> dict[str, str]:
    """In-Reply-To/References (Muster ids) for a copy stored without them."""
    ids = [a for a in ancestors if _SAFE_ID.match(a)]
    if not ids or not _SAFE_ID.match(relay_domain.replace("-", "")):
        return {}
    head = _head(rendered).lower()
    if b"\nin-reply-to:" in b"\n" + head or b"\nreferences:" in b"\n" + head:
        return {}
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    refs = [f"<{i}@{relay_domain}>" for i in ids]
    return {h.IN_REPLY_TO: refs[-1], h.REFERENCES: " ".join(refs)}


def embedded_copy(message: DigestMessage, *, mute_url: str, relay_domain: str) -> bytes:
    """One stored copy as this reader's digest embeds it: footers filled with the
    reader's mute URL (the fan-out splice), threading headers if it has none."""
    template = CopyTemplate.of(message.rendered)
    extra = _thread_headers(message.rendered, message.ancestors, relay_domain)
    copy = template.render(mute_url=mute_url, list_unsubscribe_headers=extra)
    return copy if copy.endswith(b"\n") else copy + b"\r\n"


def _boundary(tag: str, contents: Sequence[bytes]) -> str:
    digest = hashlib.sha256(b"".join(hashlib.sha256(c).digest() for c in contents)).hexdigest()[:24]
    n = 0
    while True:
        boundary = f"=_muster_{tag}_{digest}{n or ''}"
        marker = b"--" + boundary.encode("ascii")
        if not any(marker in c for c in contents):
            return boundary
        n += 1


def _listing(
    summaries: Sequence[Summary],
    *,
    chat: ChatContext,
    zone: ZoneInfo,
    day: date,
    part: int,
    digest_hour: int,
    mute_url: str,
    invite_url: str | None = None,
) -> str:
    count = len(summaries)
    noun = "message" if count == 1 else "messages"
    title = _one_line(chat.list_name) or "this chat"
    more = f", part {part}" if part > 1 else ""
    lines = [f'Daily digest of the chat "{title}": {count} {noun} ({day:%a %d %b %Y}{more}).', ""]
    width = len(str(count))
    for n, s in enumerate(summaries, 1):
        when = s.when.astimezone(zone).strftime("%a %H:%M") if s.when else "--- --:--"
        subject = _short_subject(s.subject, _one_line(chat.subject_prefix))
        lines.append(f"{n:>{width}}. {when}  {s.author}: {subject}")
    lines += [
        "",
        f"Times are {zone.key}. Each message is attached below, in order. Reply to a",
        "message to answer it in its thread; everyone in the chat receives your reply.",
        f"To start a new topic, write to {chat.relay_address}",
        "",
        *([f"Bring a friend: {invite_url}", ""] if invite_url and not any(c.isspace() for c in invite_url) else []),
        "-- ",
        f"You get this chat as a daily digest: one email a day, after {digest_hour:02d}:00.",
        "Email addresses are hidden: people appear by first name and last initial.",
        "Get every message instead, mute or leave the chat:",
        mute_url,
        "",
    ]
    return "\n".join(lines)


def render_digest(
    *,
    chat: ChatContext,
    messages: Sequence[DigestMessage],
    timezone: str,
    day: date,
    mute_url: str,
    message_id: str,
    sent_at: datetime,
    digest_hour: int,
    part: int = 1,
    invite_url: str | None = None,
) -> bytes:
    """One reader's digest of ``messages`` (oldest first) for ``day`` (R5, R10, R11).

    ``mute_url`` is this reader's signed settings link; it fills the footers of
    every embedded copy and the digest's own, and ``List-Unsubscribe``.
    """
    if not messages:
        raise ValueError("a digest needs at least one message")
    zone = ZoneInfo(timezone)
    copies = [embedded_copy(m, mute_url=mute_url, relay_domain=chat.relay_domain) for m in messages]
    summaries = [summarize(c) for c in copies]

    text = MIMEPart(policy=OUTPUT_POLICY)
    text.set_content(
        _listing(
            summaries,
            chat=chat,
            zone=zone,
            day=day,
            part=part,
            digest_hour=digest_hour,
            mute_url=mute_url,
            invite_url=invite_url,
        ),
        charset="utf-8",
        cte="quoted-printable",
    )
    text_bytes = text.as_bytes(policy=OUTPUT_POLICY)

    inner = _boundary("d", [text_bytes, *copies])
    outer = _boundary("m", [text_bytes, *copies, inner.encode("ascii")])
    count = len(messages)
    top = EmailMessage(policy=OUTPUT_POLICY)  # headers only: the body is written below
    set_envelope_headers(
        top,
        from_name=SYSTEM_NAME,
        chat=chat,
        subject=compose_subject(
            f"Daily digest, {day:%a %d %b}: {count} message{'' if count == 1 else 's'}"
            + (f" (part {part})" if part > 1 else ""),
            chat.subject_prefix,
        ),
        message_id=message_id,
        date=sent_at,
    )
    set_list_headers(top, chat)
    for name, value in list_unsubscribe_headers(mute_url).items():
        top[name] = value
    top[h.AUTO_SUBMITTED] = "auto-generated"
    top[h.CONTENT_TYPE] = f'multipart/mixed; boundary="{outer}"'
    head = b"".join(OUTPUT_POLICY.fold_binary(k, v) for k, v in top.items())

    body = [
        head,
        b"\r\n",
        f"This is a digest of {count} message{'' if count == 1 else 's'} in MIME format.\r\n".encode("ascii"),
        f"--{outer}\r\n".encode("ascii"),
        text_bytes if text_bytes.endswith(b"\n") else text_bytes + b"\r\n",
        f"\r\n--{outer}\r\n".encode("ascii"),
        f'Content-Type: multipart/digest; boundary="{inner}"\r\n\r\n'.encode("ascii"),
    ]
    for n, copy in enumerate(copies, 1):
        cte = "7bit" if copy.isascii() else "8bit"
        body.append(
            (
                f"--{inner}\r\n"
                "Content-Type: message/rfc822\r\n"
                f'Content-Disposition: inline; filename="message-{n:02d}.eml"\r\n'
                f"Content-Transfer-Encoding: {cte}\r\n\r\n"
            ).encode("ascii")
        )
        body.append(copy)
        body.append(b"\r\n")
    body.append(f"--{inner}--\r\n\r\n--{outer}--\r\n".encode("ascii"))
    return b"".join(body)
