"""Chat windows, schedules and state (R1, R2, R8).

Every path that can change a chat's window -- an event upsert, a toggle, a
cancellation, a Scheduler firing, the sweeper -- ends in :func:`reconcile`, which
computes the state the chat *should* be in now, stores it, keeps the two one-time
schedules in step, and opens the chat (once) when its time has come.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.adapters.scheduler import ChatScheduler
from chalicelib.models import Chat, Event, TimeslotMap
from chalicelib.observability import logger, metrics
from chalicelib.services import debrief, kpis, signals
from chalicelib.services.fanout import FanOut
from chalicelib.services.roster import participants, recipients
from chalicelib.settings import Settings, get_settings

State = Literal["scheduled", "open", "closed", "disabled"]
DUE = "due"
# Scheduler fires at or after its time; the sweeper may run a little early.
# A chat whose opening is this close counts as due.
GRACE = timedelta(minutes=2)


def chat_id_for(integration: str, event_id: str, timeslot_id: str, secret: bytes) -> str:
    """A stable, unguessable id: it is also the relay address's local part."""
    mac = hmac.new(secret, f"{integration}\x1f{event_id}\x1f{timeslot_id}".encode(), hashlib.sha256)
    return base64.b32encode(mac.digest()[:10]).decode().lower()


def relay_local(title: str, chat_id: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:24].strip("-")
    return f"{slug}-{chat_id}" if slug else chat_id


@dataclass(frozen=True)
class Window:
    enabled: bool
    opens_at: datetime
    closes_at: datetime | None


def window_for(event: Event, slot: TimeslotMap, settings: Settings) -> Window:
    enabled = settings.chat_enabled
    if event.chat_enabled is not None:
        enabled = event.chat_enabled
    if slot.chat_enabled is not None:
        enabled = slot.chat_enabled
    before = event.open_before_hours
    before = settings.open_before_hours if before is None else float(before)
    after = event.close_after_hours if event.close_after_set else settings.close_after_hours
    closes = None if after is None else slot.ends_at + timedelta(hours=float(after))
    return Window(enabled and not event.cancelled, slot.starts_at - timedelta(hours=before), closes)


def desired_state(chat: Chat, enabled: bool, now: datetime) -> State:
    if chat.closed_reason in {"organizer", "cancelled", "removed"}:
        return "closed"
    if not enabled:
        return "disabled"
    if chat.closes_at is not None and now >= chat.closes_at:
        return "closed"
    if now + GRACE >= chat.opens_at:
        return "open"
    return "scheduled"


def schedule_name(kind: str, chat_id: str, settings: Settings) -> str:
    return f"{settings.prefix}-{kind}-{chat_id}"[:64]


class ChatService:
    """Keeps chats, their schedules and their kickoff in step."""

    def __init__(
        self, settings: Settings | None = None, scheduler: ChatScheduler | None = None, kickoff: FanOut | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.scheduler = scheduler or ChatScheduler(
            group=self.settings.schedule_group, role_arn=self.settings.scheduler_role_arn
        )
        self._kickoff = kickoff

    @property
    def kickoff(self) -> FanOut:
        if self._kickoff is None:
            self._kickoff = FanOut(self.settings)
        return self._kickoff

    # -- schedules --------------------------------------------------------------

    def _sync_schedules(self, chat: Chat, state: State) -> None:
        s = self.settings
        # One live schedule per chat: the opening while scheduled, the closing
        # while open. The sweeper catches either if it never fires.
        want_open = chat.opens_at if state == "scheduled" else None
        want_close = chat.closes_at if state == "open" else None
        # Issue 11: the debrief has a schedule of its own while it is ahead.
        want_debrief = chat.debrief_at if debrief.live(chat, state) else None
        for kind, want, have, arn in (
            ("open", want_open, chat.scheduled_open_at, s.open_chat_arn),
            ("close", want_close, chat.scheduled_close_at, s.close_chat_arn),
            ("debrief", want_debrief, chat.scheduled_debrief_at, s.open_chat_arn),
        ):
            if want == have:
                continue  # idempotent PUTs cost no Scheduler calls
            name = schedule_name(kind, chat.chat_id, s)
            if want is None:
                self.scheduler.delete(name)
            else:
                self.scheduler.put(name, want, arn, {"chat_id": chat.chat_id, "action": kind})
            setattr(chat, f"scheduled_{kind}_at", want)

    # -- state ------------------------------------------------------------------

    def update(
        self,
        chat_id: str,
        change: Callable[[Chat], bool | None],
        now: datetime | None = None,
        *,
        create: Callable[[], Chat] | None = None,
    ) -> Chat | None:
        """Load a chat, apply ``change`` (which returns the chat's ``enabled``),
        reconcile and save it under optimistic locking; retry on a lost race.

        The chat's version guards the transition to *open*, so exactly one writer
        sends the kickoff however many schedules, sweeps and upserts race (R8).
        """
        now = now or clock.now()
        for _ in range(5):
            try:
                chat = Chat.get(f"CH#{chat_id}", "META", consistent_read=True)
            except DoesNotExist:
                if create is None:
                    return None
                chat = create()
            enabled = change(chat)
            if enabled is None:
                enabled = self.enabled_for(chat)
            previous = chat.state if chat.version else "new"
            if chat.kickoff_pending and previous != "open":
                chat.kickoff_pending = None  # closed again before the kickoff went out
            state = self._reconcile(chat, enabled, now)
            if state == "open" and previous != "open":
                # Saved with the transition: until the kickoff is queued, the chat
                # stays due, so a crash or a queue failure here is retried by the
                # sweeper instead of losing the kickoff (R8, R9).
                chat.kickoff_pending = True
                chat.due_bucket, chat.due_at = DUE, now
            try:
                chat.save()
            except PutError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    continue
                raise
            if state != previous:
                signals.chat_changed(chat, previous)
            if state == "open" and chat.kickoff_pending:
                self._after_open(chat, first=previous != "open")
            if chat.debrief_pending:
                self._after_debrief(chat)
            return chat
        raise RuntimeError(f"chat {chat_id} kept changing under us")

    def _reconcile(self, chat: Chat, enabled: bool, now: datetime) -> State:
        state = desired_state(chat, enabled, now)
        if state == "closed" and chat.closed_reason is None:
            chat.closed_reason = "window"
        if state != "closed" and chat.closed_reason == "window":
            chat.closed_reason = None  # moved later: the window reopens
        debrief.claim(chat, state, now)  # issue 11: decided once, in this versioned save
        self._sync_schedules(chat, state)
        if state == "open" and chat.kickoff_pending:
            chat.due_bucket, chat.due_at = DUE, now
        elif state == "scheduled":
            chat.due_bucket, chat.due_at = DUE, chat.opens_at
        elif state == "open" and chat.closes_at is not None:
            chat.due_bucket, chat.due_at = DUE, chat.closes_at
        else:
            chat.due_bucket = chat.due_at = None
        if chat.debrief_pending:
            chat.due_bucket, chat.due_at = DUE, now
        elif debrief.live(chat, state) and chat.debrief_at is not None:
            chat.due_bucket, chat.due_at = DUE, min(chat.due_at or chat.debrief_at, chat.debrief_at)
        if state == "closed" and chat.state != "closed":
            chat.closed_at = now
        if state == "open" and chat.state != "open":
            chat.opened_at = now
        chat.state = state
        return state

    def _after_open(self, chat: Chat, *, first: bool) -> None:
        """Queue the kickoff, then clear the chat's pending mark. Queuing again
        after a failure is safe: each person's kickoff is claimed once (R8)."""
        if first:
            metrics.add_metric(name="ChatsOpened", unit="Count", value=1)
            logger.info("chat opened", extra={"chat_id": chat.chat_id})
        people = [p.participant_key for p in recipients(participants(chat.chat_id))]
        self.kickoff.kickoff(chat, people, batch="open")
        # Issue 11: counted and announced on every try (both are idempotent).
        signals.chat_opened(chat, kpis.opened(chat, chat.opened_at or clock.now()), len(people))

        def queued(c: Chat) -> None:
            c.kickoff_pending = None

        self.update(chat.chat_id, queued)

    def _after_debrief(self, chat: Chat) -> None:
        """Queue the claimed debrief, then clear its pending mark (as the kickoff)."""
        debrief.queue(chat, self.kickoff)

        def queued(c: Chat) -> None:
            c.debrief_pending = None

        self.update(chat.chat_id, queued)

    def enabled_for(self, chat: Chat) -> bool:
        try:
            event = Event.get(f"EV#{chat.integration}#{chat.event_id}", "META")
        except DoesNotExist:
            return False
        slot = next((t for t in event.timeslots if t.id == chat.timeslot_id), None)
        if slot is None:
            return False
        return window_for(event, slot, self.settings).enabled

    def fire(self, chat_id: str, action: str, now: datetime | None = None) -> State | None:
        """A Scheduler (or the sweeper) says it is time: re-derive and act."""

        def fired(chat: Chat) -> None:
            # The schedule deleted itself after firing (ActionAfterCompletion=DELETE).
            if action == "open":
                chat.scheduled_open_at = None
            elif action == "close":
                chat.scheduled_close_at = None
            elif action == "debrief":
                chat.scheduled_debrief_at = None

        chat = self.update(chat_id, fired, now)
        if chat is None:
            logger.warning("schedule fired for unknown chat", extra={"chat_id": chat_id, "action": action})
            return None
        return chat.state  # type: ignore[return-value]

    def sweep(self, now: datetime | None = None, limit: int = 200) -> int:
        """Open or close every chat whose time passed without its schedule firing."""
        now = now or clock.now()
        done = 0
        for item in Chat.due_index.query(DUE, Chat.due_at <= now + GRACE, limit=limit):
            self.fire(item.pk.removeprefix("CH#"), "sweep", now)
            done += 1
        if done:
            metrics.add_metric(name="ChatsSwept", unit="Count", value=done)
        return done
