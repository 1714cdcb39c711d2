"""What organizers can do to steward a chat (R15, issue 10), from their inbox or the API.

One service behind both doors: the signed controls in organizer copies
(:mod:`chalicelib.blueprints.controls`: GET confirms, POST acts) and the
integration API (:mod:`chalicelib.blueprints.stewardship_api`). Every action:

- checks who acts: a control's actor must still be an organizer of that chat
  (the token binds deployment, chat, actor, action and target; a removed
  organizer's old links stop working), an API key acts for its integration;
- is idempotent: removing someone removed, approving something approved,
  changes nothing and says so;
- is recorded (:class:`ActionRecord`: who, when, which control or key, on what),
  never with an address, and listed through the API.

Blocks hold across the deployment: a :class:`Block` item per address hash, the
``blocked`` flag on every participant record of that address (found through the
address index), and every record written later for that address is born
blocked (:mod:`chalicelib.services.events`) until the API unblocks it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer
from chalicelib.errors import Conflict, Forbidden, NotFound
from chalicelib.models import (
    ActionRecord,
    Block,
    BlockRef,
    Chat,
    HeldMessage,
    MessageMeta,
    Participant,
    Report,
    ReportTally,
)
from chalicelib.observability import logger, metrics
from chalicelib.relay import stewardmail
from chalicelib.relay.controltokens import ACTIONS, ControlClaims
from chalicelib.relay.outcomes import Outcome
from chalicelib.services.chats import ChatService
from chalicelib.services.fanout import chat_context
from chalicelib.services.links import control_url
from chalicelib.services.moderation import Moderation, name_of
from chalicelib.services.relay import Job, RelayService
from chalicelib.services.roster import canonical, participants, recipients
from chalicelib.settings import Settings, get_settings

ACTION_DAYS = 400
REASON_CHARS = 500
REPORT_REASONS = ("harassment", "spam", "personal information", "off-topic", "other")


@dataclass(frozen=True)
class Result:
    changed: bool
    message: str
    detail: dict[str, Any] | None = None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


class Stewardship:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        mailer: Mailer | None = None,
        store: MailStore | None = None,
        chats: ChatService | None = None,
        relay: Callable[[], RelayService] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.mailer = mailer or Mailer(configuration_set=self.settings.configuration_set)
        self.store = store or MailStore(bucket=self.settings.mail_bucket)
        self._chats = chats
        self._relay_factory = relay

    @cached_property
    def chats(self) -> ChatService:
        return self._chats or ChatService(self.settings)

    @cached_property
    def relay(self) -> RelayService:
        if self._relay_factory is not None:
            return self._relay_factory()
        return RelayService(self.settings, store=self.store, mailer=self.mailer)

    @cached_property
    def moderation(self) -> Moderation:
        return Moderation(self.settings, mailer=self.mailer, store=self.store)

    # -- lookups ---------------------------------------------------------------

    @staticmethod
    def chat(chat_id: str) -> Chat:
        try:
            return Chat.get(f"CH#{chat_id}", "META", consistent_read=True)
        except DoesNotExist:
            raise NotFound("no such chat", "chat") from None

    @staticmethod
    def person(chat_id: str, key: str) -> Participant:
        try:
            return Participant.get(f"CH#{chat_id}", f"P#{key}", consistent_read=True)
        except DoesNotExist:
            raise NotFound("nobody with that id in this chat", "participant") from None

    def organizer(self, chat_id: str, actor: str) -> Participant:
        """The acting organizer, who must still be one (and not removed or blocked)."""
        try:
            p = self.person(chat_id, actor)
        except NotFound:
            raise Forbidden("this link belongs to someone who is no longer an organizer of this chat") from None
        if p.role != "organizer" or p.removed or p.blocked:
            raise Forbidden("this link belongs to someone who is no longer an organizer of this chat")
        return p

    def target(self, chat_id: str, key: str) -> Participant:
        p = self.person(chat_id, key)
        people = canonical(participants(chat_id))
        if p.role == "organizer" or (people.get(p.address_hash) or p).role == "organizer":
            raise Forbidden("organizers cannot be removed or blocked from a message link", "participant")
        return p

    # -- the record ------------------------------------------------------------

    def record(
        self,
        integration: str,
        action: str,
        *,
        actor: str,
        via: str,
        chat: Chat | None = None,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        now = clock.now()
        ActionRecord(
            f"ACT#{integration}",
            f"{now.isoformat()}#{_digest(action, target or '', actor, now.isoformat())}",
            action=action,
            chat_id=chat.chat_id if chat else None,
            event_id=chat.event_id if chat else None,
            timeslot_id=chat.timeslot_id if chat else None,
            target=target,
            actor=actor,
            via=via,
            detail=detail,
            at=now,
            expires=timedelta(days=ACTION_DAYS),
        ).save()
        metrics.add_metric(name=f"Steward_{action}", unit="Count", value=1)
        logger.info("steward action", extra={"action": action, "chat_id": chat.chat_id if chat else None, "via": via})

    @staticmethod
    def actions(integration: str, event_id: str | None = None, limit: int = 200) -> list[ActionRecord]:
        condition = ActionRecord.event_id == event_id if event_id else None
        return list(
            ActionRecord.query(f"ACT#{integration}", filter_condition=condition, scan_index_forward=False, limit=limit)
        )

    # -- remove / restore ------------------------------------------------------

    def _flag(self, p: Participant, name: str, value: bool) -> bool:
        attr = getattr(Participant, name)
        try:
            p.update(
                actions=[attr.set(True) if value else attr.remove()],
                condition=Participant.pk.exists() & ((attr != True) if value else (attr == True)),  # noqa: E712
            )
            return True
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def remove(self, chat: Chat, p: Participant, *, actor: str, via: str) -> Result:
        changed = self._flag(p, "removed", True)
        if changed:
            self.record(chat.integration, "remove", actor=actor, via=via, chat=chat, target=p.participant_key)
        name = name_of(p)
        return Result(changed, f"{name} is removed from this chat." if changed else f"{name} was already removed.")

    def restore(self, chat: Chat, p: Participant, *, actor: str, via: str) -> Result:
        changed = self._flag(p, "removed", False)
        if changed:
            self.record(chat.integration, "restore", actor=actor, via=via, chat=chat, target=p.participant_key)
        return Result(changed, f"{name_of(p)} is back in this chat." if changed else "Nothing to restore.")

    # -- block / unblock -------------------------------------------------------

    def block_id(self, address_hash: str) -> str:
        return hmac.new(self.settings.secret, f"block|{address_hash}".encode(), hashlib.sha256).hexdigest()[:20]

    def _set_blocked(self, address_hash: str, value: bool) -> int:
        changed = 0
        for key in Participant.address_index.query(address_hash):
            changed += self._flag(Participant(key.pk, key.sk), "blocked", value)
        return changed

    def block(
        self,
        address_hash: str,
        *,
        integration: str,
        actor: str,
        via: str,
        chat: Chat | None = None,
        ids: dict[str, str] | None = None,
        name: str = "This person",
    ) -> Result:
        block_id = self.block_id(address_hash)
        now = clock.now()
        new = True
        try:
            Block(f"BLK#{address_hash}", "META", integration=integration, block_id=block_id, actor=actor, via=via, at=now).save(
                condition=Block.pk.does_not_exist()
            )
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            new = False
        ids = ids or {}
        BlockRef(
            f"BLOCKS#{integration}",
            block_id,
            address_hash=address_hash,
            at=now,
            event_id=ids.get("event_id"),
            signup_id=ids.get("signup_id"),
            organizer_id=ids.get("organizer_id"),
        ).save()
        records = self._set_blocked(address_hash, True)
        if new:
            self.record(integration, "block", actor=actor, via=via, chat=chat, target=block_id)
        return Result(
            new,
            f"{name} is blocked from every chat of this deployment." if new else f"{name} was already blocked.",
            {"block_id": block_id, "records": records},
        )

    def unblock(self, integration: str, block_id: str, *, actor: str, via: str) -> Result:
        try:
            ref = BlockRef.get(f"BLOCKS#{integration}", block_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound("no such block", "block_id") from None
        Block(f"BLK#{ref.address_hash}", "META").delete()
        records = self._set_blocked(ref.address_hash, False)
        ref.delete()
        self.record(integration, "unblock", actor=actor, via=via, target=block_id)
        return Result(True, "Unblocked.", {"block_id": block_id, "records": records})

    @staticmethod
    def blocks(integration: str) -> list[BlockRef]:
        return list(BlockRef.query(f"BLOCKS#{integration}"))

    # -- chat state ------------------------------------------------------------

    def _update_chat(self, chat: Chat, change: Callable[[Chat], None]) -> Chat:
        def apply(c: Chat) -> None:
            change(c)

        updated = self.chats.update(chat.chat_id, apply)
        if updated is None:
            raise NotFound("no such chat", "chat")
        return updated

    def close(self, chat: Chat, *, actor: str, via: str) -> Result:
        if chat.closed_reason == "organizer":
            return Result(False, "The chat was already closed.")

        def closing(c: Chat) -> None:
            c.closed_reason = "organizer"

        self._update_chat(chat, closing)
        self.record(chat.integration, "close", actor=actor, via=via, chat=chat)
        return Result(True, "The chat is closed. Messages sent to it are no longer shared.")

    def reopen(self, chat: Chat, *, actor: str, via: str) -> Result:
        if chat.closed_reason != "organizer":
            return Result(False, f"The chat was not closed by an organizer (it is {chat.state}).")

        def reopening(c: Chat) -> None:
            if c.closed_reason == "organizer":
                c.closed_reason = None

        updated = self._update_chat(chat, reopening)
        self.record(chat.integration, "reopen", actor=actor, via=via, chat=chat)
        if updated.state == "open":
            return Result(True, "The chat is open again.")
        return Result(True, f"The organizer's close is lifted; the chat is {updated.state} by its schedule.")

    def set_hold(self, chat: Chat, on: bool, *, actor: str, via: str) -> Result:
        if bool(chat.moderation_hold) == on:
            return Result(False, "New messages were already held." if on else "Messages were not being held.")

        def holding(c: Chat) -> None:
            c.moderation_hold = True if on else None

        self._update_chat(chat, holding)
        self.record(chat.integration, "hold" if on else "release", actor=actor, via=via, chat=chat)
        if on:
            return Result(True, "New messages now wait for an organizer's approval before they are shared.")
        return Result(True, "New messages are shared again without waiting (the event's own moderation still applies).")

    # -- held messages ---------------------------------------------------------

    def held(self, chat: Chat, message_id: str) -> HeldMessage:
        held = self.moderation.get(chat.chat_id, message_id)
        if held is None:
            raise NotFound("no held message with that id in this chat", "message_id")
        return held

    @staticmethod
    def held_messages(chat: Chat, *, pending_only: bool = False) -> list[HeldMessage]:
        items = HeldMessage.query(f"CH#{chat.chat_id}", HeldMessage.sk.startswith("HELD#"))
        return [h for h in items if h.state == "held" or not pending_only]

    def approve(self, chat: Chat, message_id: str, *, actor: str, via: str) -> Result:
        held = self.held(chat, message_id)
        if held.state not in ("held", "approved"):
            raise Conflict(f"this message was already {held.state}", "message_id")
        decided = self.moderation.decide(chat.chat_id, message_id, "approved", actor)
        if decided.held is None or decided.held.state != "approved":
            raise Conflict("this message was decided otherwise in the meantime", "message_id")
        outcome = self.relay.relay_approved(Job(**self.moderation.job(message_id)))
        if decided.changed:
            self.record(chat.integration, "approve", actor=actor, via=via, chat=chat, target=message_id, detail=outcome.value)
        if outcome is Outcome.RELAYED:
            text = "The message is shared with the chat." if decided.changed else "The message was already approved."
            return Result(decided.changed, text, {"outcome": outcome.value})
        if outcome is Outcome.HELD:
            return Result(False, "Another organizer is approving this message right now.", {"outcome": outcome.value})
        return Result(decided.changed, f"Approved, but it could not be shared: {outcome.value}.", {"outcome": outcome.value})

    def reject(self, chat: Chat, message_id: str, *, actor: str, via: str, expired: bool = False) -> Result:
        held = self.held(chat, message_id)
        decided = self.moderation.decide(chat.chat_id, message_id, "expired" if expired else "rejected", actor)
        if not decided.changed:
            state = decided.held.state if decided.held else held.state
            return Result(False, f"This message was already {state}.")
        outcome = Outcome.MODERATION_EXPIRED if expired else Outcome.MODERATION_REJECTED
        self.relay.settle_held(Job(**self.moderation.job(message_id)), outcome)
        author = self._maybe(chat.chat_id, held.author_key)
        self.moderation.tell_author(chat, held, author, expired=expired)
        self.record(chat.integration, "expire" if expired else "reject", actor=actor, via=via, chat=chat, target=message_id)
        return Result(True, "Nobody decided in time: declined." if expired else "The message is declined; its author is told.")

    def expire_due(self, now: datetime | None = None) -> int:
        """Decline every held message past its expiry (the sweeper)."""
        now = now or clock.now()
        done = 0
        for item in list(self.moderation.due(now)):
            chat_id = item.pk.removeprefix("CH#")
            try:
                chat = self.chat(chat_id)
                done += self.reject(chat, item.sk.removeprefix("HELD#"), actor="system", via="system", expired=True).changed
            except (NotFound, Conflict):
                logger.warning("held message could not expire", extra={"chat_id": chat_id})
        return done

    @staticmethod
    def _maybe(chat_id: str, key: str) -> Participant | None:
        try:
            return Participant.get(f"CH#{chat_id}", f"P#{key}", consistent_read=True)
        except DoesNotExist:
            return None

    # -- reports ---------------------------------------------------------------

    def report(self, chat: Chat, message_id: str, reporter_key: str, reason: str | None) -> Result:
        """One person reports one message: recorded once per reporter, the
        organizers told (never who reported), and the author's further posts
        held at the chat's threshold of distinct reporters."""
        try:
            meta = MessageMeta.get(f"MSG#{message_id}", "META")
        except DoesNotExist:
            raise NotFound("this message is no longer known", "message_id") from None
        if meta.chat_id != chat.chat_id:
            raise Forbidden("this link does not belong to that chat")
        reporter = self._maybe(chat.chat_id, reporter_key)
        if reporter is None or reporter.removed or reporter.blocked:
            raise Forbidden("only people in this chat can report its messages")
        if reporter.address_hash == meta.author_hash or reporter_key == meta.author_key:
            return Result(False, "This is your own message.")
        reason = " ".join((reason or "").split())[:REASON_CHARS] or None
        now = clock.now()
        try:
            Report(
                f"CH#{chat.chat_id}",
                f"REP#{message_id}#{reporter_key}",
                message_id=message_id,
                author_key=meta.author_key,
                reporter_key=reporter_key,
                reason=reason,
                at=now,
            ).save(condition=Report.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return Result(False, "You already reported this message. Thank you.")
        tally = ReportTally(f"CH#{chat.chat_id}", f"REPT#{meta.author_key}")
        tally.update(actions=[ReportTally.reporters.add({reporter_key})])
        count = len(tally.reporters or ())
        self.record(chat.integration, "report", actor="attendee", via="control", chat=chat, target=message_id, detail=reason)
        author = self._maybe(chat.chat_id, meta.author_key)
        threshold = int(chat.report_threshold or self.settings.report_threshold)
        held_now = False
        if author is not None and author.role != "organizer" and count >= threshold:
            held_now = self._flag(author, "held", True)
            if held_now:
                self.record(chat.integration, "auto_hold", actor="system", via="system", chat=chat, target=author.participant_key, detail=f"{count} reporters")
        self._notify_report(chat, message_id, reporter_key, author, count, reason, held_now, now)
        return Result(True, "Thank you. The organizers have been told; nobody learns who reported it.", {"reporters": count})

    def _notify_report(
        self,
        chat: Chat,
        message_id: str,
        reporter_key: str,
        author: Participant | None,
        count: int,
        reason: str | None,
        held_now: bool,
        now: datetime,
    ) -> int:
        try:
            quoted = stewardmail.excerpt(self.store.get(f"outbound/{message_id}.eml"))
        except Exception:
            quoted = None
        who = name_of(author) if author else "someone who left"
        intro = [
            f"Someone in the chat reported a message from {who} "
            f"({count} {'person has' if count == 1 else 'different people have'} reported {who} in this chat).",
            f"Their reason: {reason}" if reason else "They gave no reason.",
        ]
        if held_now:
            intro.append(f"From now on, {who}'s messages in this chat wait for an organizer's approval.")
        ctx = chat_context(chat, self.settings)
        sent = 0
        people = participants(chat.chat_id)
        for organizer in (p for p in recipients(people) if p.role == "organizer"):
            links = []
            if author is not None and author.role != "organizer":
                links = [
                    (f"Remove {who} from this chat", control_url(self.settings, action="remove", chat_id=chat.chat_id, actor=organizer.participant_key, target=author.participant_key)),
                    (f"Block {who} from every chat", control_url(self.settings, action="block", chat_id=chat.chat_id, actor=organizer.participant_key, target=author.participant_key)),
                ]
            raw = stewardmail.render_steward_notice(
                to_address=organizer.email,
                to_name=name_of(organizer),
                chat=ctx,
                subject=f"A message from {who} was reported",
                intro=intro,
                quoted=quoted,
                links=links,
                message_id=f"<report-{message_id}.{_digest(reporter_key)}.{organizer.participant_key}@{self.settings.relay_domain}>",
                date=now,
            )
            sent += self.moderation.send_once(f"report-{message_id}-{_digest(reporter_key)}", organizer, raw, ctx.relay_address, chat.chat_id)
        return sent

    @staticmethod
    def reports(chat: Chat) -> list[Report]:
        return list(Report.query(f"CH#{chat.chat_id}", Report.sk.startswith("REP#")))

    # -- the controls ----------------------------------------------------------

    def private(self, chat: Chat, organizer: Participant, author: Participant) -> Result:
        from chalicelib.services import private  # private two-person threads (loads only for this control)

        info = private.open_private_thread(chat.chat_id, organizer.participant_key, author.participant_key, settings=self.settings)
        if info.created:
            self.record(chat.integration, "private", actor=organizer.participant_key, via="control", chat=chat, target=author.participant_key)
        return Result(
            info.created,
            f"Write to {info.relay_address} to reach {name_of(author)} privately: only the two of you receive "
            "what is sent there. You both received an introduction.",
            {"relay_address": info.relay_address},
        )

    def act(self, claims: ControlClaims, *, reason: str | None = None) -> Result:
        """Carry out a control (a POST from its confirmation page)."""
        if claims.action not in ACTIONS:
            raise Forbidden("unknown control")
        chat = self.chat(claims.chat_id)
        if claims.action == "report":
            return self.report(chat, claims.target, claims.actor, reason)
        organizer = self.organizer(chat.chat_id, claims.actor)
        actor = organizer.participant_key
        action = claims.action
        if action in ("remove", "block", "private"):
            target = self.target(chat.chat_id, claims.target)
            if action == "remove":
                return self.remove(chat, target, actor=actor, via="control")
            if action == "private":
                return self.private(chat, organizer, target)
            ids = {"event_id": chat.event_id}
            kind, _, own = target.participant_key.partition("-")
            ids["signup_id" if kind == "s" else "organizer_id"] = own
            return self.block(target.address_hash, integration=chat.integration, actor=actor, via="control", chat=chat, ids=ids, name=name_of(target))
        if action == "close":
            return self.close(chat, actor=actor, via="control")
        if action == "reopen":
            return self.reopen(chat, actor=actor, via="control")
        if action in ("hold", "release"):
            return self.set_hold(chat, action == "hold", actor=actor, via="control")
        if action == "approve":
            return self.approve(chat, claims.target, actor=actor, via="control")
        return self.reject(chat, claims.target, actor=actor, via="control")

    def describe(self, claims: ControlClaims) -> tuple[str, str]:
        """What a control would do, for its confirmation page: (title, question).
        Reads only; a GET must never change anything."""
        chat = self.chat(claims.chat_id)
        where = chat.title
        action = claims.action
        if action != "report":
            self.organizer(chat.chat_id, claims.actor)
        elif self._maybe(chat.chat_id, claims.actor) is None:
            raise Forbidden("only people in this chat can report its messages")
        if action in ("remove", "block", "private"):
            who = name_of(self.person(chat.chat_id, claims.target))
            return {
                "remove": (f"Remove {who}?", f"{who} will no longer receive or post messages in \u201c{where}\u201d."),
                "block": (
                    f"Block {who}?",
                    f"{who} will be removed from every chat of this organization, and their mail refused, "
                    "until an organizer unblocks them through the integration API.",
                ),
                "private": (f"Reply privately to {who}?", f"Open a private conversation between you and {who}: "
                            "a separate address that only the two of you receive."),
            }[action]
        if action in ("approve", "reject"):
            held = self.held(chat, claims.target)
            verb = "Approve" if action == "approve" else "Decline"
            return f"{verb} this message?", f"Status: {held.state}. Excerpt: \u201c{held.excerpt or ''}\u201d"
        if action == "report":
            return "Report this message?", (
                f"The organizers of \u201c{where}\u201d will be told that someone reported it. "
                "Nobody learns who you are."
            )
        return {
            "close": ("Close this chat?", f"Messages sent to \u201c{where}\u201d will no longer be shared."),
            "reopen": ("Reopen this chat?", f"\u201c{where}\u201d will share messages again (within its window)."),
            "hold": ("Hold new messages?", f"New messages in \u201c{where}\u201d will wait for an organizer's approval."),
            "release": ("Stop holding messages?", f"New messages in \u201c{where}\u201d will be shared without waiting."),
        }[action]
