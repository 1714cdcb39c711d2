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

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.errors import Forbidden, NotFound
from chalicelib.models import (
    Block,
    BlockRef,
    Chat,
    Participant,
)
from chalicelib.relay.controltokens import ACTIONS, ControlClaims
from chalicelib.services.approvals import Approvals
from chalicelib.services.moderation import name_of
from chalicelib.services.reports import Reports
from chalicelib.services.steward_base import REPORT_REASONS, Result

__all__ = ["REPORT_REASONS", "Result", "Stewardship"]


class Stewardship(Approvals, Reports):
    """Every steward action, for the controls and the API."""

    # -- remove / restore ------------------------------------------------------

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
            Block(
                f"BLK#{address_hash}", "META", integration=integration, block_id=block_id, actor=actor, via=via, at=now
            ).save(condition=Block.pk.does_not_exist())
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

    # -- the controls ----------------------------------------------------------

    def private(self, chat: Chat, organizer: Participant, author: Participant) -> Result:
        from chalicelib.services import private  # private two-person threads (loads only for this control)

        info = private.open_private_thread(
            chat.chat_id, organizer.participant_key, author.participant_key, settings=self.settings
        )
        if info.created:
            self.record(
                chat.integration,
                "private",
                actor=organizer.participant_key,
                via="control",
                chat=chat,
                target=author.participant_key,
            )
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
            return self.block(
                target.address_hash,
                integration=chat.integration,
                actor=actor,
                via="control",
                chat=chat,
                ids=ids,
                name=name_of(target),
            )
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
                "private": (
                    f"Reply privately to {who}?",
                    f"Open a private conversation between you and {who}: "
                    "a separate address that only the two of you receive.",
                ),
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
            "hold": (
                "Hold new messages?",
                f"New messages in \u201c{where}\u201d will wait for an organizer's approval.",
            ),
            "release": (
                "Stop holding messages?",
                f"New messages in \u201c{where}\u201d will be shared without waiting.",
            ),
        }[action]
