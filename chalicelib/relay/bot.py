"""The keyword bot and the ride board, pure part (issue 12, item 5): which
message is a command, which command, and the words of the private answers.

A command is the *whole* message (SMS) or, for mail, the subject (without its
``Re:``/``Fwd:`` tags and ``[list]`` prefixes) when the body says nothing else, or
the first non-empty line of the body when at most two short lines follow it
(:func:`mail_candidates`): a mail with more to say is a chat message. Matching is case-insensitive, on the trimmed text, with whitespace runs
collapsed and trailing punctuation tolerated (``where?`` is ``WHERE``).

Commands:

- an organizer's keyword (``WHERE``), from the event's ``keywords``;
- ``RIDE OFFER <seats> [from] <place>``, ``RIDE NEED [from] <place>``,
  ``RIDE CANCEL``, ``RIDES`` (the open entries, without identities), and ``RIDE``
  alone or malformed (how to use it).

Places are shown to others (listings, intros), so they are checked here: no
``@``, no link, no run of digits that could be a phone number.

Stdlib only (the relay core stays pure).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from chalicelib.relay import headers as h
from chalicelib.relay.context import ChatContext
from chalicelib.relay.envelope import OUTPUT_POLICY, compose_subject, set_envelope_headers, set_list_headers
from chalicelib.relay.parse import MSG_ID_RE, clean_subject
from chalicelib.relay.placeholders import MUTE_URL_PLACEHOLDER_TEXT, TEXT_SLOT_LEAD, strip_placeholders
from chalicelib.relay.scrub import scrubber_for

# Words a keyword may not be: the carrier and courtesy keywords of the SMS channel
# (and their carrier synonyms), and the ride board's own.
RESERVED: frozenset[str] = frozenset(
    {
        "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE",
        "START", "UNSTOP", "YES", "SUBSCRIBE",
        "HELP", "INFO",
        "MUTE", "UNMUTE", "CHATS",
        "RIDE", "RIDES",
    }
)  # fmt: skip
KEYWORD_PATTERN = r"^[A-Za-z0-9]{2,20}$"
KEYWORD_RE = re.compile(KEYWORD_PATTERN)
MAX_KEYWORDS = 20
MAX_ANSWER = 320
MAX_SEATS = 20
MAX_PLACE = 60
MAX_COMMAND = 200  # longer text is never a command

_TRAILING = ".!?,;:\u2026\u00a1\u00bf"
_SUBJECT_TAG_RE = re.compile(
    r"^\s*(?:(?:re|aw|sv|antw|vs|ref|r|fwd?|fw|wg|tr|rv|enc)\s*(?:\[\d+\])?\s*:|\[[^\]]*\])\s*",
    re.IGNORECASE,
)
MAX_TRAILING_LINE = 80
_SENT_FROM_RE = re.compile(r"^(?:sent from my\b|sent from \w+ for\b|get outlook for\b)", re.IGNORECASE)
_ORIGINAL_RE = re.compile(r"^-{2,}\s*(?:original message|forwarded message)", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]*>")
_HIDDEN_RE = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_PLACE_RE = re.compile(r"^[\w .,'&/()#\-]+$")
_RIDE_RE = re.compile(r"^(?P<word>RIDES?)(?:\s+(?P<rest>.*))?$", re.IGNORECASE)
_OFFER_RE = re.compile(r"^OFFER\s+(?P<seats>[0-9]{1,3})\s+(?:SEATS?\s+)?(?:FROM\s+)?(?P<place>.+)$", re.IGNORECASE)
_NEED_RE = re.compile(r"^NEED\s+(?:(?:A\s+)?RIDE\s+)?(?:FROM\s+)?(?P<place>.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Keyword:
    key: str  # upper case, as stored


@dataclass(frozen=True)
class RideOffer:
    seats: int
    place: str  # as the asker wrote it (whitespace collapsed), checked by place_problem


@dataclass(frozen=True)
class RideNeed:
    place: str


@dataclass(frozen=True)
class RideCancel:
    pass


@dataclass(frozen=True)
class RideList:
    pass


@dataclass(frozen=True)
class RideUsage:
    problem: str  # why the ride command was not understood ('' for plain "RIDE")


Command = Keyword | RideOffer | RideNeed | RideCancel | RideList | RideUsage


def normalize(text: str) -> str:
    """The comparable form of a message: trimmed, whitespace collapsed, trailing
    punctuation dropped, upper case."""
    return " ".join(text.split()).rstrip(_TRAILING).rstrip().upper()


def could_be_keyword(text: str) -> bool:
    """Is ``text`` shaped like a keyword (one word of 2 to 20 letters or digits)?"""
    return len(text) <= MAX_COMMAND and bool(KEYWORD_RE.fullmatch(normalize(text)))


def keyword_key(key: str) -> str:
    """How a keyword is stored (upper case)."""
    return key.strip().upper()


def place_key(place: str) -> str:
    """Places match case- and whitespace-insensitively."""
    return " ".join(place.casefold().split())


def place_problem(place: str) -> str:
    """Why ``place`` may not be shown to others ('' if it may)."""
    if not place or len(place) > MAX_PLACE:
        return f"Please name the place in 1 to {MAX_PLACE} characters."
    if "@" in place or "://" in place or "www." in place.lower():
        return "Please name the place without an address or a link."
    if sum(ch.isdigit() for ch in place) >= 7:
        return "Please name the place without a phone number."
    if not _PLACE_RE.fullmatch(place):
        return "Please name the place with letters, digits and simple punctuation only."
    return ""


def parse_command(text: str, keywords: Collection[str] = ()) -> Command | None:
    """The command ``text`` is, or None (then it is an ordinary message).

    ``keywords`` are the event's keywords (any case)."""
    if len(text) > MAX_COMMAND:
        return None
    said = " ".join(text.split()).rstrip(_TRAILING).rstrip()
    if not said:
        return None
    if said.upper() in {keyword_key(k) for k in keywords}:
        return Keyword(said.upper())
    m = _RIDE_RE.match(said)
    if m is None:
        return None
    rest = (m.group("rest") or "").strip()
    word = rest.upper()
    if m.group("word").upper() == "RIDES":
        return RideList() if not rest else None  # "Rides are ..." is a sentence, not a command
    if not rest:
        return RideUsage("")
    if word in {"CANCEL", "WITHDRAW", "DONE"}:
        return RideCancel()
    if word in {"LIST", "BOARD"}:
        return RideList()
    offer = _OFFER_RE.match(rest)
    if offer is not None:
        seats = int(offer.group("seats"))
        if not 1 <= seats <= MAX_SEATS:
            return RideUsage(f"Offer between 1 and {MAX_SEATS} seats.")
        place = offer.group("place").strip()
        problem = place_problem(place)
        return RideUsage(problem) if problem else RideOffer(seats, place)
    need = _NEED_RE.match(rest)
    if need is not None:
        place = need.group("place").strip()
        problem = place_problem(place)
        return RideUsage(problem) if problem else RideNeed(place)
    if word.startswith(("OFFER", "NEED")):
        return RideUsage("Say how many seats and where from.")
    return None  # "Ride home tonight?" is a sentence, not a command


def label(command: Command) -> str:
    """A command's name for the answer's subject: never the asker's own words
    (a place they wrote may have been refused for holding an address)."""
    if isinstance(command, Keyword):
        return command.key
    return {
        RideOffer: "RIDE OFFER",
        RideNeed: "RIDE NEED",
        RideCancel: "RIDE CANCEL",
        RideList: "RIDES",
    }.get(type(command), "RIDE")


def strip_subject(subject: str) -> str:
    """A subject without reply/forward tags and ``[list]`` prefixes."""
    rest = " ".join(subject.split())
    while True:
        m = _SUBJECT_TAG_RE.match(rest)
        if m is None or not m.end():
            return rest.strip()
        rest = rest[m.end() :]


def first_line(body: str) -> str:
    """The first non-empty line of a plain-text body."""
    for line in body.splitlines():
        if line.strip():
            return line.strip()
    return ""


def own_lines(body: str) -> list[str]:
    """The body's own non-empty lines: quoted text, attribution lines, "Sent from
    my ..." and everything from the signature delimiter on left out."""
    lines = []
    for line in body.splitlines():
        text = line.strip()
        if line.rstrip() == "--" or line.startswith("-- ") or _ORIGINAL_RE.match(text):
            break
        if not text or text.startswith(">") or _SENT_FROM_RE.match(text) or text.endswith("wrote:"):
            continue
        lines.append(text)
    return lines


def body_text(message: EmailMessage) -> str:
    """The plain text of a mail (its HTML's text if it has none), '' if unreadable."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
        content = part.get_content() if part is not None else ""
    except Exception:  # a broken part is simply not a command
        return ""
    if not isinstance(content, str):
        return ""
    if part is not None and part.get_content_subtype() == "html":
        content = html.unescape(_TAG_RE.sub("\n", _HIDDEN_RE.sub("", content)))
    return content


def mail_candidates(subject: str, body: str) -> list[str]:
    """The texts of a mail that may be a command, in order.

    The subject, when the body says nothing of its own (a subject "Rides" over
    "Who can drive from the station?" is a chat message); the first line of the
    body, when at most two short lines follow it ("Thanks, Ann")."""
    own = own_lines(body)
    out = []
    topic = strip_subject(subject)
    if topic and not own:
        out.append(topic)
    if own and len(own) <= 3 and all(len(line) <= MAX_TRAILING_LINE for line in own[1:]):
        out.append(own[0])
    return out


# -- the answers' words (display names and places only: no address anywhere) -----

USAGE = (
    "Ride board: RIDE OFFER 3 from Downtown offers 3 seats; RIDE NEED from Downtown asks for one; "
    "RIDES lists what is open; RIDE CANCEL withdraws yours."
)


@dataclass(frozen=True)
class Match:
    """One pair the ride board introduced: the other person's display name and
    where the two write to each other (the pair's relay address)."""

    name: str
    address: str


def seats_text(n: int) -> str:
    return f"{n} seat{'' if n == 1 else 's'}"


def usage_answer(problem: str) -> str:
    return f"{problem} {USAGE}".strip()


def matches_text(matches: Sequence[Match], *, offering: bool) -> str:
    if not matches:
        return ""
    role = "needs a ride" if offering else "offers a ride"
    lines = [f"Matched: {m.name} ({role}). Write to them privately at {m.address}" for m in matches]
    return " ".join(lines) + ". Both of you got an introduction from that address; only your names are shown."


def offer_answer(seats: int, seats_left: int, place: str, matches: Sequence[Match]) -> str:
    head = f"Your ride offer is on the board: {seats_text(seats)} from {place}, {seats_text(seats_left)} still free."
    if not seats_left:
        head = f"Your ride offer from {place} is full: all {seats_text(seats)} are taken."
    tail = (
        matches_text(matches, offering=True)
        or "Nobody needs a ride from there yet: you will be told when someone does."
    )
    return f"{head} {tail} Send RIDE CANCEL to withdraw it."


def need_answer(place: str, matches: Sequence[Match]) -> str:
    if matches:
        return f"Your ride need from {place}: {matches_text(matches, offering=False)}"
    return (
        f"Your ride need from {place} is on the board. Nobody offers a ride from there yet: "
        "you will be told when someone does. Send RIDE CANCEL to withdraw it."
    )


def other_entry_answer(kind: str, place: str) -> str:
    return f"You already have a ride {kind} from {place} on this chat's board. Send RIDE CANCEL first to replace it."


def cancel_answer(kind: str | None, place: str | None, matched: int) -> str:
    if kind is None:
        return "You have nothing on this chat's ride board."
    kept = " People already matched with you keep your private conversation." if matched else ""
    return f"Your ride {kind} from {place} is withdrawn.{kept}"


def board_answer(offers: Iterable[tuple[str, int]], needs: Iterable[tuple[str, int]]) -> str:
    """The open entries by place: seats offered and rides needed, no identities."""
    offered = [f"{seats_text(n)} from {place}" for place, n in offers]
    needed = [f"{n} from {place}" for place, n in needs]
    if not offered and not needed:
        return f"The ride board is empty. {USAGE}"
    parts = []
    if offered:
        parts.append("Offered: " + "; ".join(offered) + ".")
    if needed:
        parts.append("Needed: " + "; ".join(needed) + ".")
    return " ".join(parts) + " " + USAGE


def scrub_answer(text: str, people: Iterable[tuple[str, Iterable[str]]], *, relay_domain: str) -> str:
    """An organizer's keyword answer as it may go out (R5): every participant's
    address replaced by their display name, any other address by a placeholder,
    and Muster's placeholders removed. ``people`` are (display name, addresses)."""
    return strip_placeholders(scrubber_for(people, keep_domain=relay_domain).scrub(text))


# -- the private answer by mail ----------------------------------------------------

ANSWER_NOTE = (
    "Only you received this answer. Muster answers keywords and ride-board commands "
    "privately: your message was not shared with the chat."
)


def render_answer(
    *,
    chat: ChatContext,
    command: str,
    answer: str,
    message_id: str,
    date: datetime,
    in_reply_to: str | None = None,
) -> bytes:
    """The answer to one asker: from the chat's address (as Muster), threaded to
    their message, with the chat's list headers and the asker's own mute slot
    (:func:`chalicelib.relay.template.personalize` fills it). ``command`` is the
    command's :func:`label`, never the asker's own subject; ``answer`` is what
    :func:`chalicelib.services.bot.answer` returned (scrubbed there)."""
    text = f"{strip_placeholders(answer)}\n\n{ANSWER_NOTE}\n\n{TEXT_SLOT_LEAD}{MUTE_URL_PLACEHOLDER_TEXT}\n"
    message = EmailMessage(policy=OUTPUT_POLICY)
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    subject = compose_subject(f"Re: {clean_subject(command)[:60]}", chat.subject_prefix)
    parent = (in_reply_to or "").strip()
    parent = parent if MSG_ID_RE.fullmatch(parent) else ""  # not a Message-ID: answer unthreaded
    set_envelope_headers(
        message, from_name="Muster", chat=chat, subject=subject, message_id=message_id, date=date,
        in_reply_to=parent or None, references=[parent] if parent else [],
    )  # fmt: skip
    set_list_headers(message, chat)
    message[h.AUTO_SUBMITTED] = "auto-replied"
    return message.as_bytes(policy=OUTPUT_POLICY)
