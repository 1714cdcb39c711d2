"""EventBridge path for integrations (R13): EventCreated/Updated/Cancelled,
SignupCreated/Updated with ``detail`` matching events_schema/."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import CloudWatchEvent

from chalicelib.contracts import EVENT_SOURCE
from chalicelib.observability import logger
from chalicelib.schemas import INTEGRATION_EVENTS
from chalicelib.services.integration import handle_integration_event

integration = Blueprint(__name__)


@integration.on_cw_event(
    {"source": [EVENT_SOURCE], "detail-type": sorted(INTEGRATION_EVENTS)}, name="integration_events"
)
def integration_events(event: CloudWatchEvent) -> str:
    outcome = handle_integration_event(event.to_dict())
    logger.info("integration event", extra={"detail_type": event.detail_type, "outcome": outcome})
    return outcome
