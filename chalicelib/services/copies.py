"""What each reader of a delivery batch gets (R5, R10, R11, R15).

``fanout`` decides who gets a copy and makes sure each gets it once; this module
makes the copy. A :class:`BatchCopies` is built once per batch from what the SQS
body carries and one read of the chat's participants, then gives each mail
reader their bytes:

- a relayed message: the stored render (read once per warm container) with this
  reader's footer link, List-Unsubscribe headers, threading headers (R10: the ids
  under which *they* hold the nearest ancestors), organizer controls or the
  report link (R15) and, for an announcement, their signed next-step links;
- a kickoff (with the member list, next steps and Bring a Friend link), a
  private thread's intro, or a debrief: Muster's own list mail, composed per
  reader by the pure core (``relay.compose``).

Reads only: the render from S3 and, for replies, the ancestors' copies and
metadata in bulk (BatchGetItem). Nothing here sends or writes.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from chalicelib.adapters.blobs import MailStore
from chalicelib.models import Chat, Delivery, MessageMeta, Participant
from chalicelib.relay import anonymize, compose
from chalicelib.relay.names import display_name
from chalicelib.relay.threadheaders import header_block, reader_headers, ses_id_domain
from chalicelib.services import nextsteps
from chalicelib.services.links import CONTROL_DAYS, copy_controls, mute_url
from chalicelib.services.referrals import invite_link
from chalicelib.services.roster import canonical, relay_address
from chalicelib.settings import Settings

# How many of a reply's nearest ancestors each reader's ids are looked up for;
# older ones are cited by their Muster id only.
LOOKUP_ANCESTORS = 5
# What a copy of Muster's own mail (kickoff, intro, debrief) is budgeted at in flight.
OWN_MAIL_SIZE = 64 * 1024


def chat_label(chat: Chat) -> str:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(chat.timezone)
    start = chat.starts_at.astimezone(tz)
    end = chat.ends_at.astimezone(tz)
    return f"{chat.title}, {start:%a %d %b %Y %H:%M}\u2013{end:%H:%M} ({chat.timezone})"


def chat_context(chat: Chat, settings: Settings) -> anonymize.ChatContext:
    from zoneinfo import ZoneInfo

    start = chat.starts_at.astimezone(ZoneInfo(chat.timezone))
    return anonymize.ChatContext(
        chat_id=chat.chat_id,
        relay_address=relay_address(chat, settings),
        list_name=f"{chat.title} \u2013 {start:%a %d %b %H:%M}",
        subject_prefix=f"[{chat.title[:40]} {start:%a %H:%M}]",
        remote_content=settings.remote_content,
    )


@lru_cache(maxsize=2)
def rendered(bucket: str, key: str) -> bytes:
    # One message's batches usually land on the same warm container.
    return MailStore(bucket=bucket).get(key)


def held_ids(settings: Settings, ancestors: list[str], readers: list[Participant]) -> dict[str, dict[str, str]]:
    """For each reader, the Message-IDs under which they hold the nearest
    ancestors (R10): their copy's SES id, or their own client's id for what
    they wrote. Bulk reads only: BatchGetItem, 100 keys a call."""
    lookup = ancestors[-LOOKUP_ANCESTORS:]
    if not lookup or not readers:
        return {}
    domain = ses_id_domain(settings.region)
    held: dict[str, dict[str, str]] = {}
    keys = [(f"MSG#{a}", f"TO#{p.participant_key}") for a in lookup for p in readers]
    for copy in Delivery.batch_get(keys):
        if copy.ses_message_id:
            held.setdefault(copy.participant_key, {})[copy.pk.removeprefix("MSG#")] = (
                f"<{copy.ses_message_id}@{domain}>"
            )
    hashes = {p.participant_key: p.address_hash for p in readers}
    for meta in MessageMeta.batch_get([(f"MSG#{a}", "META") for a in lookup]):
        # The author's own client id goes back to the author only: the same
        # record *and* the same address (a signup id reused for someone else
        # must not receive it).
        if meta.client_message_id and hashes.get(meta.author_key) == meta.author_hash:
            held.setdefault(meta.author_key, {})[meta.pk.removeprefix("MSG#")] = meta.client_message_id
    return held


class BatchCopies:
    """One batch's copies: everything shared is worked out once, per reader only
    what differs (links, headers, controls, names)."""

    def __init__(
        self,
        settings: Settings,
        bucket: str,
        body: dict[str, Any],
        chat: Chat,
        people: list[Participant],
        everyone: list[Participant],
        readers: list[Participant],
        now: datetime,
    ) -> None:
        self.settings = settings
        self.body = body
        self.chat = chat
        self.people = people
        self.now = now
        self.message_id: str = body["message_id"]
        self.kind: str = body["kind"]
        self.context = anonymize.ChatContext(**body["context"]) if body.get("context") else chat_context(chat, settings)
        author = next((p for p in people if p.participant_key == body.get("author")), None)
        self.author = author
        self.author_person = canonical(people).get(author.address_hash) if author is not None else None
        self.author_name = (
            display_name(author.first_name, author.last_name, organizer=self.author_person.role == "organizer")
            if author is not None and self.author_person is not None
            else None
        )
        self.members = (
            [display_name(p.first_name, p.last_name, organizer=p.role == "organizer") for p in everyone]
            if self.kind == "kickoff"
            else []
        )
        self.template = anonymize.CopyTemplate.of(rendered(bucket, body["object"])) if self.kind == "relay" else None
        self.steps: list[dict[str, str]] = list(body.get("next_steps") or [])
        self.controls_expire = int(now.timestamp()) + CONTROL_DAYS * 86400  # once per batch, not per copy
        self.ancestors: list[str] = list(body.get("ancestors") or [])
        self.held = held_ids(settings, self.ancestors, readers) if self.template is not None else {}

    @property
    def size(self) -> int:
        """Bytes of one copy, for the in-flight budget."""
        return sum(map(len, self.template.pieces)) if self.template is not None else OWN_MAIL_SIZE

    def copy_for(self, p: Participant) -> bytes:
        link = mute_url(self.settings, self.chat.chat_id, p.participant_key)
        headers = anonymize.list_unsubscribe_headers(link)
        if self.template is not None:
            controls = self._controls(p)
            return self.template.render(
                mute_url=link,
                list_unsubscribe_headers=headers,
                thread_headers=self._thread(p),
                controls_text=controls[0],
                controls_html=controls[1],
            )
        if self.kind == "intro":
            mail = self._intro(p)
        elif self.kind == "debrief":
            mail = compose.render_debrief(
                chat=self.context,
                shift_label=chat_label(self.chat),
                prompt=str(self.body["debrief"]),
                message_id=self._own_id(p),
                date=self.now,
                next_steps=self._steps(p),
                steps_note=nextsteps.footer_note(self.settings),
            )
        else:
            mail = self._kickoff(p)
        return anonymize.personalize(mail, mute_url=link, list_unsubscribe_headers=headers)

    # -- per reader ------------------------------------------------------------------

    def _own_id(self, p: Participant) -> str:
        return f"<{self.message_id}.{p.participant_key}@{self.settings.relay_domain}>"

    def _steps(self, p: Participant) -> list[tuple[str, str]]:
        return nextsteps.step_lines(self.settings, self.chat.chat_id, self.steps, p.participant_key)

    def _controls(self, p: Participant) -> tuple[str, str]:
        assert self.template is not None
        controls = ("", "")
        if self.template.has_controls:
            author, person = self.author, self.author_person
            controls = copy_controls(
                self.settings,
                chat_id=self.chat.chat_id,
                reader_key=p.participant_key,
                reader_is_organizer=p.role == "organizer",
                message_id=self.message_id,
                author_key=author.participant_key if author is not None else None,
                author_name=self.author_name,
                author_is_organizer=person is not None and person.role == "organizer",
                chat_held=bool(self.body.get("hold")),
                expires_at=self.controls_expire,
                private=bool(self.body.get("private")),
            )
        if self.steps:  # an announcement's next steps: this reader's signed links, above the controls
            controls = nextsteps.with_next_steps(controls, self._steps(p), nextsteps.footer_note(self.settings))
        return controls

    def _thread(self, p: Participant) -> bytes:
        """This reader's In-Reply-To and References (relayed messages only)."""
        return header_block(
            *reader_headers(
                own=self.message_id,
                ancestors=self.ancestors,
                reader_ids=self.held.get(p.participant_key, {}),
                relay_domain=self.settings.relay_domain,
            )
        )

    def _kickoff(self, p: Participant) -> bytes:
        chat = self.chat
        return compose.render_kickoff(
            chat=self.context,
            recipient_name=display_name(p.first_name, p.last_name, organizer=p.role == "organizer"),
            shift_label=chat_label(chat),
            organizer=p.role == "organizer",
            message_id=self._own_id(p),
            date=self.now,
            members=self.members,
            next_steps=self._steps(p),
            steps_note=nextsteps.footer_note(self.settings),
            invite_url=invite_link(
                self.settings, chat.invite_url, chat.integration or "", chat.event_id or "", p.participant_key
            )
            if chat.integration and chat.event_id
            else None,
        )

    def _intro(self, p: Participant) -> bytes:
        """A private thread's intro to one of its two members (display names only)."""
        by_key = {q.participant_key: q for q in self.people}
        pair = self.body["pair"]
        names = {
            side: display_name(q.first_name, q.last_name, organizer=q.role == "organizer") if q else "Someone"
            for side in ("organizer", "participant")
            for q in [by_key.get(pair[side])]
        }
        return compose.render_private_intro(
            chat=self.context,
            organizer_name=names["organizer"],
            participant_name=names["participant"],
            to_organizer=p.participant_key == pair["organizer"],
            shift_label=chat_label(self.chat),
            message_id=self._own_id(p),
            date=self.now,
            ride_place=pair.get("place") if pair.get("about") == "ride" else None,
        )
