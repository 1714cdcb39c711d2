"""Inbound mail: the SES receipt rule's Lambda action (after its S3 action)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from chalice import Blueprint

if TYPE_CHECKING:
    from chalicelib.services.relay import RelayService

inbound = Blueprint(__name__)


@cache
def relay() -> RelayService:
    # Imported on first use (parse, policy, anonymize): every function imports app.py.
    from chalicelib.services.relay import RelayService

    return RelayService()


@inbound.lambda_function(name="inbound_email")
def inbound_email(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"outcomes": relay().handle_ses_event(event, context)}
