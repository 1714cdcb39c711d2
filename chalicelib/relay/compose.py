"""System mail Muster writes itself (R6 bounces, R1/R11 kickoff): pure renderers.

Bounces quote nothing from the original message (not even its subject) and name
no other participant,
and carry ``Auto-Submitted: auto-replied`` so they are never answered in turn.
The kickoff uses the same mute placeholders as relayed mail, so
:func:`chalicelib.relay.anonymize.personalize` finishes it per recipient.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from chalicelib.relay import headers as h
from chalicelib.relay.anonymize import (
    MUTE_URL_PLACEHOLDER_TEXT,
    OUTPUT_POLICY,
    ChatContext,
    compose_subject,
    set_envelope_headers,
    set_list_headers,
)
from chalicelib.relay.names import FALLBACK_NAME, ORGANIZER_TAG, clean_name, decode_encoded_words, without_tag
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import clean_subject
from chalicelib.relay.placeholders import (
    HTML_LINK_TEXT,
    HTML_SLOT_LEAD,
    MUTE_URL_PLACEHOLDER_HTML,
    TEXT_SLOT_LEAD,
    strip_placeholders,
)

SYSTEM_NAME = "Muster"
MAX_KICKOFF_MEMBERS = 50  # a big chat's kickoff names the first 50, then "... and N more"


def _when(moment: datetime) -> str:
    return moment.strftime("%a %d %b %Y %H:%M %Z").strip()


def render_bounce(
    *,
    to_address: str,
    outcome: Outcome,
    relay_address: str,
    chat_label: str | None,
    opens_at: datetime | None,
    message_id: str,
    date: datetime,
    from_address: str,
) -> bytes:
    """A polite notice that a message was not shared, sent back to its sender only.

    Raises ValueError for outcomes that must never be answered (``may_bounce``).
    """
    if not outcome.may_bounce:
        raise ValueError(f"{outcome.value} must not be answered")
    label = clean_subject(chat_label or "") or "this chat"
    lines = [
        "Hello,",
        "",
        f'Your message to the Muster chat "{label}" ({relay_address}) was not shared.',
        "",
        outcome.bounce_text,
    ]
    if outcome is Outcome.CHAT_NOT_OPEN and opens_at is not None:
        lines += ["", f"The chat opens on {_when(opens_at)}."]
    lines += [
        "",
        "Nobody else in the chat received your message, and your address was not shown",
        "to anyone.",
        "",
        "This is an automatic notice; replies to it are not read.",
    ]
    message = EmailMessage(policy=OUTPUT_POLICY)
    message.set_content("\n".join(lines) + "\n", charset="utf-8", cte="quoted-printable")
    message[h.FROM] = Address(display_name=SYSTEM_NAME, addr_spec=from_address)
    message[h.TO] = Address(addr_spec=to_address)
    # Never the sender's subject: a notice that quoted it would carry a forger's
    # text from the relay domain (R6).
    message[h.SUBJECT] = "Your message to a Muster chat was not shared"
    message[h.DATE] = _format_date(date)
    message[h.MESSAGE_ID] = message_id
    message[h.AUTO_SUBMITTED] = "auto-replied"
    message[h.X_AUTO_RESPONSE_SUPPRESS] = "All"
    return message.as_bytes(policy=OUTPUT_POLICY)


def _format_date(date: datetime) -> str:
    return format_datetime(date if date.tzinfo else date.astimezone())


def _list_mail(
    text: str, *, chat: ChatContext, subject: str, message_id: str, date: datetime, markup: str | None = None
) -> bytes:
    """Mail from Muster into a chat (or private conversation) for one reader: the
    list's headers, the footer's mute slot in ``text`` (and in ``markup``, an HTML
    alternative, when given), never answered in turn."""
    message = EmailMessage(policy=OUTPUT_POLICY)
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    if markup is not None:
        message.add_alternative(markup, subtype="html", charset="utf-8", cte="quoted-printable")
    set_envelope_headers(
        message,
        from_name=SYSTEM_NAME,
        chat=chat,
        subject=compose_subject(subject, chat.subject_prefix),
        message_id=message_id,
        date=date,
    )
    set_list_headers(message, chat)
    message[h.AUTO_SUBMITTED] = "auto-generated"
    return message.as_bytes(policy=OUTPUT_POLICY)


def _member_lines(members: Sequence[str]) -> list[str]:
    """``  - Ann A.`` per member: display names only; anything like an address is left out."""
    names = []
    for member in members:
        if "@" in decode_encoded_words(str(member or "")):
            continue  # an address (or part of one) is never shown, not even cleaned up
        name = strip_placeholders(clean_name(member))
        if name:
            names.append(name)
    shown = [f"  - {name}" for name in names[:MAX_KICKOFF_MEMBERS]]
    if len(names) > MAX_KICKOFF_MEMBERS:
        shown.append(f"  ... and {len(names) - MAX_KICKOFF_MEMBERS} more")
    return shown


def _step_text(steps: Sequence[tuple[str, str]], note: str) -> str:
    """Next steps as text: each label, then its signed link on a line of its own."""
    if not steps:
        return ""
    lines = ["Next steps:"]
    for label, url in steps:
        lines += [f"  - {strip_placeholders(clean_subject(label))}:", f"    {url}"]
    return "\n".join(lines) + f"\n({note})\n\n"


def _html_mail(paragraphs: Sequence[str], steps: Sequence[tuple[str, str]], note: str) -> str:
    """The HTML alternative of Muster's own list mail: the same paragraphs, the next
    steps as links, and the footer's mute slot exactly as relayed mail writes it."""
    body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>\n" for p in paragraphs if p.strip())
    if steps:
        items = "".join(
            f'<li><a href="{html.escape(url, quote=True)}">{html.escape(strip_placeholders(clean_subject(label)))}</a></li>\n'
            for label, url in steps
        )
        body += f"<p>Next steps:</p>\n<ul>\n{items}</ul>\n<p><small>{html.escape(note)}</small></p>\n"
    return (
        "<!doctype html>\n<html><body>\n"
        f"{body}"
        '<div style="margin-top:16px;color:#666;font-size:12px">\n<hr>\n'
        f'{HTML_SLOT_LEAD}{MUTE_URL_PLACEHOLDER_HTML}">{HTML_LINK_TEXT}</a><br>\n'
        "</div>\n</body></html>\n"
    )


def invite_line(invite_url: str | None) -> str:
    """Bring a Friend (issue 11): the reader's personal invite link, or nothing.
    The URL was validated (https, no spaces or quotes) and carries only a code."""
    if not invite_url or any(c.isspace() for c in invite_url):
        return ""
    return f"Bring a friend: {invite_url}\n\n"


def render_kickoff(
    *,
    chat: ChatContext,
    recipient_name: str,
    shift_label: str,
    organizer: bool,
    message_id: str,
    date: datetime,
    members: Sequence[str] = (),
    next_steps: Sequence[tuple[str, str]] = (),
    steps_note: str = "",
    invite_url: str | None = None,
) -> bytes:
    """The welcome mail that opens a chat for one recipient (R1).

    ``recipient_name`` and ``members`` are display names
    (:func:`chalicelib.relay.names.display_name`), shown as they appear in the
    chat's From headers: ``Olivia O. (organizer)``. Addresses are never listed.
    The footer link (the same per-recipient placeholder as relayed mail) is how
    someone follows the chat: a daily digest, mute or leave.
    """
    name = strip_placeholders(clean_name(recipient_name)) or FALLBACK_NAME
    shift = strip_placeholders(clean_subject(shift_label))
    who = _member_lines(members)
    listing = "Who is in the chat:\n" + "\n".join(who) + "\n\n" if who else ""
    role = (
        f'You are an organizer of this shift, so your name carries an "{ORGANIZER_TAG}" tag. '
        "Every message you receive from the chat ends with organizer controls that only "
        "organizers see: remove or block its author, reply privately, hold new messages "
        "for your approval, or close the chat. Each link asks you to confirm first.\n\n"
        if organizer
        else ""
    )
    paragraphs = [
        f"Hello {without_tag(name)},",
        f"The chat for your shift is open: {shift}.",
        "Everyone signed up for this shift and its organizers can now email each other "
        f"through one address: {chat.relay_address}",
        listing.strip(),
        f'You appear to the others as "{name}". Your email address is hidden: nobody '
        "in the chat sees it, and you do not see theirs.",
        "To post, reply to this email or write to the chat address. Everyone in the chat receives your message.",
        role.strip(),
        invite_line(invite_url).strip(),
        "How you follow the chat is up to you: the link below (it is at the end of every "
        "chat message too) lets you get a daily digest instead of each message, mute "
        "the chat, or leave it.",
    ]
    steps = _step_text(next_steps, steps_note)
    text = (
        "\n\n".join(p for p in paragraphs[:3] if p) + "\n\n"
        f"{listing}" + "\n\n".join(p for p in paragraphs[4:] if p) + "\n\n"
        f"{steps}"
        f"{TEXT_SLOT_LEAD}"
        f"{MUTE_URL_PLACEHOLDER_TEXT}\n"
    )
    markup = _html_mail(paragraphs, next_steps, steps_note) if next_steps else None
    subject = f"Your chat for {shift} is open"
    return _list_mail(text, chat=chat, subject=subject, message_id=message_id, date=date, markup=markup)


def render_debrief(
    *,
    chat: ChatContext,
    shift_label: str,
    prompt: str,
    message_id: str,
    date: datetime,
    next_steps: Sequence[tuple[str, str]] = (),
    steps_note: str = "",
) -> bytes:
    """The post-shift debrief (issue 11), from Muster into the chat for one reader:
    the organizers' prompt, the event's next steps (this reader's signed links),
    and the footer. Replies go to the chat like any message."""
    shift = strip_placeholders(clean_subject(shift_label))
    question = strip_placeholders(prompt).strip()
    paragraphs = [
        f"Thank you for {shift}.",
        question,
        "Reply to this email to answer: everyone in the chat receives your reply, as with any chat message.",
    ]
    text = (
        "\n\n".join(paragraphs)
        + "\n\n"
        + _step_text(next_steps, steps_note)
        + (f"{TEXT_SLOT_LEAD}{MUTE_URL_PLACEHOLDER_TEXT}\n")
    )
    markup = _html_mail(paragraphs, next_steps, steps_note)
    return _list_mail(
        text, chat=chat, subject=f"How did it go? {shift}", message_id=message_id, date=date, markup=markup
    )


def render_private_intro(
    *,
    chat: ChatContext,
    organizer_name: str,
    participant_name: str,
    to_organizer: bool,
    shift_label: str,
    message_id: str,
    date: datetime,
    ride_place: str | None = None,
) -> bytes:
    """The intro each member of a private two-person thread gets once (issue 10).

    With ``ride_place`` it is a ride-board pair (issue 12): ``organizer_name``
    offered a ride from that place and ``participant_name`` needed one.

    ``chat`` is the pair's context (its own relay address and subject prefix);
    the names are display names. Sent from the pair's address, so replying to it
    starts the conversation. Addresses are never shown.
    """

    def shown(name: str) -> str:
        if "@" in decode_encoded_words(str(name or "")):
            return FALLBACK_NAME  # an address (or part of one) is never shown, as in the kickoff
        return strip_placeholders(clean_name(name)) or FALLBACK_NAME

    organizer, participant = shown(organizer_name), shown(participant_name)
    shift = strip_placeholders(clean_subject(shift_label))
    lead = (
        f"You opened a private conversation with {participant} about {shift}."
        if to_organizer
        else f"{organizer} opened a private conversation with you about {shift}."
    )
    other = participant if to_organizer else organizer
    subject = f"Private conversation about {shift}"
    if ride_place is not None:
        # Checked when it was posted (relay.bot.place_problem); never an address here either.
        place = "" if "@" in ride_place else strip_placeholders(clean_subject(ride_place))
        place = place or "the same place"
        lead = (
            f"Muster's ride board matched you with {participant}, who needs a ride from {place} "
            f"for {shift}: you offered one."
            if to_organizer
            else f"Muster's ride board matched you with {organizer}, who offers a ride from {place} for {shift}."
        )
        subject = f"Ride from {place}: {without_tag(other)}"
    text = (
        f"{lead} Only the two of you receive messages sent to this address.\n\n"
        f"To write to {without_tag(other)} alone, reply to this email or write to "
        f"{chat.relay_address}. Your email address stays hidden: {without_tag(other)} "
        "sees only your name, as in the chat.\n\n"
        "The link below is the same as in the chat's messages: it mutes or leaves the "
        "chat, and this conversation with it.\n\n"
        f"{TEXT_SLOT_LEAD}"
        f"{MUTE_URL_PLACEHOLDER_TEXT}\n"
    )
    return _list_mail(text, chat=chat, subject=subject, message_id=message_id, date=date)
