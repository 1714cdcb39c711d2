"""Held messages, decided (R15): approve (shared once, however many organizers
click), decline (the author told once), expire (the sweeper, with a recorded
reason). The holding itself is :mod:`chalicelib.services.moderation`'s; relaying
an approved message is :meth:`RelayService.relay_approved`'s."""

from __future__ import annotations

from datetime import datetime

from chalicelib import clock
from chalicelib.errors import Conflict, NotFound
from chalicelib.models import (
    Chat,
    HeldMessage,
)
from chalicelib.observability import logger
from chalicelib.relay.outcomes import Outcome
from chalicelib.services.relay import Job
from chalicelib.services.steward_base import Result, StewardBase


class Approvals(StewardBase):
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
            self.record(
                chat.integration, "approve", actor=actor, via=via, chat=chat, target=message_id, detail=outcome.value
            )
        if outcome is Outcome.RELAYED:
            text = "The message is shared with the chat." if decided.changed else "The message was already approved."
            return Result(decided.changed, text, {"outcome": outcome.value})
        if outcome is Outcome.HELD:
            return Result(False, "Another organizer is approving this message right now.", {"outcome": outcome.value})
        return Result(
            decided.changed, f"Approved, but it could not be shared: {outcome.value}.", {"outcome": outcome.value}
        )

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
        self.record(
            chat.integration, "expire" if expired else "reject", actor=actor, via=via, chat=chat, target=message_id
        )
        return Result(
            True, "Nobody decided in time: declined." if expired else "The message is declined; its author is told."
        )

    def expire_due(self, now: datetime | None = None) -> int:
        """Decline every held message past its expiry (the sweeper)."""
        now = now or clock.now()
        done = 0
        for item in list(self.moderation.due(now)):
            chat_id = item.pk.removeprefix("CH#")
            try:
                chat = self.chat(chat_id)
                done += self.reject(
                    chat, item.sk.removeprefix("HELD#"), actor="system", via="system", expired=True
                ).changed
            except (NotFound, Conflict):
                logger.warning("held message could not expire", extra={"chat_id": chat_id})
        return done
