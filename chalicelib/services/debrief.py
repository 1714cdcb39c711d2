"""The post-shift debrief (issue 11): a prompt Muster posts into each chat of an
event once, ``debrief.after_hours`` after its shift ends.

It rides the chat's own scheduling (:mod:`chalicelib.services.chats`): the chat
carries ``debrief_at`` (the shift's end plus the hours; moved with the shift by
every upsert), a third one-time schedule (kind ``debrief``, targeting the
``open_chat`` function with ``action: debrief``) and the sweeper's ``due`` entry
while the debrief is ahead. When its time comes, the versioned chat update that
first sees it **claims** it -- ``debrief_state`` is set in the same conditional
save -- so however many schedules, sweeps and upserts race, one writer queues it;
``debrief_pending`` keeps the chat due until the queueing is done, and each
person's copy is claimed once by the fan-out (``MSG#debrief-<chat>``), so a
queueing repeated after a crash sends nobody a second copy.

Decided rules (README, "Debrief"): it is posted only into a chat that is *open*
at that time. A chat closed by its window, disabled, or closed by an organizer or
a cancellation gets no debrief, and the chat records why (``skipped_closed``,
``skipped_disabled``); a debrief more than :data:`LATE` past its time (the chat was
re-enabled late, say) is ``skipped_late``. Removing the debrief from the event,
disabling or cancelling deletes its schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib.models import Chat, Event, TimeslotMap
from chalicelib.observability import logger, metrics
from chalicelib.services.fanout import FanOut
from chalicelib.services.nextsteps import load_event, steps_of
from chalicelib.services.roster import participants, recipients

LATE = timedelta(hours=24)
GRACE = timedelta(minutes=2)  # as chats.GRACE: Scheduler fires at or after its time


def debrief_at(event: Event, slot: TimeslotMap) -> datetime | None:
    if event.debrief_after_hours is None or not event.debrief_text:
        return None
    return slot.ends_at + timedelta(hours=float(event.debrief_after_hours))


def live(chat: Chat, state: str) -> bool:
    """Is a debrief still ahead for this chat (its schedule kept, its due entry set)?
    A chat closed by its window keeps it, so its time comes and the skip is recorded."""
    if chat.debrief_at is None or chat.debrief_state is not None:
        return False
    return state in ("scheduled", "open") or (state == "closed" and chat.closed_reason == "window")


def claim(chat: Chat, state: str, now: datetime) -> None:
    """At the debrief's time, decide it once, in the chat's own versioned save:
    posted (and pending until queued) or skipped with the reason."""
    if chat.debrief_at is None or chat.debrief_state is not None or now + GRACE < chat.debrief_at:
        return
    if state == "open" and now <= chat.debrief_at + LATE:
        chat.debrief_state, chat.debrief_pending = "posted", True
    else:
        chat.debrief_state = "skipped_late" if state == "open" else f"skipped_{state}"
        metrics.add_metric(name="DebriefsSkipped", unit="Count", value=1)
        logger.info("debrief skipped", extra={"chat_id": chat.chat_id, "reason": chat.debrief_state})


def queue(chat: Chat, fanout: FanOut) -> int:
    """Queue the debrief for everyone active in the chat (each copy claimed once)."""
    event = load_event(chat)
    if event is None or not event.debrief_text:
        return 0  # the debrief was removed in between: nothing to post
    people = [p.participant_key for p in recipients(participants(chat.chat_id))]
    steps = [{"id": s.id, "label": s.label} for s in steps_of(event)]
    fanout.debrief(chat, people, text=event.debrief_text, steps=steps)
    metrics.add_metric(name="DebriefsQueued", unit="Count", value=1)
    return len(people)
