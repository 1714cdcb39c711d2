"""SES bounce and complaint notifications (SNS): hard bounces and complaints
suppress addresses, soft bounces are scored (R11, services/suppressions.py)."""

from __future__ import annotations

import json
import os

from chalice import Blueprint
from chalice.app import SNSEvent

from chalicelib.observability import logger

feedback_bp = Blueprint(__name__)
TOPIC = os.environ.get("MUSTER_FEEDBACK_TOPIC", "muster-dev-feedback")


@feedback_bp.on_sns_message(topic=TOPIC, name="feedback")
def feedback(event: SNSEvent) -> list[str]:
    try:
        notification = json.loads(event.message)
    except ValueError:
        logger.warning("feedback message is not JSON; ignored")
        return []
    if isinstance(notification, dict) and str(notification.get("eventType", "")).startswith("TEXT_"):
        # An SMS delivery event (issue 12): a permanent failure opts the number out.
        from chalicelib.services.sms_optout import handle_delivery_event
        from chalicelib.settings import get_settings

        return handle_delivery_event(notification, get_settings().secret)
    # Imported on first use (people -> digest): every function imports app.py.
    from chalicelib.services.bounces import handle_feedback

    return handle_feedback(notification)
