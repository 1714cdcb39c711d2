"""Deciding what to do with one inbound message (R3, R6, R7, R12): which chat
(or private conversation) its address names, whether its sender may post there,
and whether the limits allow it. :class:`RelayService` does the rest (log,
render, store, fan out); the split keeps each side one concern.

- What can be decided from SES's verdicts and the headers SES sends is decided
  before the raw mail is downloaded or parsed; header sizes and MIME part counts
  are capped before any full parse (R12).
- The chat comes from the recipient's local part (case-insensitive, ``+tag``
  ignored); the sender is the header From, matched by address hash among that
  chat's participants (one query returns them all). A From that is not exactly
  one well-formed address is refused, never guessed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters import aws
from chalicelib.adapters.blobs import MailStore
from chalicelib.models import Chat, Counter, Participant, PrivateThread
from chalicelib.observability import logger
from chalicelib.relay.addresses import address_hash
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import InboundMail, parse_inbound, parse_ses_headers, verdicts_from_ses
from chalicelib.relay.policy import ChatWindow, SenderInfo, authorize
from chalicelib.services.private import (
    is_thread_key,
    load_thread,
    member_active,
    pair_author,
)
from chalicelib.services.roster import canonical, is_active, participants
from chalicelib.settings import Settings


@dataclass(frozen=True)
class Job:
    ses_message_id: str
    chat_key: str  # the chat id named by the recipient's local part
    recipient: str
    envelope_sender: str
    receipt: dict[str, Any]
    headers: list[dict[str, str]]
    timestamp: str = ""  # SES's receipt time (ISO 8601)
    headers_truncated: bool = False
    sms: bool = False  # a text message made into mail (services/sms.py): notices go back by text

    @property
    def received_at(self) -> datetime:
        try:
            when = datetime.fromisoformat(self.timestamp.replace("Z", "+00:00"))
        except ValueError:
            return datetime.fromtimestamp(0, UTC)
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    @property
    def message_id(self) -> str:
        """Muster's id for this message in this chat: the same on every retry (R8)."""
        digest = hashlib.sha256(f"{self.ses_message_id}\x1f{self.chat_key}".encode()).hexdigest()[:12]
        return f"{int(self.received_at.timestamp() * 1000):x}{digest}"


@dataclass
class Decision:
    outcome: Outcome
    mail: InboundMail
    chat: Chat | None
    people: list[Participant]
    author: Participant | None
    sender_hash: str | None
    pair: PrivateThread | None = None  # a private two-person thread of the chat (services/private.py)


class Admission:
    """The deciding half of the relay (needs ``settings`` and ``store``)."""

    settings: Settings
    store: MailStore

    def _decide(self, job: Job, chat: Chat | None, now: datetime, pair: PrivateThread | None = None) -> Decision:
        """Decide on SES's verdicts and headers first; download and parse the raw
        mail only when those allow relaying, and cap its complexity before the
        full parse (R6, R7, R12)."""
        s = self.settings
        verdicts = verdicts_from_ses(job.receipt)
        people = participants(chat.chat_id) if chat is not None else []
        by_hash = canonical(people)

        def judge(mail: InboundMail) -> Decision:
            sender_hash = address_hash(s.secret, mail.from_address) if mail.from_address else None
            if pair is not None:
                # Only the pair's two members may post to its address.
                author = pair_author(pair, people, sender_hash)
                active = member_active(author)
            else:
                author = by_hash.get(sender_hash) if sender_hash else None
                active = author is not None and is_active(author)
            outcome = authorize(
                verdicts=verdicts,
                mail=mail,
                envelope_sender=job.envelope_sender,
                relay_domain=s.relay_domain,
                chat=ChatWindow(chat.state, chat.opens_at, chat.closes_at) if chat else None,
                sender=SenderInfo(active=active, organizer=author.role == "organizer") if author else None,
                max_bytes=s.max_message_bytes,
                now=now,
            )
            if outcome is Outcome.SENDER_INACTIVE and author is not None and (author.removed or author.blocked):
                outcome = Outcome.SENDER_REMOVED  # R15: said plainly, once a day (R6)
            return Decision(outcome, mail, chat, people, author, sender_hash, pair)

        # parse_ses_headers and parse_inbound check the caps (parse.precheck)
        # before any full parse; over one, authorize says TOO_COMPLEX.
        first = judge(parse_ses_headers(job.headers, size=0))
        if job.headers and not job.headers_truncated and first.outcome is not Outcome.RELAYED:
            return first  # SES sent the whole header block: its refusal is final
        raw, size = self._raw(job.ses_message_id)
        if raw is None:
            # Too large to fetch (or gone): decide on the headers SES sent us.
            decision = judge(replace(first.mail, size=size))
            return decision if size else replace(decision, outcome=Outcome.MALFORMED)
        return judge(parse_inbound(raw))

    def _route(self, key: str) -> tuple[Chat | None, PrivateThread | None]:
        """The chat a relay address names, and the private thread if it names one."""
        if not is_thread_key(key):
            return self._chat(key), None
        pair = load_thread(key)
        chat = self._chat(pair.chat_id) if pair is not None else None
        return chat, pair if chat is not None else None

    def _chat(self, chat_key: str) -> Chat | None:
        try:
            return Chat.get(f"CH#{chat_key}", "META")
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
        """R12: messages per sender per chat per hour, copies per chat per hour;
        the chat's own limits (from its event) or the deployment's."""
        hour = f"{now:%Y%m%d%H}"
        per_sender = chat.sender_messages_per_hour or self.settings.sender_messages_per_hour
        per_chat = chat.chat_copies_per_hour or self.settings.chat_copies_per_hour
        if self._bump(f"LIM#sender#{chat.chat_id}#{sender_hash}#{hour}", 1) > per_sender:
            return Outcome.RATE_LIMITED
        if self._bump(f"LIM#chat#{chat.chat_id}#{hour}", copies) > per_chat:
            return Outcome.RATE_LIMITED
        return Outcome.RELAYED

    @staticmethod
    def _bump(key: str, by: int) -> int:
        counter = Counter(key, "COUNT")
        counter.update(actions=[Counter.hits.add(by), Counter.expires.set(datetime.now(UTC) + timedelta(hours=2))])
        return int(counter.hits)
