"""Held messages (R15, issue 10): Mailman's moderation, without its backscatter.

A message is held when its chat holds everything (an organizer's control or
the API), when the event moderates every post or each person's first one, or
when its author was reported by enough distinct people. A held message is
rendered (anonymized) like any other but not fanned out:

- the SES job that carried it goes to S3 (``held/<message id>.json``, next to the
  raw mail and under the same lifecycle), the :class:`HeldMessage` item to the
  chat's partition, on the sparse ``due`` index (bucket ``held``) until its
  expiry;
- every organizer of the chat gets one notice with an anonymized excerpt and
  signed approve / reject links (each notice claimed once per organizer, so a
  retried relay sends none twice).

Deciding is one conditional write (``held`` -> ``approved``/``rejected``/
``expired``): of two clicks, or a click and the expiry sweep, exactly one wins.
Approval relays through :meth:`RelayService.relay_approved` (the log entry moves
from ``held`` on one conditional write: exactly one fan-out). Rejection and
expiry tell the author once; expiry records ``moderation_expired`` (R9: nothing
is lost silently).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer, SendFailed
from chalicelib.models import Chat, Delivery, HeldMessage, Participant
from chalicelib.observability import logger, metrics
from chalicelib.relay import stewardmail
from chalicelib.relay.addresses import transport_address
from chalicelib.relay.names import display_name
from chalicelib.services.copies import chat_context
from chalicelib.services.links import control_url
from chalicelib.services.roster import email_reachable, recipients
from chalicelib.settings import Settings, get_settings

HELD_BUCKET = "held"
RECORD_DAYS = 90
REASONS = {
    "hold": "An organizer is holding this chat's messages for approval.",
    "all": "Every message in this chat waits for an organizer's approval.",
    "first_post": "This is the author's first message in the chat, so it waits for an organizer's approval.",
    "reported": "Other people reported this author's messages, so their messages now wait for approval.",
}


def hold_reason(chat: Chat, author: Participant) -> str | None:
    """Why ``author``'s next message in ``chat`` waits for approval (None: it doesn't)."""
    if author.role == "organizer":
        return None  # organizers moderate; they are never held
    if chat.moderation_hold:
        return "hold"
    if author.held:
        return "reported"
    if chat.moderation == "all":
        return "all"
    if chat.moderation == "first_post" and not author.trusted:
        return "first_post"
    return None


def name_of(p: Participant) -> str:
    return display_name(p.first_name, p.last_name, organizer=p.role == "organizer")


@dataclass(frozen=True)
class Decided:
    held: HeldMessage | None
    changed: bool  # this call made the decision


class Moderation:
    def __init__(
        self, settings: Settings | None = None, *, mailer: Mailer | None = None, store: MailStore | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.mailer = mailer or Mailer(configuration_set=self.settings.configuration_set)
        self.store = store or MailStore(bucket=self.settings.mail_bucket)

    # -- holding ---------------------------------------------------------------

    def hold(
        self,
        *,
        job: dict[str, Any],
        message_id: str,
        chat: Chat,
        author: Participant,
        people: list[Participant],
        rendered: bytes,
        reason: str,
        now: datetime,
    ) -> None:
        """Keep the message for a decision and tell the organizers (once each)."""
        self.store.put(f"held/{message_id}.json", json.dumps(job).encode(), content_type="application/json")
        expires_at = now + timedelta(hours=self.settings.hold_hours)
        item = HeldMessage(
            f"CH#{chat.chat_id}",
            f"HELD#{message_id}",
            message_id=message_id,
            chat_id=chat.chat_id,
            author_key=author.participant_key,
            reason=reason,
            state="held",
            excerpt=stewardmail.excerpt(rendered),
            held_at=now,
            expires_at=expires_at,
            due_bucket=HELD_BUCKET,
            due_at=expires_at,
            expires=timedelta(days=RECORD_DAYS),
        )
        try:
            item.save(condition=HeldMessage.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            item = HeldMessage.get(item.pk, item.sk, consistent_read=True)  # a retry: notify the missing ones
        metrics.add_metric(name="MessagesHeld", unit="Count", value=1)
        self.notify_organizers(chat, item, author, people, now)

    def notify_organizers(
        self, chat: Chat, held: HeldMessage, author: Participant, people: list[Participant], now: datetime
    ) -> int:
        ctx = chat_context(chat, self.settings)
        sent = 0
        expiry = int(held.expires_at.timestamp())
        for organizer in (p for p in recipients(people) if p.role == "organizer" and email_reachable(p)):
            links = [
                (
                    label,
                    control_url(
                        self.settings,
                        action=action,
                        chat_id=chat.chat_id,
                        actor=organizer.participant_key,
                        target=target,
                        expires_at=expiry if action in ("approve", "reject") else None,
                    ),
                )
                for label, action, target in (
                    ("Approve and share it", "approve", held.message_id),
                    ("Decline it", "reject", held.message_id),
                    (f"Remove {name_of(author)} from this chat", "remove", author.participant_key),
                    (f"Block {name_of(author)} from every chat", "block", author.participant_key),
                )
            ]
            raw = stewardmail.render_steward_notice(
                to_address=organizer.email,
                to_name=name_of(organizer),
                chat=ctx,
                subject=f"Waiting for your approval: a message from {name_of(author)}",
                intro=[
                    f"{name_of(author)} wrote to the chat. The message has not been shared yet.",
                    REASONS.get(held.reason, REASONS["hold"]),
                    f"If nobody decides by {stewardmail.format_when(held.expires_at)}, it is declined.",
                ],
                quoted=held.excerpt,
                links=links,
                message_id=f"<held-{held.message_id}.{organizer.participant_key}@{self.settings.relay_domain}>",
                date=now,
            )
            sent += self.send_once(f"held-{held.message_id}", organizer, raw, ctx.relay_address, chat.chat_id)
        return sent

    # -- deciding --------------------------------------------------------------

    def get(self, chat_id: str, message_id: str) -> HeldMessage | None:
        try:
            return HeldMessage.get(f"CH#{chat_id}", f"HELD#{message_id}", consistent_read=True)
        except DoesNotExist:
            return None

    def decide(self, chat_id: str, message_id: str, state: str, actor: str) -> Decided:
        """Move a held message to ``state`` (approved/rejected/expired) if nobody did yet."""
        held = HeldMessage(f"CH#{chat_id}", f"HELD#{message_id}")
        try:
            held.update(
                actions=[
                    HeldMessage.state.set(state),
                    HeldMessage.decided_at.set(clock.now()),
                    HeldMessage.decided_by.set(actor),
                    HeldMessage.due_bucket.remove(),
                    HeldMessage.due_at.remove(),
                ],
                condition=HeldMessage.state == "held",
            )
            return Decided(held, True)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        return Decided(self.get(chat_id, message_id), False)

    def job(self, message_id: str) -> dict[str, Any]:
        return dict(json.loads(self.store.get(f"held/{message_id}.json")))

    def tell_author(self, chat: Chat, held: HeldMessage, author: Participant | None, *, expired: bool) -> bool:
        """Tell the author, once, that their held message was not shared. They
        passed R6's authentication when it was held, and the notice quotes nothing."""
        if author is None or author.suppressed or not author.email:  # by text: no mail to send (issue 12)
            return False
        ctx = chat_context(chat, self.settings)
        why = (
            f"Nobody approved it within {self.settings.hold_hours} hours."
            if expired
            else "An organizer of the chat declined it."
        )
        raw = stewardmail.render_steward_notice(
            to_address=author.email,
            to_name=name_of(author),
            chat=ctx,
            subject="Your message was not shared",
            intro=[
                f"Your message of {stewardmail.format_when(held.held_at)} to this chat was not shared. {why}",
                "Nobody else in the chat received it.",
            ],
            quoted=None,
            links=[],
            message_id=f"<declined-{held.message_id}@{self.settings.relay_domain}>",
            date=clock.now(),
        )
        return bool(self.send_once(f"declined-{held.message_id}", author, raw, ctx.relay_address, chat.chat_id))

    def due(self, now: datetime, limit: int = 200) -> Iterator[HeldMessage]:
        """Held messages past their expiry (the sweeper declines them)."""
        yield from HeldMessage.due_index.query(HELD_BUCKET, HeldMessage.due_at <= now, limit=limit)

    # -- sending once ----------------------------------------------------------

    def send_once(self, claim: str, person: Participant, raw: bytes, sender: str, chat_id: str) -> int:
        """Send ``raw`` to ``person`` unless this claim was taken (R8): 1 if sent."""
        to = transport_address(person.email)
        if to is None:
            return 0
        record = Delivery(
            f"MSG#{claim}",
            f"TO#{person.participant_key}",
            chat_id=chat_id,
            participant_key=person.participant_key,
            status="sending",
            at=clock.now(),
            expires=timedelta(days=RECORD_DAYS),
        )
        try:
            record.save(condition=Delivery.pk.does_not_exist() | (Delivery.status == "retry"))
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return 0
            raise
        try:
            ses_id = self.mailer.send_raw(sender=sender, recipient=to, raw=raw)
        except SendFailed as exc:
            logger.warning("steward notice not sent", extra={"code": exc.code, "participant": person.participant_key})
            if exc.kind != "permanent":
                record.update(actions=[Delivery.status.set("retry")])  # a retry may claim it again
                raise
            record.update(actions=[Delivery.status.set("failed"), Delivery.reason.set(exc.code)])
            return 0
        record.update(actions=[Delivery.status.set("sent"), Delivery.ses_message_id.set(ses_id)])
        return 1
