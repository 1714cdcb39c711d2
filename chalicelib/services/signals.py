"""Integration events out (issue 11): ``emit`` now, put on EventBridge later.

Services call :func:`emit` with a detail model (``chalicelib.schemas_insight``):
it only appends to this invocation's buffer. After the handler's work is done,
the app-wide middleware (:func:`middleware`, registered in ``app.py``) calls
:func:`flush`, which writes the buffer to the **outbox** in DynamoDB
(``SIG#<idempotency key>``/``OUT``, on the sparse ``due`` index under bucket
``signals``). A relayed message's ``MessageRelayed`` skips the buffer: its outbox
item is written in the same transaction that finishes the message
(:func:`item`), so it exists exactly when the message counts as relayed.

:func:`drain` (the sweeper, every 5 minutes; the twin's loop) queries the
bucket, puts the events on the bus in batches of ten (adapters/bus.py), takes
what EventBridge took off the index (the item stays until its TTL, with
``put_at``) and backs off what it refused; after ``MAX_ATTEMPTS`` an
item moves to bucket ``signals-dead`` (metric ``SignalsDead``, alarmed).

Nothing here raises into the work that emitted: a failed flush is logged (detail
types and counts, never a detail) and counted (``SignalsFlushFailed``). The item
key is the idempotency key, so a fact emitted twice (a retried invocation) is one
item, and a consumer dedupes whatever the bus delivers twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib import clock
from chalicelib.observability import logger, metrics

if TYPE_CHECKING:
    from chalicelib.adapters.bus import EventBus
    from chalicelib.models import Signal
    from chalicelib.schemas_insight import Detail

BUCKET = "signals"
DEAD = "signals-dead"
MAX_ATTEMPTS = 12  # with the backoff below: about a day of retries
KEEP_DAYS = 14  # an outbox item nobody could put disappears after this (TTL)

_buffer: dict[str, tuple[str, str]] = {}  # idempotency key -> (detail type, JSON)
_lock = threading.Lock()  # the twin runs handlers in threads; Lambda does not


@dataclass(frozen=True)
class Raw:
    """A detail built without pydantic (the relay's hot path keeps it out of the
    inbound function's cold start); tests validate it against the model."""

    detail_type: str
    idempotency: str
    body: dict[str, Any]


def _encode(detail: Detail | Raw) -> tuple[str, str, str]:
    if isinstance(detail, Raw):
        return detail.detail_type, detail.idempotency, json.dumps(detail.body, separators=(",", ":"))
    return type(detail).__name__, detail.idempotency, detail.model_dump_json()


def emit(detail: Detail | Raw) -> None:
    """Owe ``detail`` to the bus. Cheap (memory only) and never raises."""
    try:
        kind, key, body = _encode(detail)
        with _lock:
            _buffer[key] = (kind, body)
    except Exception:  # an emission never fails the work that emitted it
        logger.exception("integration event not encoded", extra={"detail_type": type(detail).__name__})
        metrics.add_metric(name="SignalsFlushFailed", unit="Count", value=1)


def pending() -> int:
    return len(_buffer)


def item(detail: Detail | Raw, now: datetime | None = None) -> Signal:
    """The outbox item for ``detail``, for a caller that writes it in its own transaction."""
    kind, key, body = _encode(detail)
    return _owed(kind, key, body, now or clock.now())


def _owed(kind: str, key: str, body: str, now: datetime) -> Signal:
    """An outbox item due now (the drain puts it on the bus)."""
    from chalicelib.models import Signal

    return Signal(
        f"SIG#{key}",
        "OUT",
        detail_type=kind,
        detail=body,
        attempts=0,
        due_bucket=BUCKET,
        due_at=now,
        expires=timedelta(days=KEEP_DAYS),
    )


def flush() -> int:
    """Write the buffer to the outbox; never raises. Returns how many were written."""
    with _lock:
        if not _buffer:
            return 0
        owed = dict(_buffer)
        _buffer.clear()
    from chalicelib.models import Signal

    now = clock.now()
    for attempt in range(2):
        try:
            with Signal.batch_write() as batch:
                for key, (kind, body) in owed.items():
                    batch.save(_owed(kind, key, body, now))
            metrics.add_metric(name="SignalsOwed", unit="Count", value=len(owed))
            return len(owed)
        except Exception:
            if attempt == 0:
                continue
            logger.exception(
                "integration events not written to the outbox",
                extra={"count": len(owed), "detail_types": sorted({k for k, _ in owed.values()})},
            )
            metrics.add_metric(name="SignalsFlushFailed", unit="Count", value=len(owed))
    return 0


def middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """App-wide (``app.py``): flush after the handler, whatever it returned or raised."""
    try:
        return get_response(event)
    finally:
        flush()


@dataclass
class Drained:
    put: int = 0
    refused: int = 0
    dead: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"put": self.put, "refused": self.refused, "dead": self.dead}


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 240))


def drain(bus: EventBus | None = None, *, now: datetime | None = None, limit: int = 1000) -> Drained:
    """Put every owed event on the bus (a Query of the ``due`` index, never a scan)."""
    from chalicelib.adapters.bus import Entry, EventBus
    from chalicelib.models import Signal
    from chalicelib.settings import get_settings

    settings = get_settings()
    bus = bus or EventBus(name=settings.event_bus)
    now = now or clock.now()
    keys = [k.pk for k in Signal.due_index.query(BUCKET, Signal.due_at <= now, limit=limit)]
    result = Drained()
    for start in range(0, len(keys), 100):
        items = list(Signal.batch_get([(pk, "OUT") for pk in keys[start : start + 100]]))
        entries = [Entry(detail_type=s.detail_type, detail=s.detail, ref=s.pk) for s in items]
        try:
            refused = set(bus.put(entries))
        except Exception:
            logger.exception("PutEvents failed; the events stay owed", extra={"count": len(entries)})
            refused = {e.ref for e in entries}
        for s in items:
            if s.pk not in refused:
                # Off the index; the item stays (its TTL removes it) as a record of what went out.
                s.update(actions=[Signal.due_bucket.remove(), Signal.due_at.remove(), Signal.put_at.set(now)])
                result.put += 1
                continue
            attempts = int(s.attempts or 0) + 1
            if attempts >= MAX_ATTEMPTS:
                s.update(actions=[Signal.attempts.set(attempts), Signal.due_bucket.set(DEAD)])
                result.dead += 1
            else:
                s.update(actions=[Signal.attempts.set(attempts), Signal.due_at.set(now + _backoff(attempts))])
                result.refused += 1
    if result.put:
        metrics.add_metric(name="SignalsPut", unit="Count", value=result.put)
    if result.refused:
        metrics.add_metric(name="SignalsRefused", unit="Count", value=result.refused)
    if result.dead:
        metrics.add_metric(name="SignalsDead", unit="Count", value=result.dead)
        logger.error("integration events gave up", extra={"count": result.dead})
    return result


def owed(bucket: str = BUCKET) -> list[Signal]:
    """The outbox items of ``bucket`` (operators and tests)."""
    from chalicelib.models import Signal

    keys = [k.pk for k in Signal.due_index.query(bucket)]
    return list(Signal.batch_get([(pk, "OUT") for pk in keys])) if keys else []


def detail_of(signal: Signal) -> dict[str, Any]:
    return dict(json.loads(signal.detail))


# -- the details, built from the records (pydantic is imported on first use) -------


def _person(key: str) -> tuple[str, str]:
    """``s-<id>`` / ``o-<id>`` -> (kind, the integration's id)."""
    return ("organizer" if key.startswith("o-") else "signup"), key[2:]


def _key(*parts: object) -> str:
    import hashlib

    raw = "\x1f".join(str(p) for p in parts)
    return f"{parts[0]}:{hashlib.sha256(raw.encode()).hexdigest()[:32]}"


def relayed(log: Any, chat: Any, now: datetime, *, private: bool) -> Raw:
    """``MessageRelayed`` (schemas_insight.MessageRelayed), built as plain JSON."""
    kind, author_id = _person(log.author_key or "")
    key = _key("MessageRelayed", log.message_id)
    body = {
        "version": 1,
        "idempotency": key,
        "integration": chat.integration,
        "chat_id": chat.chat_id,
        "event_id": chat.event_id,
        "timeslot_id": chat.timeslot_id,
        "at": now.isoformat().replace("+00:00", "Z"),
        "message_id": log.message_id,
        "author_kind": kind,
        "author_id": author_id,
        "size": int(log.size or 0),
        "rendered_size": int(log.rendered_size or 0),
        "recipients": int(log.recipients or 0),
        "after_event": now > chat.ends_at,
        "private": private,
    }
    return Raw("MessageRelayed", key, body)


def _chat_ids(chat: Any) -> dict[str, Any]:
    return {
        "integration": chat.integration,
        "chat_id": chat.chat_id,
        "event_id": chat.event_id,
        "timeslot_id": chat.timeslot_id,
    }


def chat_opened(chat: Any, first_opened: datetime, members: int) -> None:
    from chalicelib.schemas_insight import ChatOpened

    opened_at = chat.opened_at or first_opened
    emit(
        ChatOpened(
            idempotency=_key("ChatOpened", chat.chat_id, opened_at.isoformat()),
            at=opened_at,
            opens_at=chat.opens_at,
            ends_at=chat.ends_at,
            members=members,
            **_chat_ids(chat),
        )
    )


def chat_changed(chat: Any, previous: str) -> None:
    """A chat's state change after it was saved: closed, or reopened after a close."""
    from chalicelib.schemas_insight import ChatClosed, ChatReopened

    if chat.state == "closed" and previous not in {"closed", "new"}:
        at = chat.closed_at or clock.now()
        emit(
            ChatClosed(
                idempotency=_key("ChatClosed", chat.chat_id, at.isoformat()),
                at=at,
                reason=chat.closed_reason or "window",
                **_chat_ids(chat),
            )
        )
    elif previous == "closed" and chat.state in {"open", "scheduled"}:
        at = clock.now()
        emit(
            ChatReopened(
                idempotency=_key("ChatReopened", chat.chat_id, chat.version),
                at=at,
                **_chat_ids(chat),
            )
        )


PARTICIPANT_EVENTS = {"mute": "ParticipantMuted", "unmute": "ParticipantUnmuted", "leave": "ParticipantLeft"}


def participant(what: str, chat: Any, key: str, now: datetime | None = None) -> None:
    """Muted, unmuted or left. The key is the (person, chat, UTC hour): a retried
    click is one event; the same change again within the hour is deduped too."""
    from chalicelib import schemas_insight

    now = now or clock.now()
    kind, pid = _person(key)
    name = PARTICIPANT_EVENTS[what]
    model = getattr(schemas_insight, name)
    emit(
        model(
            idempotency=_key(name, chat.chat_id, key, f"{now:%Y-%m-%dT%H}"),
            at=now,
            kind=kind,
            id=pid,
            **_chat_ids(chat),
        )
    )


STEWARD_ACTIONS = {
    "remove": "removed",
    "restore": "restored",
    "block": "blocked",
    "unblock": "unblocked",
    "close": "closed",
    "reopen": "reopened",
    "hold": "held",
    "release": "released",
    "auto_hold": "held",
    "approve": "approved",
    "reject": "rejected",
    "expire": "expired",
    "report": "reported",
}


def steward(
    action: str, *, integration: str, chat: Any, target: str | None, via: str, record_key: str, at: datetime
) -> None:
    """A recorded steward action (R15) as a ``ModerationAction``; keyed by its record."""
    if action not in STEWARD_ACTIONS:
        return  # "private": opening a conversation is not moderation
    from chalicelib.schemas_insight import ModerationAction

    if target is None:
        target_kind, target_id = "chat", chat.chat_id if chat is not None else ""
    elif action in {"block", "unblock"}:
        target_kind, target_id = "block", target
    elif target.startswith(("s-", "o-")):
        target_kind, target_id = _person(target)
    else:
        target_kind, target_id = "message", target
    emit(
        ModerationAction(
            idempotency=_key("ModerationAction", integration, record_key),
            integration=integration,
            chat_id=chat.chat_id if chat is not None else None,
            event_id=chat.event_id if chat is not None else None,
            timeslot_id=chat.timeslot_id if chat is not None else None,
            at=at,
            action=STEWARD_ACTIONS[action],  # type: ignore[arg-type]
            via=via,  # type: ignore[arg-type]
            target_kind=target_kind,  # type: ignore[arg-type]
            target_id=target_id,
        )
    )


def referral(chat: Any, signup_id: str, referrer: str, at: datetime) -> None:
    from chalicelib.schemas_insight import ReferralAttributed

    emit(
        ReferralAttributed(
            idempotency=_key("ReferralAttributed", chat.integration, chat.event_id, signup_id),
            at=at,
            signup_id=signup_id,
            referrer_signup_id=referrer,
            **_chat_ids(chat),
        )
    )


def next_step_clicked(chat: Any, step_id: str, click_id: str, at: datetime, signup_id: str | None = None) -> None:
    """For the lead's wiring of the next-step redirect: ``click_id`` is that click's own id."""
    from chalicelib.schemas_insight import NextStepClicked

    emit(
        NextStepClicked(
            idempotency=_key("NextStepClicked", chat.chat_id, step_id, click_id),
            at=at,
            step_id=step_id,
            signup_id=signup_id,
            **_chat_ids(chat),
        )
    )
