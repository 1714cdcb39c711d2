"""A test world: moto-backed AWS resources, the Chalice test client, and the
triggers AWS would fire (SQS drain, Scheduler) done by hand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from unittest import mock

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib import models
from chalicelib.adapters import aws
from chalicelib.services import keys
from chalicelib.settings import Settings, get_settings
from infra.twin.api import ApiTestClient as Client  # R13 answers for unknown routes too
from infra.twin.smtp import ses_event


@dataclass
class Sent:
    to: str
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


_AWS_CALL = threading.RLock()


def one_call_at_a_time() -> Any:
    """In-process moto applies a request with no lock, so two threads' conditional
    writes (or transactions) to one item can both pass their condition. DynamoDB
    applies each write atomically, and the race tests rely on that: every AWS
    call of the process is applied one at a time, as the twin's moto server does.
    Threads still interleave between calls, where AWS lets them."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def call(self: Any, operation_name: str, params: dict[str, Any]) -> Any:
        with _AWS_CALL:
            return real(self, operation_name, params)

    return mock.patch.object(BaseClient, "_make_api_call", call)


@dataclass
class World:
    settings: Settings
    client: Client
    api_key: str
    integration: str = "acme"
    last_ses_event: dict[str, Any] = field(default_factory=dict)
    kickoffs: int = 0  # copies sent before the chat's first post (see open_chat)
    _patches: list[Any] = field(default_factory=list)
    _serial: Any = None

    @classmethod
    def create(cls) -> World:
        import os
        import tempfile

        serial = one_call_at_a_time()
        serial.start()

        clock_file = tempfile.NamedTemporaryFile(prefix="muster-clock-", delete=False)  # noqa: SIM115
        clock_file.close()
        os.environ["MUSTER_CLOCK_FILE"] = clock_file.name
        get_settings.cache_clear()
        settings = get_settings()
        # botocore clients cost ~0.1 s each to build. moto intercepts every
        # client made after it was imported, inside any mock_aws context, so
        # clients (and PynamoDB's connections) are kept from one test to the next
        # while the table and region stay the same; each mock_aws still starts
        # from empty AWS state.
        bound = (settings.table_name, settings.region)
        if _BOUND[0] != bound:
            aws.reset()
            models.bind()
            _BOUND[0] = bound
        boto3.client("dynamodb").create_table(TableName=settings.table_name, **models.TABLE_SCHEMA)
        boto3.client("dynamodb").create_table(
            TableName=settings.idempotency_table_name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName=f"{settings.delivery_queue}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.create_queue(
            QueueName=settings.delivery_queue,
            Attributes={
                "VisibilityTimeout": "0",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
            },
        )
        boto3.client("s3").create_bucket(Bucket=settings.mail_bucket)
        boto3.client("ses").verify_domain_identity(Domain=settings.relay_domain)
        boto3.client("scheduler").create_schedule_group(Name=settings.schedule_group)
        _forget_services()
        from app import app

        return cls(settings=settings, client=Client(app), api_key=keys.create_key("acme"), _serial=serial)

    def close(self) -> None:
        import os

        self.unpatch()
        if self._serial is not None:
            self._serial.stop()
        os.unlink(os.environ.pop("MUSTER_CLOCK_FILE"))

    @contextmanager
    def settings_override(self, **env: str) -> Iterator[None]:
        """Run with some MUSTER_* settings changed, as a redeploy with new
        config would: the handlers rebuild their services from the new values.

        Settings are read once per container. They are read here, outside the
        Chalice test client, which swaps in .chalice/config.json's environment
        during each call (and that sets the same limits).
        """
        import os

        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        get_settings.cache_clear()
        _forget_services()
        get_settings()
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            get_settings.cache_clear()
            _forget_services()
            get_settings()

    def open_chat(self, statuses: Iterable[str], *, organizers: int = 1) -> dict[str, Any]:
        """An open chat (event "e1", its shift 10 h away) with one signup per
        status (ann0, ann1, ...), kickoffs delivered and counted in ``kickoffs``."""
        self.put_event("e1", event_body(start_in_hours=10, organizers=organizers))
        for n, status in enumerate(statuses):
            assert self.put_signup("e1", f"s{n}", signup_body(n, status)).status_code == 201
        self.drain()
        self.kickoffs = len(self.sent())
        return self.chat("e1", "t1")

    def relayed(self) -> list[Sent]:
        """What SES sent after the kickoffs of :meth:`open_chat`."""
        return self.sent()[self.kickoffs :]

    def advance(self, hours: float) -> None:
        """Move the clock every service reads (chalicelib.clock) forward."""
        import os

        from chalicelib import clock

        offset = clock.offset_seconds() + hours * 3600  # read before the file is truncated
        with open(os.environ["MUSTER_CLOCK_FILE"], "w") as fh:
            fh.write(str(offset))

    # -- HTTP ------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> Any:
        h = {"Content-Type": "application/json"}
        if key is not None:
            h["Authorization"] = f"Bearer {self.api_key if key == 'default' else key}"
        h.update(headers or {})
        raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        return self.client.http.request(method, path, headers=h, body=raw or b"")

    def put_event(self, event_id: str, body: dict[str, Any]) -> Any:
        return self.call("PUT", f"/events/{event_id}", body)

    def put_signup(self, event_id: str, signup_id: str, body: dict[str, Any]) -> Any:
        return self.call("PUT", f"/events/{event_id}/signups/{signup_id}", body)

    def chat(self, event_id: str, timeslot_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/events/{event_id}/timeslots/{timeslot_id}/chat")
        assert response.status_code == 200, response.body
        return json.loads(response.body)

    # -- triggers AWS would fire ------------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        client = boto3.client("scheduler")
        out = []
        for item in client.list_schedules(GroupName=self.settings.schedule_group)["Schedules"]:
            out.append(client.get_schedule(Name=item["Name"], GroupName=self.settings.schedule_group))
        return out

    def fire_schedule(self, schedule: dict[str, Any]) -> Any:
        """What Scheduler does at the schedule's time: invoke its target."""
        name = schedule["Target"]["Arn"].rsplit(":", 1)[-1].removeprefix(f"muster-{self.settings.stage}-")
        payload = json.loads(schedule["Target"]["Input"])
        boto3.client("scheduler").delete_schedule(Name=schedule["Name"], GroupName=self.settings.schedule_group)
        return self.client.lambda_.invoke(name, payload)

    def drain(self, max_rounds: int = 20) -> int:
        """Deliver every queued batch through the real ``deliver`` handler, with
        SQS's semantics: failed records come back with a higher receive count."""
        sqs = boto3.client("sqs")
        url = sqs.get_queue_url(QueueName=self.settings.delivery_queue)["QueueUrl"]
        handled = 0
        for _ in range(max_rounds):
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]).get(
                "Messages", []
            )
            if not got:
                break
            event = {
                "Records": [
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": m.get("Attributes", {}),
                        "messageAttributes": {},
                        "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:us-east-1:{DEFAULT_ACCOUNT_ID}:{self.settings.delivery_queue}",
                        "awsRegion": "us-east-1",
                    }
                    for m in got
                ]
            }
            try:
                result = self.client.lambda_.invoke("deliver", event).payload or {}
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            except Exception:
                failed = {m["MessageId"] for m in got}
            for m in got:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            handled += len(got)
        return handled

    def receive(
        self,
        raw: bytes,
        *,
        sender: str,
        to: list[str],
        verdicts: dict[str, str] | None = None,
        ses_message_id: str | None = None,
        when: datetime | None = None,
    ) -> Any:
        """What SES receiving does: S3 action (raw MIME), then the Lambda action.

        Lambda's retry of an invocation is the same event again: pass the same
        ``ses_message_id`` and ``when`` (see :meth:`retry`)."""
        import uuid

        ses_message_id = ses_message_id or uuid.uuid4().hex
        boto3.client("s3").put_object(Bucket=self.settings.mail_bucket, Key=f"inbound/{ses_message_id}", Body=raw)
        verdicts = {"spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "spam": "PASS", "virus": "PASS", **(verdicts or {})}
        event = ses_event(
            message_id=ses_message_id,
            stored=raw,
            mail_from=sender,
            recipients=to,
            verdicts=verdicts,
            when=when or datetime.now(UTC),
        )
        self.last_ses_event = event
        return self.client.lambda_.invoke("inbound_email", event).payload

    def retry(self) -> Any:
        """Invoke the inbound Lambda again with the last SES event, as Lambda's
        retry of a failed asynchronous invocation does."""
        return self.client.lambda_.invoke("inbound_email", self.last_ses_event).payload

    # -- what SES sent -----------------------------------------------------------

    def sent(self) -> list[Sent]:
        backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        out = []
        for m in backend.sent_messages:
            raw = m.raw_data.encode() if isinstance(m.raw_data, str) else m.raw_data
            # moto adds header To/Cc to the envelope; real SES uses Destination only.
            for to in m.destinations:
                if not to.lower().endswith("@" + self.settings.relay_domain) and not to.lower().endswith(
                    self.settings.relay_domain + ">"
                ):
                    out.append(Sent(to=to, raw=raw))
                    break
        return out

    def inbox(self, address: str) -> list[Sent]:
        return [s for s in self.sent() if s.to.lower() == address.lower()]

    def patch(self, target: str, new: Any) -> Any:
        p = mock.patch(target, new)
        self._patches.append(p)
        return p.start()

    def unpatch(self) -> None:
        """Stop every injection made with :meth:`patch`."""
        for p in self._patches:
            p.stop()
        self._patches.clear()


_BOUND: list[tuple[str, str] | None] = [None]


def _forget_services() -> None:
    """Drop the handlers' cached services (they hold clients and settings)."""
    from chalicelib.blueprints import api, controls, delivery, inbound, scheduling, stewardship_api

    for module in (api, delivery, scheduling, inbound, stewardship_api, controls):
        for name in ("events", "fanout", "chats", "relay", "steward"):
            fn = getattr(module, name, None)
            if fn is not None:
                fn.cache_clear()


def at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def event_body(
    *, start_in_hours: float = 50, length_hours: float = 2, organizers: int = 1, **chat: Any
) -> dict[str, Any]:
    return {
        "title": "Canvass",
        "timezone": "America/New_York",
        "chat": chat,
        "organizers": [
            {"id": f"org{i}", "first_name": f"Olive{i}", "last_name": "Organizer", "email": f"olive{i}@org.example"}
            for i in range(organizers)
        ],
        "timeslots": [{"id": "t1", "starts_at": at(start_in_hours), "ends_at": at(start_in_hours + length_hours)}],
    }


def signup_body(n: int, status: str = "registered", timeslot: str = "t1") -> dict[str, Any]:
    return {
        "timeslot_id": timeslot,
        "status": status,
        "person": {"first_name": f"Ann{n}", "last_name": "Attendee", "email": f"ann{n}@people.example"},
    }
