"""The ground every steward action stands on (R15): the service's collaborators,
the lookups that check who acts on what, the action record, and participant
flags set with one conditional write. :mod:`chalicelib.services.stewardship`,
:mod:`chalicelib.services.approvals` and :mod:`chalicelib.services.reports`
build on it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer
from chalicelib.errors import Forbidden, NotFound
from chalicelib.models import (
    ActionRecord,
    Chat,
    Participant,
)
from chalicelib.observability import logger, metrics
from chalicelib.services import signals
from chalicelib.services.chats import ChatService
from chalicelib.services.moderation import Moderation
from chalicelib.services.relay import RelayService
from chalicelib.services.roster import canonical, participants
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


class StewardBase:
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
        record_key = f"{now.isoformat()}#{_digest(action, target or '', actor, now.isoformat())}"
        signals.steward(
            action, integration=integration, chat=chat, target=target, via=via, record_key=record_key, at=now
        )
        ActionRecord(
            f"ACT#{integration}",
            record_key,
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

    @staticmethod
    def _maybe(chat_id: str, key: str) -> Participant | None:
        try:
            return Participant.get(f"CH#{chat_id}", f"P#{key}", consistent_read=True)
        except DoesNotExist:
            return None
