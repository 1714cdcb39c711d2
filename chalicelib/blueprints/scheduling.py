"""Chat windows: Scheduler targets and the sweeper (R1, R2, R8)."""

from __future__ import annotations

from functools import cache
from typing import Any

from chalice import Blueprint, Rate
from chalice.app import CloudWatchEvent

from chalicelib.services.chats import ChatService

scheduling = Blueprint(__name__)


@cache
def chats() -> ChatService:
    return ChatService()


@scheduling.lambda_function(name="open_chat")
def open_chat(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Target of the one-time ``at(opens_at)`` schedule."""
    return {"chat_id": event.get("chat_id"), "state": chats().fire(str(event["chat_id"]), "open")}


@scheduling.lambda_function(name="close_chat")
def close_chat(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Target of the one-time ``at(closes_at)`` schedule."""
    return {"chat_id": event.get("chat_id"), "state": chats().fire(str(event["chat_id"]), "close")}


@scheduling.schedule(Rate(5, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: CloudWatchEvent) -> int:
    """Catch any opening or closing whose schedule did not fire."""
    return chats().sweep()
