"""Invoke the app's real handlers the way Lambda would, and the event shapes
each trigger delivers (SES receipt, SQS batch, SNS, EventBridge, schedule).

``Lambdas.invoke`` runs a handler through ``app.handler_map`` (what Chalice's test
client does, minus its per-call ``os.environ`` swap, which is not thread-safe)
inside one process: each worker process of ``infra.twin.workers`` holds one, and
the API's process takes the same lock per request. One lock per process makes
each behave like a single warm Lambda container: one invocation at a time, so its
Powertools logger and metrics never interleave.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from chalice import Chalice
from chalice.local import LambdaContext

from infra.twin.config import ACCOUNT, REGION, STAGE

log = logging.getLogger("twin")

# One "container": the HTTP API takes the same lock (see infra.twin.api).
CONTAINER_LOCK = threading.RLock()


class FunctionNotFound(LookupError):
    pass


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:muster-{STAGE}-{name}"


def function_name_from_arn(arn: str) -> str:
    """``arn:...:function:muster-dev-open_chat`` -> ``open_chat``."""
    return arn.rsplit(":", 1)[-1].removeprefix(f"muster-{STAGE}-")


class Lambdas:
    def __init__(self, app: Chalice, memory_size: int = 512) -> None:
        self.app = app
        self.memory_size = memory_size
        self.invocations: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def has(self, name: str) -> bool:
        return name in self.app.handler_map

    def invoke(self, name: str, event: Any) -> Any:
        """Run handler ``name`` with ``event``; exceptions propagate to the caller
        (the trigger decides: retry, redeliver or log)."""
        handler = self.app.handler_map.get(name)
        if handler is None:
            raise FunctionNotFound(name)
        context = LambdaContext(f"muster-{STAGE}-{name}", memory_size=self.memory_size, max_runtime_ms=60_000)
        with CONTAINER_LOCK:
            self.invocations[name] = self.invocations.get(name, 0) + 1
            try:
                return handler(event, context)
            except Exception:
                self.errors[name] = self.errors.get(name, 0) + 1
                raise

    def invoke_logged(self, name: str, event: Any) -> tuple[bool, Any]:
        """Invoke, and log (never raise) a crash: the twin stays up."""
        try:
            return True, self.invoke(name, event)
        except FunctionNotFound:
            log.error("no handler named %r in app.py: event dropped", name)
            return False, None
        except Exception:
            log.exception("handler %r crashed (the twin keeps running)", name)
            return False, None


# -- event shapes ----------------------------------------------------------------


def iso_millis(when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def sqs_event(messages: list[dict[str, Any]], queue_name: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}",
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """An SNS->Lambda event from the JSON envelope SNS puts on an SQS subscription."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId", str(uuid.uuid4())),
                    "TopicArn": envelope.get("TopicArn", ""),
                    "Subject": envelope.get("Subject"),
                    "Message": envelope.get("Message", ""),
                    "Timestamp": envelope.get("Timestamp", iso_millis()),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", "EXAMPLE"),
                    "SigningCertUrl": envelope.get("SigningCertURL", ""),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
                    "MessageAttributes": envelope.get("MessageAttributes", {}),
                },
            }
        ]
    }


def scheduled_event(rule_name: str, when: datetime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule_name}"],
        "detail": {},
    }


def eventbridge_event(body: str) -> dict[str, Any]:
    """The event EventBridge put on an SQS target, as the Lambda target gets it."""
    event = json.loads(body)
    if not isinstance(event, dict):
        raise ValueError("not an EventBridge event")
    event.setdefault("version", "0")
    event.setdefault("account", ACCOUNT)
    event.setdefault("region", REGION)
    event.setdefault("resources", [])
    return event
