"""EventBridge path for integrations (R13): EventCreated/Updated/Cancelled,
SignupCreated/Updated with ``detail`` matching events_schema/."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import CloudWatchEvent

from chalicelib.observability import logger
from chalicelib.vocab import DETAIL_TYPES, EVENT_SOURCE

integration = Blueprint(__name__)


@integration.on_cw_event({"source": [EVENT_SOURCE], "detail-type": list(DETAIL_TYPES)}, name="integration_events")
def integration_events(event: CloudWatchEvent) -> str:
    # Imported on first use: only this function and the API validate bodies.
    from chalicelib.services.integration import handle_integration_event

    outcome = handle_integration_event(event.to_dict())
    logger.info("integration event", extra={"detail_type": event.detail_type, "outcome": outcome})
    return outcome
