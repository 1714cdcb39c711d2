"""SQS fan-out consumer: one recipient batch per message, partial failures
reported back to SQS (``ReportBatchItemFailures`` is set in infra/)."""

from __future__ import annotations

import json
import os
from functools import cache
from typing import TYPE_CHECKING, Any

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib import clock

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from chalicelib.services.fanout import FanOut

delivery = Blueprint(__name__)
QUEUE = os.environ.get("MUSTER_DELIVERY_QUEUE", "muster-dev-delivery")


@cache
def fanout() -> FanOut:
    # Imported on first use (it pulls in the relay core): every function imports app.py.
    from chalicelib.services.fanout import FanOut

    return FanOut()


# Stop starting new sends this long before Lambda would stop the invocation
# (a quarter of the time left, for short timeouts).
TIME_MARGIN_SECONDS = 10.0


def _send_until(context: Any) -> float | None:
    """When to stop starting new sends (epoch seconds), if Lambda says how long we have."""
    return clock.lambda_deadline(context, TIME_MARGIN_SECONDS)


# One SQS message (one recipient batch) per invocation: its copies are paced to
# the account's send rate and the rest continues in a new batch when time runs
# low, so an invocation never has a queue of batches it cannot finish.
@delivery.on_sqs_message(queue=QUEUE, batch_size=1, name="deliver")
def deliver(event: SQSEvent) -> dict[str, Any]:
    # Imported here: only this function needs it, and every function imports app.py.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    deadline = _send_until(event.context)

    def one(record: SQSRecord) -> None:
        fanout().deliver(json.loads(record.body), deadline=deadline)

    return process_partial_response(  # type: ignore[return-value]
        event=event.to_dict(), record_handler=one, processor=BatchProcessor(event_type=EventType.SQS)
    )
