"""Private two-person threads (issue 10): an organizer writes to one participant.

The ride board (issue 12, :mod:`chalicelib.services.rides`) opens the same kind
of thread for a matched offer and need (:func:`open_pair`, ``about="ride"``):
opened by Muster, not by either member, so without the organizer rule below.

An organizer of a chat opens a private conversation with one active participant
of it (participants cannot open one: that is the harassment guard). The pair gets
its own relay address, ``<chat slug>-private-<thread id>@<relay domain>``. The
thread id is an HMAC of the deployment secret, the chat and both participant
keys (:func:`thread_id_for`): the same pair in the same chat always gets the same
thread, nobody can guess one, and nothing random is drawn (R8). Thread ids are
:data:`THREAD_ID_CHARS` long, chat ids 16, so the last segment of a relay
address's local part says which of the two it names (:func:`is_thread_key`).

Mail to the pair address takes the chat's own relay path
(:mod:`chalicelib.services.relay`) with three differences, all decided here:
only the two members may post (:func:`pair_author`), the copy goes only to the
other member (:func:`pair_recipients`), and it is rendered under the pair's
address, list identity and a ``[Private: ...]`` subject prefix
(:func:`private_context`). Everything else -- authentication, loops, caps, rate
limits, mute, notices, scrubbing of every participant of the chat, threading,
per-recipient claims -- is the chat's. Someone removed from the chat, cancelled,
blocked or gone (``left``) can neither post nor receive in the pair.

On first open each side gets one short intro from the pair address, queued
through the fan-out (kind ``intro``), so the per-recipient Delivery claims make
it exactly once per person however often (or concurrently) the thread is
opened; ``intro_pending`` keeps a crash between the thread's creation and the
queueing from losing them (the next open queues again; claims make that harmless).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.errors import ApiError, ChatNotOpen, NotAnOrganizer, NotFound
from chalicelib.models import Chat, Event, Participant, PrivateThread, SignupRef
from chalicelib.observability import logger, metrics
from chalicelib.relay.context import ChatContext
from chalicelib.services.chats import chat_id_for
from chalicelib.services.fanout import FanOut
from chalicelib.services.roster import is_active, participants, recipients
from chalicelib.settings import Settings, get_settings

THREAD_ID_CHARS = 20
_BASE32 = frozenset("abcdefghijklmnopqrstuvwxyz234567")


class NotActiveParticipant(ApiError):
    status, code = 422, "inactive_signup"


@dataclass(frozen=True)
class PrivateThreadInfo:
    thread_id: str  # opaque
    chat_id: str
    relay_address: str  # the pair's own relay address (no real address)
    organizer_key: str
    participant_key: str
    created: bool  # False when it already existed


def _open_chat(chat_id: str) -> Chat:
    """The chat, if it exists and is open: private conversations need an open chat."""
    try:
        chat = Chat.get(f"CH#{chat_id}", "META", consistent_read=True)
    except DoesNotExist:
        raise NotFound("no such chat", "timeslot_id") from None
    if chat.state != "open":
        raise ChatNotOpen(f"the chat is {chat.state}: private conversations need an open chat", "timeslot_id")
    return chat


def thread_id_for(chat_id: str, organizer_key: str, participant_key: str, secret: bytes) -> str:
    """The pair's stable, unguessable id (also the last segment of its address)."""
    mac = hmac.new(secret, f"private\x1f{chat_id}\x1f{organizer_key}\x1f{participant_key}".encode(), hashlib.sha256)
    return base64.b32encode(mac.digest()[:15]).decode().lower()[:THREAD_ID_CHARS]


def is_thread_key(key: str) -> bool:
    """Does a relay address's routing key name a private thread (not a chat)?"""
    return len(key) == THREAD_ID_CHARS and set(key) <= _BASE32


def thread_local(chat: Chat, thread_id: str) -> str:
    """``<chat slug>-private-<thread id>``: the chat's slug, never its id."""
    slug = chat.relay_local.rsplit("-", 1)[0] if "-" in chat.relay_local else ""
    return f"{slug}-private-{thread_id}" if slug else f"private-{thread_id}"


def load_thread(thread_id: str) -> PrivateThread | None:
    try:
        return PrivateThread.get(f"PT#{thread_id}", "META")
    except DoesNotExist:
        return None


def private_context(chat: Chat, thread: PrivateThread, settings: Settings) -> ChatContext:
    """How the pair's mail is addressed and labelled: From, To, Reply-To,
    List-Post are the pair address; List-Id is the pair's; the subject prefix
    says it is private."""
    start = chat.starts_at.astimezone(ZoneInfo(chat.timezone))
    ride = thread.about == "ride"  # a ride-board pair (issue 12)
    return ChatContext(
        chat_id=thread.thread_id,
        relay_address=f"{thread.relay_local}@{settings.relay_domain}",
        list_name=f"{'Ride' if ride else 'Private conversation'} \u2013 {chat.title} \u2013 {start:%a %d %b %H:%M}",
        subject_prefix=f"[{'Ride' if ride else 'Private'}: {chat.title[:40]} {start:%a %H:%M}]",
    )


def member_active(p: Participant | None) -> bool:
    """May this member post and receive in the pair? Still in the chat, active
    (an organizer, or a registered/confirmed/attended signup) and not gone."""
    return p is not None and is_active(p) and not p.left


def _members(thread: PrivateThread, people: Iterable[Participant]) -> tuple[Participant | None, Participant | None]:
    by_key = {p.participant_key: p for p in people}
    return by_key.get(thread.organizer_key), by_key.get(thread.participant_key)


def pair_author(thread: PrivateThread, people: Iterable[Participant], sender_hash: str | None) -> Participant | None:
    """The member who wrote (by address hash), or None: only the two may post."""
    if not sender_hash:
        return None
    return next((m for m in _members(thread, people) if m is not None and m.address_hash == sender_hash), None)


def pair_recipients(thread: PrivateThread, people: list[Participant], author: Participant) -> list[Participant]:
    """The other member, if they may still receive: the same record delivery
    will pick for that person (one per address, reachable: not muted, left or
    suppressed), never the author."""
    other = next(
        (m for m in _members(thread, people) if m is not None and m.participant_key != author.participant_key), None
    )
    if not member_active(other) or not member_active(author):
        return []
    assert other is not None
    return [p for p in recipients(people, exclude_hash=author.address_hash) if p.address_hash == other.address_hash]


def open_private_thread(
    chat_id: str,
    organizer_key: str,
    participant_key: str,
    *,
    settings: Settings | None = None,
    fanout: FanOut | None = None,
) -> PrivateThreadInfo:
    """Open (or find) the organizer's private thread with one participant.

    Raises :class:`NotFound` for an unknown chat, :class:`ChatNotOpen` unless the
    chat is open, :class:`NotAnOrganizer` unless ``organizer_key`` is an
    organizer of the chat, :class:`NotActiveParticipant` unless
    ``participant_key`` is an active signup of it (and another person).
    Idempotent; each side's intro goes out exactly once."""
    s = settings or get_settings()
    chat = _open_chat(chat_id)
    people = participants(chat_id)
    by_key = {p.participant_key: p for p in people}
    organizer, participant = by_key.get(organizer_key), by_key.get(participant_key)
    if organizer is None or organizer.role != "organizer":
        raise NotAnOrganizer("only an organizer of this chat can open a private conversation", "organizer_id")
    if participant is None or participant.role == "organizer" or not member_active(participant):
        raise NotActiveParticipant("the signup is not an active participant of this chat", "signup_id")
    if participant.address_hash == organizer.address_hash:
        raise NotActiveParticipant("the organizer and the signup are the same person", "signup_id")

    return _open(chat, organizer_key, participant_key, s, fanout)


def open_pair(
    chat_id: str,
    first_key: str,
    second_key: str,
    *,
    about: str = "ride",
    place: str | None = None,
    settings: Settings | None = None,
    fanout: FanOut | None = None,
) -> PrivateThreadInfo:
    """Open (or find) a two-person thread Muster itself introduces (issue 12: a
    ride offer's ``first_key`` and a ride need's ``second_key``). The same pair
    id and address scheme as an organizer's thread (``first_key`` in its
    organizer slot), so an organizer's existing thread with that person is reused;
    no organizer rule, but both must be active members of the open chat and two
    different people. Idempotent; each side's intro goes out exactly once."""
    s = settings or get_settings()
    chat = _open_chat(chat_id)
    by_key = {p.participant_key: p for p in participants(chat_id)}
    first, second = by_key.get(first_key), by_key.get(second_key)
    if not member_active(first) or not member_active(second):
        raise NotActiveParticipant("both must be active participants of this chat", "participant")
    assert first is not None and second is not None
    if first.address_hash == second.address_hash:
        raise NotActiveParticipant("the two are the same person", "participant")
    return _open(chat, first_key, second_key, s, fanout, about=about, place=place)


def _open(
    chat: Chat,
    organizer_key: str,
    participant_key: str,
    s: Settings,
    fanout: FanOut | None,
    *,
    about: str | None = None,
    place: str | None = None,
) -> PrivateThreadInfo:
    """Write the pair's thread once (conditional put) and queue its intros while pending."""
    chat_id = chat.chat_id
    thread_id = thread_id_for(chat_id, organizer_key, participant_key, s.secret)
    thread = PrivateThread(
        f"PT#{thread_id}",
        "META",
        thread_id=thread_id,
        chat_id=chat_id,
        organizer_key=organizer_key,
        participant_key=participant_key,
        relay_local=thread_local(chat, thread_id),
        created_at=clock.now(),
        intro_pending=True,
        about=about,
        place=place,
    )
    try:
        thread.save(condition=PrivateThread.pk.does_not_exist())
        created = True
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        created = False
        thread = PrivateThread.get(f"PT#{thread_id}", "META", consistent_read=True)
    if thread.intro_pending:
        # Whoever gets here queues the intros; the per-copy claims let only one
        # copy per person out, so a concurrent or retried open is harmless.
        (fanout or FanOut(s)).intro(
            chat,
            thread_id,
            private_context(chat, thread, s),
            organizer_key,
            participant_key,
            about=thread.about,
            place=thread.place,
        )
        thread.update(actions=[PrivateThread.intro_pending.remove()])
    if created:
        metrics.add_metric(name="PrivateThreadsOpened", unit="Count", value=1)
        logger.info("private thread opened", extra={"chat_id": chat_id, "thread_id": thread_id})
    return PrivateThreadInfo(
        thread_id=thread_id,
        chat_id=chat_id,
        relay_address=f"{thread.relay_local}@{s.relay_domain}",
        organizer_key=organizer_key,
        participant_key=participant_key,
        created=created,
    )


def open_for_integration(
    integration: str,
    event_id: str,
    timeslot_id: str,
    organizer_id: str,
    signup_id: str,
    *,
    settings: Settings | None = None,
) -> PrivateThreadInfo:
    """The API's way in (R13): the integration's own ids, mapped to the chat and
    the two participant keys. 404 for an unknown event, shift or signup; 422 for
    a signup of another shift (and everything :func:`open_private_thread` refuses)."""
    s = settings or get_settings()
    pk = f"EV#{integration}#{event_id}"
    try:
        event = Event.get(pk, "META", consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"no event '{event_id}'", "event_id") from None
    if not any(slot.id == timeslot_id for slot in event.timeslots):
        raise NotFound(f"no timeslot '{timeslot_id}' in event '{event_id}'", "timeslot_id")
    try:
        ref = SignupRef.get(pk, f"S#{signup_id}", consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"no signup '{signup_id}' in event '{event_id}'", "signup_id") from None
    if ref.timeslot_id != timeslot_id:
        raise NotActiveParticipant(f"signup '{signup_id}' is for another timeslot", "signup_id")
    chat_id = chat_id_for(integration, event_id, timeslot_id, s.secret)
    return open_private_thread(chat_id, f"o-{organizer_id}", f"s-{signup_id}", settings=s)
