"""Chat windows: Scheduler targets and the sweeper (R1, R2, R8); the daily digests."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Rate
from chalice.app import CloudWatchEvent

from chalicelib import clock

if TYPE_CHECKING:
    from chalicelib.services.chats import ChatService

scheduling = Blueprint(__name__)


@cache
def chats() -> ChatService:
    # Imported on first use (chats -> fanout -> the relay core): every function imports app.py.
    from chalicelib.services.chats import ChatService

    return ChatService()


@scheduling.lambda_function(name="open_chat")
def open_chat(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Target of the one-time ``at(opens_at)`` schedule, and of the debrief's (issue 11)."""
    action = "debrief" if event.get("action") == "debrief" else "open"
    return {"chat_id": event.get("chat_id"), "state": chats().fire(str(event["chat_id"]), action)}


@scheduling.lambda_function(name="close_chat")
def close_chat(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Target of the one-time ``at(closes_at)`` schedule."""
    return {"chat_id": event.get("chat_id"), "state": chats().fire(str(event["chat_id"]), "close")}


@scheduling.schedule(Rate(5, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: CloudWatchEvent) -> int:
    """Catch any opening or closing whose schedule did not fire, and decline
    held messages nobody decided in time (R15)."""
    from chalicelib.services.stewardship import Stewardship

    swept = chats().sweep()
    Stewardship().expire_due()
    _drain_signals()
    return swept


def _drain_signals() -> None:
    """Put the owed integration events on the bus (issue 11). Never fails the sweep:
    what EventBridge refuses stays owed for the next run."""
    from chalicelib.observability import logger
    from chalicelib.services import signals

    try:
        signals.drain()
    except Exception:
        logger.exception("draining integration events failed; they stay owed")


# Stop starting digests this long before Lambda would stop the invocation
# (a quarter of the time left, for short timeouts); the rest goes next run.
DIGEST_TIME_MARGIN_SECONDS = 30.0


def _send_until(context: Any) -> float | None:
    return clock.lambda_deadline(context, DIGEST_TIME_MARGIN_SECONDS)


@scheduling.schedule(Rate(15, unit=Rate.MINUTES), name="digest")
def digest(event: CloudWatchEvent) -> dict[str, Any]:
    """Send every daily digest that is due (each chat's goes within 15 minutes
    after ``MUSTER_DIGEST_HOUR`` in its time zone). Exactly once per reader and
    day, however often this fires; SES outages raise, and the digests stay due."""
    # Imported here: only this function needs it, and every function imports app.py.
    from chalicelib.services.digest import DigestService

    return DigestService().run(deadline=_send_until(event.context)).as_dict()
