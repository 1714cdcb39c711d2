"""Create, in moto, every AWS resource the app expects (what infra/ deploys),
and work out the triggers to emulate from the app's own event sources."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import boto3
from chalice import Chalice
from chalice.app import CloudWatchEventConfig, ScheduledEventConfig, SNSEventConfig, SQSEventConfig

from chalicelib.models import TABLE_SCHEMA
from chalicelib.settings import Settings
from infra.twin.config import ACCOUNT, REGION, STAGE

log = logging.getLogger("twin")
TWIN_QUEUE_VISIBILITY = "2"  # a failed async invocation is retried after this
DELIVERY_VISIBILITY = "5"  # a failed delivery batch comes back after this
MAX_RECEIVES = 5  # then the delivery queue's redrive moves it to the DLQ
EVENTS_OUT_QUEUE = f"muster-{STAGE}-twin-events-out"


@dataclass(frozen=True)
class Consumer:
    """An SQS queue drained into a handler. ``kind`` is the trigger it plays:
    "sqs" (event source mapping, batches with partial failures), "eventbridge"
    (a rule's Lambda target) or "sns" (a topic subscription)."""

    kind: str
    handler: str
    queue_name: str
    queue_url: str
    batch_size: int = 10
    subscription_arn: str = ""


@dataclass(frozen=True)
class Periodic:
    handler: str
    rule_name: str
    seconds: float


@dataclass
class Topology:
    consumers: list[Consumer] = field(default_factory=list)
    periodic: list[Periodic] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)  # handler name -> topic ARN
    events_out_url: str = ""  # integration events Muster put on the bus (issue 11), as a CRM's rule sees them


def rate_seconds(expression: str) -> float:
    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"unsupported schedule expression {expression!r} (the twin runs rate() rules)")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def _topic_name(topic: str) -> str:
    return topic.rsplit(":", 1)[-1] if topic.startswith("arn:") else topic


def create_resources(settings: Settings, app: Chalice) -> Topology:
    ddb = boto3.client("dynamodb")
    ddb.create_table(TableName=settings.table_name, **TABLE_SCHEMA)
    # Powertools idempotency's default table shape.
    ddb.create_table(
        TableName=settings.idempotency_table_name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("s3").create_bucket(Bucket=settings.mail_bucket)
    ses = boto3.client("ses")
    ses.verify_domain_identity(Domain=settings.relay_domain)
    if settings.configuration_set:
        ses.create_configuration_set(ConfigurationSet={"Name": settings.configuration_set})
    boto3.client("scheduler").create_schedule_group(Name=settings.schedule_group)

    sqs = boto3.client("sqs")
    _, dlq_arn = _queue(sqs, f"{settings.delivery_queue}-dlq", {})
    _queue(
        sqs,
        settings.delivery_queue,
        {
            "VisibilityTimeout": DELIVERY_VISIBILITY,
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        },
    )

    topology = Topology()
    events = boto3.client("events")
    # A CRM's rule on the bus: every event Muster puts (source "muster") lands on a twin queue.
    url, arn = _queue(sqs, EVENTS_OUT_QUEUE, {})
    events.put_rule(Name=EVENTS_OUT_QUEUE, EventPattern=json.dumps({"source": ["muster"]}), State="ENABLED")
    events.put_targets(Rule=EVENTS_OUT_QUEUE, Targets=[{"Id": "twin", "Arn": arn}])
    topology.events_out_url = url
    sns = boto3.client("sns")
    for source in app.event_sources:
        if isinstance(source, SQSEventConfig):
            name = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
            url, _ = _queue(sqs, name, {"VisibilityTimeout": DELIVERY_VISIBILITY})  # no-op if it exists
            topology.consumers.append(Consumer("sqs", source.name, name, url, min(10, source.batch_size)))
        elif isinstance(source, CloudWatchEventConfig):
            queue = f"muster-{STAGE}-twin-{source.name}"
            url, arn = _queue(sqs, queue, {"VisibilityTimeout": TWIN_QUEUE_VISIBILITY})
            rule = f"muster-{STAGE}-{source.name}"
            events.put_rule(Name=rule, EventPattern=json.dumps(source.event_pattern), State="ENABLED")
            events.put_targets(Rule=rule, Targets=[{"Id": "twin", "Arn": arn}])
            topology.consumers.append(Consumer("eventbridge", source.name, queue, url, 1))
        elif isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            text = expression if isinstance(expression, str) else expression.to_string()
            topology.periodic.append(Periodic(source.name, f"muster-{STAGE}-{source.name}", rate_seconds(text)))
        elif isinstance(source, SNSEventConfig):
            topic_arn = str(sns.create_topic(Name=_topic_name(source.topic))["TopicArn"])
            queue = f"muster-{STAGE}-twin-{source.name}"
            url, arn = _queue(sqs, queue, {"VisibilityTimeout": TWIN_QUEUE_VISIBILITY})
            sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
            topology.consumers.append(Consumer("sns", source.name, queue, url, 1, str(sub)))
            topology.topics[source.name] = topic_arn
        else:
            log.warning("the twin does not emulate %s triggers (%s)", type(source).__name__, source.name)
    return topology


def account_arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"
