"""The EventBridge integration path: same validation, same services as the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

from pydantic import ValidationError

from chalicelib import clock
from chalicelib.errors import ApiError, from_validation
from chalicelib.models import Rejection
from chalicelib.observability import logger, metrics
from chalicelib.schemas import INTEGRATION_EVENTS, EventCancelled, EventCreated, SignupCreated
from chalicelib.services.events import EventService


def record_rejection(source: str, kind: str, reason: str, ref: str | None) -> None:
    now = clock.now()
    Rejection(
        f"REJ#{now:%Y-%m-%d}",
        f"{now.isoformat()}#{uuid4().hex[:8]}",
        source=source,
        kind=kind,
        reason=reason[:500],
        ref=ref,
        at=now,
        expires=timedelta(days=30),
    ).save()
    metrics.add_metric(name="IntegrationEventsRejected", unit="Count", value=1)
    logger.warning("integration event rejected", extra={"kind": kind, "reason": reason[:500], "ref": ref})


def handle_integration_event(event: dict[str, Any], service: EventService | None = None) -> str:
    """Apply one EventBridge integration event; returns "applied" or "rejected".

    An invalid event is recorded with its reason and dropped (retrying cannot
    fix it). Anything else that fails raises, so Lambda's async retries and the
    on-failure destination keep the event.
    """
    kind = str(event.get("detail-type", ""))
    ref = str(event.get("id", "")) or None
    model = INTEGRATION_EVENTS.get(kind)
    if model is None:
        record_rejection("eventbridge", kind or "?", f"unknown detail-type '{kind}'", ref)
        return "rejected"
    try:
        detail = model.from_data(event.get("detail"))  # strict, as the REST API
    except ValidationError as exc:
        err = from_validation(exc)
        record_rejection("eventbridge", kind, f"{err.code}: {err.message} (field {err.field})", ref)
        return "rejected"
    service = service or EventService()
    try:
        if isinstance(detail, EventCreated):
            service.upsert_event(detail.integration, detail.event_id, detail.event)
        elif isinstance(detail, EventCancelled):
            service.cancel_event(detail.integration, detail.event_id)
        elif isinstance(detail, SignupCreated):
            service.upsert_signup(detail.integration, detail.event_id, detail.signup_id, detail.signup)
    except ApiError as err:  # e.g. a signup for an event that does not exist yet
        record_rejection("eventbridge", kind, f"{err.code}: {err.message} (field {err.field})", ref)
        return "rejected"
    metrics.add_metric(name="IntegrationEventsApplied", unit="Count", value=1)
    return "applied"
