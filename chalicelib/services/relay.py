"""Relay inbound mail to a chat (R3-R12).

Envelope and header rules, in short:

- The SES receipt rule stores the raw MIME at ``inbound/<SES messageId>`` and then
  invokes us with the verdicts. Each (SES message, chat) is handled once
  (Powertools idempotency), whatever SES retries.
- The chat comes from the recipient's local part (case-insensitive, ``+tag``
  ignored); the sender is the header From, matched by address hash among that
  chat's participants (one query returns them all).
- :func:`chalicelib.relay.policy.authorize` decides; rate limits and caps come
  from counters here. Every decision is an :class:`Outcome`, logged (metadata
  only) and counted. Only authenticated senders get a polite bounce, at most one
  per sender per day, and never for automatic or looping mail.
- A relayed message is anonymized once and stored at ``outbound/<id>.eml``; its
  recipients go to SQS in batches (see :mod:`chalicelib.services.fanout`).
- Threading: inbound In-Reply-To/References are mapped to Muster's own
  Message-IDs through our own id format, the SES MessageId of each delivered copy
  (SES rewrites Message-ID) and the author's client Message-ID.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError
from pynamodb.expressions.update import Action

from chalicelib import clock
from chalicelib.adapters import aws
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer, SendFailed
from chalicelib.models import Chat, ChatStats, Counter, Delivery, MessageLog, Participant, ThreadRef
from chalicelib.observability import get_tracer, logger, metrics
from chalicelib.relay import anonymize, compose
from chalicelib.relay.addresses import address_hash, normalize_address, relay_local_part
from chalicelib.relay.names import display_name
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import InboundMail, parse_inbound, verdicts_from_ses
from chalicelib.relay.policy import ChatWindow, SenderInfo, authorize, sender_authenticated
from chalicelib.services.chats import chat_id_from_local, is_active, participants
from chalicelib.services.fanout import FanOut, chat_context, chat_label
from chalicelib.settings import Settings, get_settings

LOG_DAYS = 90
AMAZONSES = ".amazonses.com"


@dataclass(frozen=True)
class Job:
    ses_message_id: str
    recipient: str
    envelope_sender: str
    receipt: dict[str, Any]
    headers: list[dict[str, str]]


def _short_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def headers_only(headers: list[dict[str, str]]) -> bytes:
    """A header block rebuilt from the SES event's ``mail.headers``."""
    lines = [
        f"{h.get('name', '')}: {h.get('value', '')}".replace("\r", " ").replace("\n", " ")
        for h in headers
        if h.get("name")
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


def new_message_id() -> str:
    # Time-ordered prefix keeps a chat's log readable in key order.
    return f"{int(time.time() * 1000):x}{uuid.uuid4().hex[:12]}"


class RelayService:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: MailStore | None = None,
        fanout: FanOut | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or MailStore(bucket=self.settings.mail_bucket)
        self.fanout = fanout or FanOut(self.settings)
        self.mailer = mailer or Mailer(configuration_set=self.settings.configuration_set)

    # -- entry -----------------------------------------------------------------

    def handle_ses_event(self, event: dict[str, Any], context: Any = None) -> list[str]:
        """One SES receipt event; one outcome per (message, chat address)."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._idempotency.register_lambda_context(context)
        outcomes: list[str] = []
        for record in event.get("Records", []):
            ses = record.get("ses", {})
            mail, receipt = ses.get("mail", {}), ses.get("receipt", {})
            for recipient in receipt.get("recipients") or mail.get("destination") or []:
                if relay_local_part(recipient, self.settings.relay_domain) is None:
                    continue  # a Cc to some other domain: not ours to handle
                job = Job(
                    ses_message_id=str(mail.get("messageId", "")),
                    recipient=normalize_address(recipient),
                    envelope_sender=str(mail.get("source") or ""),
                    receipt=receipt,
                    headers=list(mail.get("headers") or []),
                )
                outcomes.append(self._once(job=job))
        return outcomes

    @cached_property
    def _idempotency(self) -> Any:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

        return IdempotencyConfig(event_key_jmespath="[ses_message_id, recipient]", expires_after_seconds=7 * 86400)

    @cached_property
    def _once(self) -> Callable[..., str]:
        """``relay_one`` behind Powertools idempotency keyed on (SES id, chat)."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function

        layer = DynamoDBPersistenceLayer(
            table_name=self.settings.idempotency_table_name, boto3_client=aws.client("dynamodb")
        )

        @idempotent_function(data_keyword_argument="job", persistence_store=layer, config=self._idempotency)
        def once(job: Job) -> str:
            return self.relay_one(job).value

        return once

    # -- one message to one chat -------------------------------------------------

    def relay_one(self, job: Job) -> Outcome:
        started = time.monotonic()
        s = self.settings
        now = clock.now()
        chat = self._chat(job.recipient)
        verdicts = verdicts_from_ses(job.receipt)
        raw, size = self._raw(job.ses_message_id)
        # Too large to fetch (or gone): decide on the headers SES sent us.
        mail = parse_inbound(raw) if raw is not None else replace(parse_inbound(headers_only(job.headers)), size=size)
        people = participants(chat.chat_id) if chat is not None else []
        sender_hash = address_hash(s.secret, mail.from_address) if mail.from_address else None
        author = next((p for p in people if sender_hash and p.address_hash == sender_hash), None)
        if raw is None and size == 0:
            outcome = Outcome.MALFORMED
        else:
            outcome = authorize(
                verdicts=verdicts,
                mail=mail,
                envelope_sender=job.envelope_sender,
                relay_domain=s.relay_domain,
                chat=ChatWindow(chat.state, chat.opens_at, chat.closes_at) if chat else None,
                sender=SenderInfo(active=is_active(author), organizer=author.role == "organizer") if author else None,
                max_bytes=s.max_message_bytes,
                now=now,
            )
        recipients = [
            p.participant_key
            for p in people
            if p is not author and is_active(p) and not p.muted and not p.suppressed
        ]
        if outcome is Outcome.RELAYED:
            outcome = self._limits(sender_hash or "", chat, len(recipients), now)  # type: ignore[arg-type]
        message_id = new_message_id()
        parent = None
        bounced = False
        if outcome is Outcome.RELAYED:
            assert chat is not None and author is not None
            parent = self._relay(message_id, mail, chat, author, people, recipients, now)
            metrics.add_metric(name="FanOutSize", unit="Count", value=len(recipients))
        elif outcome.may_bounce and sender_authenticated(verdicts):
            bounced = self._bounce(job, outcome, mail, chat, sender_hash, now)
        MessageLog(
            f"CH#{chat.chat_id}" if chat else f"UNROUTED#{now:%Y-%m-%d}",
            f"M#{now.isoformat()}#{message_id}",
            message_id=message_id,
            chat_id=chat.chat_id if chat else None,
            outcome=outcome.value,
            sender_hash=sender_hash,
            size=mail.size,
            recipients=len(recipients) if outcome is Outcome.RELAYED else 0,
            parent_id=parent,
            ses_message_id=job.ses_message_id,
            received_at=now,
            bounced=bounced,
            expires=timedelta(days=LOG_DAYS),
        ).save()
        metrics.add_metric(name="Relayed" if outcome.relayed else f"Rejected_{outcome.value}", unit="Count", value=1)
        metrics.add_metric(name="RelayLatency", unit="Milliseconds", value=(time.monotonic() - started) * 1000)
        get_tracer().put_annotation(key="outcome", value=outcome.value)
        logger.info(
            "inbound handled",
            extra={
                "outcome": outcome.value,
                "chat_id": chat.chat_id if chat else None,
                "sender_hash": sender_hash,
                "size": mail.size,
                "recipients": len(recipients),
            },
        )
        return outcome

    def _chat(self, recipient: str) -> Chat | None:
        local = relay_local_part(recipient, self.settings.relay_domain)
        if not local:
            return None
        try:
            return Chat.get(f"CH#{chat_id_from_local(local)}", "META")
        except DoesNotExist:
            return None

    def _raw(self, ses_message_id: str) -> tuple[bytes | None, int]:
        """The raw mail, unless it is over the cap (then only its size: no download)."""
        key = f"inbound/{ses_message_id}"
        try:
            response = self.store.client.get_object(Bucket=self.store.bucket, Key=key)
        except Exception as exc:
            if aws.error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                logger.warning("raw mail missing from S3", extra={"key": key})
                return None, 0
            raise
        size = int(response.get("ContentLength", 0))
        if size > self.settings.max_message_bytes:
            response["Body"].close()
            return None, size
        return bytes(response["Body"].read()), size

    def _limits(self, sender_hash: str, chat: Chat, copies: int, now: datetime) -> Outcome:
        """R12: messages per sender per hour, copies per chat per hour."""
        hour = f"{now:%Y%m%d%H}"
        if self._bump(f"LIM#sender#{sender_hash}#{hour}", 1) > self.settings.sender_messages_per_hour:
            return Outcome.RATE_LIMITED
        if self._bump(f"LIM#chat#{chat.chat_id}#{hour}", copies) > self.settings.chat_copies_per_hour:
            return Outcome.RATE_LIMITED
        return Outcome.RELAYED

    @staticmethod
    def _bump(key: str, by: int) -> int:
        counter = Counter(key, "COUNT")
        counter.update(actions=[Counter.hits.add(by), Counter.expires.set(datetime.now(UTC) + timedelta(hours=2))])
        return int(counter.hits)

    # -- threading ---------------------------------------------------------------

    def _muster_id(self, message_id: str) -> str:
        return f"<{message_id}@{self.settings.relay_domain}>"

    def _resolve(self, msg_id: str, chat: Chat) -> str | None:
        """Our own message id for a cited Message-ID, or None if it is foreign."""
        inner = msg_id.strip("<>")
        local, _, domain = inner.rpartition("@")
        if domain.lower() == self.settings.relay_domain:
            return local if not local.startswith("kickoff-") else None
        if domain.lower().endswith(AMAZONSES):
            for copy in Delivery.ses_index.query(local, limit=1):
                if copy.chat_id == chat.chat_id and not copy.pk.startswith("MSG#kickoff-"):
                    return copy.pk.removeprefix("MSG#")
            return None
        try:
            ref = ThreadRef.get(f"REF#{_short_hash(inner)}", "META")
        except DoesNotExist:
            return None
        return ref.message_id if ref.chat_id == chat.chat_id else None

    def _thread(self, mail: InboundMail, chat: Chat) -> tuple[str | None, list[str]]:
        parent = self._resolve(mail.in_reply_to[0], chat) if mail.in_reply_to else None
        own = [
            local
            for ref in mail.references
            if (local := ref.strip("<>").rpartition("@")[0]) and ref.strip("<>").lower().endswith("@" + self.settings.relay_domain)
            and not local.startswith("kickoff-")
        ]
        if parent is None and mail.references and mail.references[-1] not in mail.in_reply_to:
            parent = self._resolve(mail.references[-1], chat)
        chain = list(dict.fromkeys([*own, *([parent] if parent else [])]))[-20:]
        return parent, chain

    # -- outcomes ----------------------------------------------------------------

    def _relay(
        self,
        message_id: str,
        mail: InboundMail,
        chat: Chat,
        author: Participant,
        people: list[Participant],
        recipients: list[str],
        now: datetime,
    ) -> str | None:
        parent, chain = self._thread(mail, chat)

        def person(p: Participant) -> anonymize.Person:
            return anonymize.Person(
                key=p.participant_key,
                display_name=display_name(p.first_name, p.last_name, organizer=p.role == "organizer"),
                addresses=(p.email,),
            )

        rendered = anonymize.anonymize(
            mail,
            author=person(author),
            people=[person(p) for p in people],
            chat=chat_context(chat, self.settings),
            message_id=self._muster_id(message_id),
            in_reply_to=self._muster_id(parent) if parent else None,
            references=[self._muster_id(m) for m in chain],
            date=now,
        )
        key = f"outbound/{message_id}.eml"
        self.store.put(key, rendered)
        if mail.message_id:
            # The author's own client cites this id when they reply to their sent copy.
            ThreadRef(
                f"REF#{_short_hash(mail.message_id.strip('<>'))}",
                "META",
                chat_id=chat.chat_id,
                message_id=message_id,
                expires=timedelta(days=LOG_DAYS),
            ).save()
        self.fanout.relay(chat, message_id, key, author.participant_key, recipients, len(rendered))
        after = now > chat.ends_at
        actions: list[Action] = [
            ChatStats.messages.add(1),
            ChatStats.last_message_at.set(now),
            ChatStats.first_message_at.set(ChatStats.first_message_at | now),
        ]
        if after:
            actions.append(ChatStats.after_event.add(1))
        ChatStats(f"CH#{chat.chat_id}", "STATS").update(actions=actions)
        return parent

    def _bounce(
        self, job: Job, outcome: Outcome, mail: InboundMail, chat: Chat | None, sender_hash: str | None, now: datetime
    ) -> bool:
        """At most one polite notice per sender per day (R6, R12); True if sent."""
        to = normalize_address(job.envelope_sender)
        if not to or "@" not in to:
            return False
        marker = Counter(f"LIM#bounce#{sender_hash or address_hash(self.settings.secret, to)}#{now:%Y%m%d}", "ONCE")
        marker.expires = timedelta(days=2)  # type: ignore[assignment]
        try:
            marker.save(condition=Counter.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        relay = job.recipient if chat is None else chat_context(chat, self.settings).relay_address
        raw = compose.render_bounce(
            to_address=to,
            outcome=outcome,
            relay_address=relay,
            chat_label=chat_label(chat) if chat else None,
            opens_at=chat.opens_at if chat else None,
            original_subject=mail.subject,
            message_id=self._muster_id("notice-" + new_message_id()),
            date=now,
            from_address=f"muster-noreply@{self.settings.relay_domain}",
        )
        try:
            self.mailer.send_raw(sender=f"muster-noreply@{self.settings.relay_domain}", recipient=to, raw=raw)
            metrics.add_metric(name="Bounced", unit="Count", value=1)
            return True
        except SendFailed as exc:
            logger.warning("bounce not sent", extra={"code": exc.code, "outcome": outcome.value})
            return False
