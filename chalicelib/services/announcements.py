"""Organizer announcements (issue 11): an integration posts a message into one chat,
or into every chat of an event, as one of the event's organizers.

It takes the relay's own path from the render on: the text becomes a plain mail
from the organizer, rendered once by :func:`chalicelib.relay.anonymize.render`
(the organizer's display name with its tag, the chat's relay address, List
headers, scrubbing of every participant's address, the footer with each reader's
mute link and controls), stored at ``outbound/<id>.eml`` with its threading
record (replies thread under it), logged in the chat's message log and stats,
and fanned out in batches whose copies are claimed once per person. The
announcement's next steps are spliced into each copy's footer as that reader's
signed links (:func:`chalicelib.services.nextsteps.with_next_steps`). An
announcement is never deferred to a digest and never held for moderation
(organizers' messages never are).

Exactly once under retries: the message id is a digest of the integration, the
event, the shift and either the ``Idempotency-Key`` header or, without one, the
body itself -- so a retried POST names the same message. Its ``MSG#<id>``/``ANN``
item is written conditionally; a retry that finds it finds the log entry too
(its key derives from the item's time) and either answers "already posted" or
finishes a fan-out a crash cut short, whose copies are claimed per person.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.errors import ChatNotOpen, NotAnOrganizer, NotFound, Unprocessable
from chalicelib.models import Announcement, Chat, Event, MessageLog, Participant
from chalicelib.observability import logger, metrics
from chalicelib.relay import anonymize
from chalicelib.relay.names import display_name
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import parse_inbound
from chalicelib.schemas import AnnouncementBody
from chalicelib.services import files
from chalicelib.services.chats import chat_id_for
from chalicelib.services.copies import chat_context
from chalicelib.services.fanout import FanOut
from chalicelib.services.nextsteps import steps_of
from chalicelib.services.relay import LOG_DAYS, RelayService
from chalicelib.services.roster import is_active, participants, recipients
from chalicelib.settings import Settings, get_settings

DEFAULT_SUBJECT = "Announcement"


@dataclass(frozen=True)
class Posted:
    timeslot_id: str
    message_id: str
    recipients: int
    created: bool


@dataclass(frozen=True)
class Skipped:
    timeslot_id: str
    reason: str


def message_id_for(integration: str, event_id: str, timeslot_id: str, basis: str) -> str:
    """32 hex digits (Muster's own id format, so replies thread under it)."""
    raw = f"announce\x1f{integration}\x1f{event_id}\x1f{timeslot_id}\x1f{basis}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def render_announcement(
    *,
    chat: anonymize.ChatContext,
    author: anonymize.Person,
    people: list[anonymize.Person],
    subject: str,
    text: str,
    message_id: str,
    date: datetime,
    files: anonymize.FileLinks | None = None,
) -> bytes:
    """The organizer's text as a plain mail from them (their first address), through
    the relay's one renderer: what every announcement copy is spliced from."""
    mail = EmailMessage(policy=policy.SMTP)
    mail["From"] = author.addresses[0]
    mail["To"] = chat.relay_address
    mail["Subject"] = re.sub(r"[\x00-\x1f\x7f]+", " ", subject).strip() or DEFAULT_SUBJECT  # never a header break
    mail["Message-ID"] = f"<announce-{message_id}@{chat.relay_domain}>"
    mail.set_content(text, charset="utf-8")
    return anonymize.render(
        parse_inbound(mail.as_bytes()),
        author=author,
        people=people,
        chat=chat,
        message_id=f"<{message_id}@{chat.relay_domain}>",
        in_reply_to=None,
        references=[],
        date=date,
        files=files,
    ).message


class Announcements:
    def __init__(self, settings: Settings | None = None, relay: RelayService | None = None) -> None:
        self.settings = settings or get_settings()
        self.relay = relay or RelayService(self.settings)

    @property
    def fanout(self) -> FanOut:
        return self.relay.fanout

    @property
    def store(self) -> MailStore:
        return self.relay.store

    def post(
        self,
        integration: str,
        event_id: str,
        timeslot_id: str | None,
        body: AnnouncementBody,
        idempotency_key: str | None = None,
    ) -> tuple[list[Posted], list[Skipped]]:
        """Post into one shift's chat (``timeslot_id``) or every chat of the event.

        404 for an unknown event or shift; 422 for an organizer the event does not
        have or a next step it does not list; for one chat, 409 unless it is open
        and 422 if the organizer is not active in it. Event-wide, chats that cannot
        take it are skipped (and listed); 409 if none could."""
        try:
            event = Event.get(f"EV#{integration}#{event_id}", "META", consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"no event '{event_id}'", "event_id") from None
        slots = [t.id for t in event.timeslots]
        if timeslot_id is not None and timeslot_id not in slots:
            raise NotFound(f"no timeslot '{timeslot_id}' in event '{event_id}'", "timeslot_id")
        if body.organizer_id not in event.organizer_ids:
            raise Unprocessable(
                f"'{body.organizer_id}' is not an organizer of event '{event_id}'",
                "organizer_id",
                code="unknown_organizer",
            )
        known = {s.id: s for s in steps_of(event)}
        unknown = [sid for sid in body.next_steps if sid not in known]
        if unknown:
            raise Unprocessable(
                f"event '{event_id}' has no next step '{unknown[0]}'", "next_steps", code="unknown_next_step"
            )
        steps = [{"id": sid, "label": known[sid].label} for sid in body.next_steps]
        basis = f"key:{idempotency_key}" if idempotency_key else f"body:{body.model_dump_json()}"
        posted: list[Posted] = []
        skipped: list[Skipped] = []
        for slot in [timeslot_id] if timeslot_id is not None else slots:
            try:
                posted.append(self._post_one(integration, event_id, slot, body, steps, basis))
            except (ChatNotOpen, NotAnOrganizer) as err:
                if timeslot_id is not None:
                    raise
                skipped.append(Skipped(slot, err.code))
        if not posted:
            raise ChatNotOpen("no chat of this event is open", "event_id")
        return posted, skipped

    def _post_one(
        self,
        integration: str,
        event_id: str,
        timeslot_id: str,
        body: AnnouncementBody,
        steps: list[dict[str, str]],
        basis: str,
    ) -> Posted:
        s = self.settings
        chat_id = chat_id_for(integration, event_id, timeslot_id, s.secret)
        try:
            chat = Chat.get(f"CH#{chat_id}", "META", consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"no chat for timeslot '{timeslot_id}'", "timeslot_id") from None
        message_id = message_id_for(integration, event_id, timeslot_id, basis)
        claim = self._claim(message_id, chat_id, f"o-{body.organizer_id}")
        pk, sk = f"CH#{chat_id}", f"M#{claim.at.isoformat()}#{message_id}"
        try:
            log: MessageLog | None = MessageLog.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            log = None
        if log is not None:
            if log.state == "relaying":  # a crash cut the fan-out short: finish it
                people = participants(chat_id)
                author = next((p for p in people if p.participant_key == log.author_key), None)
                targets = recipients(people, exclude_hash=author.address_hash if author else log.sender_hash)
                self._fan_out(chat, message_id, log.author_key or "", targets, int(log.rendered_size or 0), steps)
                self.relay._finish(log, chat, log.received_at)
            return Posted(timeslot_id, message_id, 0, False)

        if chat.state != "open":
            raise ChatNotOpen(f"the chat of timeslot '{timeslot_id}' is {chat.state}", "timeslot_id")
        people = participants(chat_id)
        author = next((p for p in people if p.participant_key == claim.author_key), None)
        if author is None or author.role != "organizer" or not is_active(author):
            raise NotAnOrganizer(f"'{body.organizer_id}' is not an active organizer of this chat", "organizer_id")
        rendered = self._render(chat, message_id, author, people, body, claim.at)
        self.store.put(f"outbound/{message_id}.eml", rendered)
        self.relay.threads.remember(
            message_id,
            chat_id=chat_id,
            author_key=author.participant_key,
            author_hash=author.address_hash,
            client_id=None,
            ancestors=[],
        )
        targets = recipients(people, exclude_hash=author.address_hash)
        log = MessageLog(
            pk,
            sk,
            message_id=message_id,
            chat_id=chat_id,
            outcome=Outcome.RELAYED.value,
            state="relaying",
            sender_hash=author.address_hash,
            author_key=author.participant_key,
            size=len(body.text.encode()),
            rendered_size=len(rendered),
            recipients=len(targets),
            received_at=claim.at,
            expires=timedelta(days=LOG_DAYS),
        )
        log.save()
        self._fan_out(chat, message_id, author.participant_key, targets, len(rendered), steps)
        self.relay._finish(log, chat, claim.at)  # done, and counted in the chat's stats, once
        metrics.add_metric(name="AnnouncementsPosted", unit="Count", value=1)
        logger.info("announcement posted", extra={"chat_id": chat_id, "recipients": len(targets)})
        return Posted(timeslot_id, message_id, len(targets), True)

    @staticmethod
    def _claim(message_id: str, chat_id: str, author_key: str) -> Announcement:
        item = Announcement(
            f"MSG#{message_id}",
            "ANN",
            chat_id=chat_id,
            author_key=author_key,
            at=clock.now(),
            expires=timedelta(days=LOG_DAYS),
        )
        try:
            item.save(condition=Announcement.pk.does_not_exist())
            return item
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        return Announcement.get(f"MSG#{message_id}", "ANN", consistent_read=True)

    def _render(
        self,
        chat: Chat,
        message_id: str,
        author: Participant,
        people: list[Participant],
        body: AnnouncementBody,
        at: datetime,
    ) -> bytes:
        def person(p: Participant) -> anonymize.Person:
            return anonymize.Person(
                key=p.participant_key,
                display_name=display_name(p.first_name, p.last_name, organizer=p.role == "organizer"),
                addresses=(p.email,),
            )

        return render_announcement(
            chat=chat_context(chat, self.settings),
            author=person(author),
            people=[person(p) for p in people],
            subject=body.subject or DEFAULT_SUBJECT,
            text=body.text,
            message_id=message_id,
            date=at,
            files=files.links(self.settings, message_id, at),
        )

    def _fan_out(
        self,
        chat: Chat,
        message_id: str,
        author_key: str,
        targets: list[Participant],
        size: int,
        steps: list[dict[str, str]],
    ) -> None:
        self.fanout.relay(
            chat,
            message_id,
            f"outbound/{message_id}.eml",
            author_key,
            [p.participant_key for p in targets],
            size,
            next_steps=steps,
            announcement=True,
        )
