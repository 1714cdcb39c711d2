"""SQS fan-out consumer: one recipient batch per message, partial failures
reported back to SQS (``ReportBatchItemFailures`` is set in infra/)."""

from __future__ import annotations

import json
import os
from functools import cache
from typing import TYPE_CHECKING, Any

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.services.fanout import FanOut

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

delivery = Blueprint(__name__)
QUEUE = os.environ.get("MUSTER_DELIVERY_QUEUE", "muster-dev-delivery")


@cache
def fanout() -> FanOut:
    return FanOut()


def _deliver(record: SQSRecord) -> None:
    fanout().deliver(json.loads(record.body), int(record.attributes.approximate_receive_count or 1))


@delivery.on_sqs_message(queue=QUEUE, batch_size=10, name="deliver")
def deliver(event: SQSEvent) -> dict[str, Any]:
    # Imported here: only this function needs it, and every function imports app.py.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    return process_partial_response(  # type: ignore[return-value]
        event=event.to_dict(), record_handler=_deliver, processor=BatchProcessor(event_type=EventType.SQS)
    )
