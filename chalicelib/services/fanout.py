"""Fan-out: recipient batches on SQS, delivered exactly once per copy (R8, R9, R11).

A message is rendered once (relay) or is tiny (kickoff). Its recipients go to SQS
in batches of ``batch_size`` participant keys -- never addresses. The delivery
Lambda, per batch:

1. claims the batch with one conditional write (a duplicate SQS delivery finds the
   claim and stops; a retry after a crash or a partial failure takes it over);
2. reads the chat's participants in one query (fresh mute/status/suppression);
3. on a take-over (or for kickoffs, which can be asked for again) reads the copies
   already sent, and skips them;
4. personalizes headers only and sends each copy through SES v2;
5. records every copy -- sent with its SES MessageId, or permanently failed --
   25 per BatchWriteItem, with the claim marked done in the last one.

Throttles and other transient failures leave their recipients unrecorded; the
batch is reported failed and SQS redelivers it, so only they are retried, and a
batch that keeps failing ends in the dead-letter queue.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer, SendFailed
from chalicelib.adapters.queue import DeliveryQueue
from chalicelib.models import BatchClaim, Chat, Delivery, Participant
from chalicelib.observability import get_tracer, logger, metrics
from chalicelib.relay import anonymize, compose
from chalicelib.relay.names import display_name
from chalicelib.relay.tokens import sign_token
from chalicelib.services.chats import is_active, participants, relay_address
from chalicelib.settings import Settings, get_settings

LEASE_SECONDS = 300
RECORD_DAYS = 90
MUTE_DAYS = 400
# Each copy in flight costs ~4x its size (the copy, botocore's base64 and JSON
# bodies). Cap the bytes in flight per delivery Lambda, and the copies per batch
# of a large message, so a 10 MB message to 500 people fits 512 MB and 60 s.
IN_FLIGHT_BUDGET = 96 * 1024 * 1024
BATCH_BYTES_BUDGET = 500 * 1024 * 1024
MIN_BATCH = 10
# Fields of a Chat that delivery needs; they travel in the SQS body (no PII), so
# a batch doesn't read the chat item.
CHAT_FIELDS = ("chat_id", "title", "timezone", "relay_local", "starts_at", "ends_at")


class BatchNotDone(Exception):
    """Some copies in the batch failed transiently; SQS will redeliver it."""


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: list[str] = field(default_factory=list)
    duplicate: bool = False


def chat_label(chat: Chat) -> str:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(chat.timezone)
    start = chat.starts_at.astimezone(tz)
    end = chat.ends_at.astimezone(tz)
    return f"{chat.title}, {start:%a %d %b %Y %H:%M}\u2013{end:%H:%M} ({chat.timezone})"


def chat_context(chat: Chat, settings: Settings) -> anonymize.ChatContext:
    from zoneinfo import ZoneInfo

    start = chat.starts_at.astimezone(ZoneInfo(chat.timezone))
    return anonymize.ChatContext(
        chat_id=chat.chat_id,
        relay_address=relay_address(chat, settings),
        list_name=f"{chat.title} \u2013 {start:%a %d %b %H:%M}",
        subject_prefix=f"[{chat.title[:40]} {start:%a %H:%M}]",
    )


@lru_cache(maxsize=2)
def _rendered(bucket: str, key: str) -> bytes:
    # One message's batches usually land on the same warm container.
    return MailStore(bucket=bucket).get(key)


class FanOut:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        queue: DeliveryQueue | None = None,
        mailer: Mailer | None = None,
        store: MailStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.queue = queue or DeliveryQueue(name=self.settings.delivery_queue)
        self.mailer = mailer or Mailer(configuration_set=self.settings.configuration_set)
        self.store = store or MailStore(bucket=self.settings.mail_bucket)

    # -- enqueue ---------------------------------------------------------------

    @staticmethod
    def _chat_fields(chat: Chat) -> dict[str, str]:
        return {
            name: value.isoformat() if isinstance(value := getattr(chat, name), datetime) else str(value)
            for name in CHAT_FIELDS
        }

    @staticmethod
    def _chat_from(fields: dict[str, str]) -> Chat:
        """A transient Chat for rendering (never saved)."""
        values: dict[str, Any] = dict(fields)
        for name in ("starts_at", "ends_at"):
            values[name] = datetime.fromisoformat(fields[name])
        return Chat(f"CH#{fields['chat_id']}", "META", **values)

    def _enqueue(self, base: dict[str, Any], recipients: list[str], batch: str, size: int | None = None) -> int:
        size = size or self.settings.batch_size
        bodies = [
            {**base, "batch": f"{batch}-{n}", "recipients": recipients[i : i + size]}
            for n, i in enumerate(range(0, len(recipients), size))
        ]
        self.queue.send_all(bodies)
        return len(bodies)

    def kickoff(self, chat: Chat, recipients: list[str], *, batch: str) -> None:
        """Queue the kickoff for ``recipients`` (once per person, however often asked)."""
        if not recipients:
            return
        base = {
            "v": 1,
            "kind": "kickoff",
            "message_id": f"kickoff-{chat.chat_id}",
            "chat_id": chat.chat_id,
            "chat": self._chat_fields(chat),
        }
        if batch == "late":
            # Each late arrival gets a batch of its own so claims never overlap.
            for key in recipients:
                self._enqueue(base, [key], f"late-{key}")
        else:
            self._enqueue(base, recipients, batch)
        metrics.add_metric(name="KickoffsQueued", unit="Count", value=len(recipients))

    def relay(
        self, chat: Chat, message_id: str, object_key: str, author: str, recipients: list[str], size: int
    ) -> int:
        """Queue a rendered message (``size`` bytes, at ``object_key``) for ``recipients``."""
        base = {
            "v": 1,
            "kind": "relay",
            "message_id": message_id,
            "chat_id": chat.chat_id,
            "chat": self._chat_fields(chat),
            "object": object_key,
            "author": author,
        }
        per_batch = min(self.settings.batch_size, max(MIN_BATCH, BATCH_BYTES_BUDGET // max(size, 1)))
        return self._enqueue(base, recipients, "r", per_batch)

    # -- deliver ---------------------------------------------------------------

    def _claim(self, message_id: str, batch: str) -> str:
        """One conditional write: "go" (ours), "done" (a duplicate) or "busy"."""
        now = int(time.time())
        claim = BatchClaim(
            f"MSG#{message_id}",
            f"B#{batch}",
            state="working",
            lease_until=now + LEASE_SECONDS,
            expires=timedelta(days=RECORD_DAYS),
        )
        try:
            claim.save(
                condition=BatchClaim.pk.does_not_exist()
                | ((BatchClaim.state != "done") & (BatchClaim.lease_until < now))
            )
            return "go"
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        # Only duplicates and races pay for this read.
        old = BatchClaim.get(f"MSG#{message_id}", f"B#{batch}", consistent_read=True)
        return "done" if old.state == "done" else "busy"

    def deliver(self, body: dict[str, Any], receive_count: int = 1) -> BatchResult:
        message_id, batch = body["message_id"], body["batch"]
        result = BatchResult()
        verdict = self._claim(message_id, batch)
        if verdict == "done":
            result.duplicate = True
            metrics.add_metric(name="DuplicateBatches", unit="Count", value=1)
            return result
        if verdict == "busy":
            raise BatchNotDone(f"batch {batch} of {message_id} is being delivered elsewhere")
        # A redelivery may follow a crash or a partial failure: skip what went out.
        takeover = receive_count > 1

        chat = self._chat_from(body["chat"])
        people = {p.participant_key: p for p in participants(chat.chat_id)}
        keys: list[str] = list(dict.fromkeys(body["recipients"]))
        if takeover or body["kind"] == "kickoff":
            done = {
                d.participant_key
                for d in Delivery.batch_get([(f"MSG#{message_id}", f"TO#{k}") for k in keys])
            }
            result.skipped += len(done)
            keys = [k for k in keys if k not in done]

        targets: list[Participant] = []
        for key in keys:
            p = people.get(key)
            if p is None or not is_active(p) or p.muted or p.suppressed or key == body.get("author"):
                result.skipped += 1
                continue
            targets.append(p)

        ctx = chat_context(chat, self.settings)
        sender = ctx.relay_address
        template = (
            anonymize.CopyTemplate.of(_rendered(self.store.bucket, body["object"])) if body["kind"] == "relay" else None
        )
        copy_size = sum(map(len, template.pieces)) if template else 64 * 1024
        now = clock.now()

        def copy_for(p: Participant) -> bytes:
            token = sign_token(
                self.settings.secret,
                chat_id=chat.chat_id,
                participant_key=p.participant_key,
                purpose="mute",
                expires_at=int(time.time()) + MUTE_DAYS * 86400,
            )
            mute_url = f"{self.settings.public_url}/mute/{token}"
            headers = anonymize.list_unsubscribe_headers(mute_url)
            if template is not None:
                return template.render(mute_url=mute_url, list_unsubscribe_headers=headers)
            kickoff = compose.render_kickoff(
                chat=ctx,
                recipient_name=display_name(p.first_name, p.last_name, organizer=p.role == "organizer"),
                shift_label=chat_label(chat),
                organizer=p.role == "organizer",
                message_id=f"<{message_id}.{p.participant_key}@{self.settings.relay_domain}>",
                date=now,
            )
            return anonymize.personalize(kickoff, mute_url=mute_url, list_unsubscribe_headers=headers)

        def send(p: Participant) -> tuple[Participant, str | None, SendFailed | None]:
            try:
                return p, self.mailer.send_raw(sender=sender, recipient=p.email, raw=copy_for(p)), None
            except SendFailed as exc:
                return p, None, exc

        records: list[Delivery] = []
        workers = max(1, min(self.settings.send_concurrency, len(targets), IN_FLIGHT_BUDGET // (4 * copy_size)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for p, ses_id, error in pool.map(send, targets):
                if error is not None and error.transient:
                    result.retry.append(p.participant_key)
                    continue
                records.append(
                    Delivery(
                        f"MSG#{message_id}",
                        f"TO#{p.participant_key}",
                        chat_id=chat.chat_id,
                        participant_key=p.participant_key,
                        status="sent" if error is None else "failed",
                        reason=None if error is None else error.code,
                        ses_message_id=ses_id,
                        at=now,
                        expires=timedelta(days=RECORD_DAYS),
                    )
                )
                if error is None:
                    result.sent += 1
                else:
                    result.failed += 1
                    logger.warning(
                        "permanent send failure",
                        extra={"message_id": message_id, "participant": p.participant_key, "code": error.code},
                    )
        self._record(records, message_id, batch, done=not result.retry)
        metrics.add_metric(name="CopiesSent", unit="Count", value=result.sent)
        get_tracer().put_annotation(key="copies_sent", value=str(result.sent))
        if result.failed:
            metrics.add_metric(name="CopiesFailed", unit="Count", value=result.failed)
        if result.retry:
            metrics.add_metric(name="CopiesRetried", unit="Count", value=len(result.retry))
            raise BatchNotDone(f"{len(result.retry)} copies of {message_id} to retry")
        return result

    @staticmethod
    def _record(records: list[Delivery], message_id: str, batch: str, *, done: bool) -> None:
        # Lease 0 releases the claim at once so the redelivery can take over.
        claim = BatchClaim(
            f"MSG#{message_id}",
            f"B#{batch}",
            state="done" if done else "working",
            lease_until=0,
            expires=timedelta(days=RECORD_DAYS),
        )
        with Delivery.batch_write() as writer:
            for record in records:
                writer.save(record)
            writer.save(claim)  # type: ignore[arg-type]


