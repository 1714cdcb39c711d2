"""Fan-out: recipient batches on SQS, each copy delivered exactly once (R8, R9, R11, R12).

A message is rendered once (relay) or is tiny (kickoff). Its recipients go to SQS
in batches of participant keys -- never addresses. A batch's name carries a
digest of its keys, so a fan-out queued again after a failure names an identical
batch identically and a different one differently. The delivery Lambda, per batch:

1. leases the batch with one conditional write (a concurrent duplicate SQS
   delivery finds the lease and stops; one after the batch is done, too);
2. reads the chat's participants in one query (fresh mute/status/suppression)
   and keeps one record per person (R8: an organizer who also signed up);
3. per copy: **claims** the (message, recipient) pair with a conditional write
   (``attribute_not_exists`` -- or a claim of this same batch left by a crash),
   takes a send token from the account-wide pacer, sends through SES v2 and
   records the SES MessageId. A recipient someone else claimed or already got
   is skipped, however the batch reached us: a retry, a duplicate fan-out, a
   DLQ redrive. A crash can repeat only the copies sent or sending without
   their record at that moment (at most ``send_concurrency``), each at most
   once more. Calls are grouped, not the guarantee: each send thread takes its
   tokens, then claims its next few copies (up to ``CLAIM_CHUNK``) in one
   TransactWriteItems with the same condition per item; records are written
   with BatchWriteItem, and no send starts while ``send_concurrency`` copies
   are sent or sending without their record. A claimed copy is always sent by
   the thread that claimed it (the deadline is checked before claiming), so a
   continuation batch never holds a copy this batch claimed;
4. stops sending when the Lambda's remaining time runs low and queues the
   untouched rest as a continuation batch;
5. marks the lease done.

The lease, claims and records themselves are :mod:`chalicelib.services.ledger`'s
writes. What each reader's copy says is ``services/copies.py``'s business (one
:class:`~chalicelib.services.copies.BatchCopies` per batch); the texts of SMS
readers are ``services/sms_copies.py``'s.

Throttles and other transient failures keep their claims; the batch is reported
failed and SQS redelivers it, so only they are retried. Deployment-wide SES
errors (permissions, a paused account, the sandbox) stop the batch at once and
park it (SQS, then the DLQ) without recording anything as failed; only
recipient-specific refusals are recorded as permanent failures (R9).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer, SendFailed
from chalicelib.adapters.queue import DeliveryQueue
from chalicelib.models import Chat, Participant
from chalicelib.observability import logger, metrics, traced
from chalicelib.relay import anonymize
from chalicelib.relay.addresses import transport_address
from chalicelib.services import kpis, ledger, nextsteps
from chalicelib.services.copies import BatchCopies, chat_label, rendered
from chalicelib.services.digest import DigestService, wants_digest
from chalicelib.services.pacing import SendPacer
from chalicelib.services.roster import (
    email_reachable,
    participants,
    recipients,
    sms_reachable,
)
from chalicelib.services.sms_copies import SmsCopies
from chalicelib.settings import Settings, get_settings

# Each copy in flight costs ~4x its size (the copy, botocore's base64 and JSON
# bodies). Cap the bytes in flight per delivery Lambda, and the copies per batch
# of a large message, so a 10 MB message to 500 people fits 512 MB.
IN_FLIGHT_BUDGET = 96 * 1024 * 1024
BATCH_BYTES_BUDGET = 500 * 1024 * 1024
MIN_BATCH = 10
# Copies a send thread claims in one TransactWriteItems (the API allows 100).
CLAIM_CHUNK = 25
# Fields of a Chat that delivery needs; they travel in the SQS body (no PII), so
# a batch doesn't read the chat item.
CHAT_FIELDS = (
    "chat_id",
    "title",
    "timezone",
    "relay_local",
    "starts_at",
    "ends_at",
    "default_delivery",
    "integration",  # with event_id and invite_url: the kickoff's Bring a Friend link (issue 11)
    "event_id",
    "invite_url",
)


class BatchNotDone(Exception):
    """Some copies in the batch failed transiently; SQS will redeliver it."""


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: list[str] = field(default_factory=list)
    continued: list[str] = field(default_factory=list)
    deferred: int = 0  # to digest readers' next digest
    halted: str | None = None
    duplicate: bool = False


def batch_name(prefix: str, n: int, keys: list[str]) -> str:
    digest = hashlib.sha256("\x1f".join(keys).encode()).hexdigest()[:12]
    return f"{prefix}-{n}-{digest}"


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
            name: value.isoformat() if isinstance(value, datetime) else str(value)
            for name in CHAT_FIELDS
            if (value := getattr(chat, name)) is not None
        }

    @staticmethod
    def _chat_from(fields: dict[str, str]) -> Chat:
        """A transient Chat for rendering (never saved)."""
        values: dict[str, Any] = {k: v for k, v in fields.items() if k in CHAT_FIELDS}
        for name in ("starts_at", "ends_at"):
            values[name] = datetime.fromisoformat(fields[name])
        return Chat(f"CH#{fields['chat_id']}", "META", **values)

    def _enqueue(self, base: dict[str, Any], keys: list[str], batch: str, size: int | None = None) -> int:
        size = size or self.settings.batch_size
        chunks = [keys[i : i + size] for i in range(0, len(keys), size)]
        bodies = [{**base, "batch": batch_name(batch, n, chunk), "recipients": chunk} for n, chunk in enumerate(chunks)]
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
        steps = [{"id": x.id, "label": x.label} for x in nextsteps.steps_of(nextsteps.load_event(chat))]
        if steps:
            base["next_steps"] = steps  # issue 11: labels and ids only; links are signed per copy
        if batch == "late":
            # Each late arrival gets a batch of its own.
            for key in recipients:
                self._enqueue(base, [key], "late")
        else:
            self._enqueue(base, recipients, batch)
        metrics.add_metric(name="KickoffsQueued", unit="Count", value=len(recipients))
        kpis.joined(chat.chat_id, recipients)  # issue 11: the chat's members (a set: once each)

    def debrief(self, chat: Chat, recipients: list[str], *, text: str, steps: list[dict[str, str]]) -> None:
        """Queue the post-shift debrief (issue 11) for ``recipients`` (once per person)."""
        if not recipients:
            return
        base = {
            "v": 1,
            "kind": "debrief",
            "message_id": f"debrief-{chat.chat_id}",
            "chat_id": chat.chat_id,
            "chat": self._chat_fields(chat),
            "debrief": text,
            "next_steps": steps,
        }
        self._enqueue(base, recipients, "debrief")

    def relay(
        self,
        chat: Chat,
        message_id: str,
        object_key: str,
        author: str,
        recipients: list[str],
        size: int,
        *,
        ancestors: Sequence[str] = (),
        context: anonymize.ChatContext | None = None,
        next_steps: Sequence[dict[str, str]] = (),
        announcement: bool = False,
    ) -> int:
        """Queue a rendered message (``size`` bytes, at ``object_key``) for
        ``recipients``; ``ancestors`` are the Muster ids it answers (parent last)."""
        base = {
            "v": 1,
            "kind": "relay",
            "message_id": message_id,
            "chat_id": chat.chat_id,
            "chat": self._chat_fields(chat),
            "object": object_key,
            "author": author,
            "ancestors": list(ancestors),
            "hold": bool(chat.moderation_hold),  # which of hold/release the organizer controls offer
        }
        if context is not None:
            # A private thread's message (services/private.py): sent from the
            # pair's address, never deferred to a digest.
            base["context"] = asdict(context)
            base["private"] = True
        if announcement:  # issue 11: never deferred to a digest; its next steps signed per copy
            base["announcement"] = True
            base["next_steps"] = list(next_steps)
        per_batch = min(self.settings.batch_size, max(MIN_BATCH, BATCH_BYTES_BUDGET // max(size, 1)))
        return self._enqueue(base, recipients, "r", per_batch)

    def intro(
        self,
        chat: Chat,
        thread_id: str,
        context: anonymize.ChatContext,
        organizer_key: str,
        participant_key: str,
        *,
        about: str | None = None,
        place: str | None = None,
    ) -> None:
        """Queue the two intros of a private thread (once per person, however often
        asked); ``about="ride"``: a ride-board pair, the offer's side first (issue 12)."""
        base = {
            "v": 1,
            "kind": "intro",
            "message_id": f"intro-{thread_id}",
            "chat_id": chat.chat_id,
            "chat": self._chat_fields(chat),
            "context": asdict(context),
            "private": True,
            "pair": {"organizer": organizer_key, "participant": participant_key}
            | ({"about": about, "place": place or ""} if about is not None else {}),
        }
        self._enqueue(base, [organizer_key, participant_key], "intro")

    # -- deliver ---------------------------------------------------------------

    @cached_property
    def digests(self) -> DigestService:
        return DigestService(self.settings)

    @cached_property
    def pacer(self) -> SendPacer:
        rate = self.settings.max_send_rate or self.mailer.max_send_rate(self.settings.send_rate_fallback)
        return SendPacer(rate)

    # -- SMS readers (issue 12): services/sms_copies.py ------------------------------

    @cached_property
    def texts(self) -> SmsCopies:
        return SmsCopies(self.settings, store=self.store)

    @staticmethod
    def _texts(body: dict[str, Any]) -> bool:
        """Chat messages and kickoffs go by text too; private threads stay mail."""
        return body["kind"] in {"relay", "kickoff"} and not body.get("private")

    def _send_texts(
        self,
        body: dict[str, Any],
        chat: Chat,
        readers: list[Participant],
        author_name: str | None,
        now: datetime,
        deadline: float | None,
        result: BatchResult,
    ) -> list[str]:
        """The batch's texts; returns the readers left for a continuation."""
        message_id = body["message_id"]
        if body["kind"] == "relay":
            text = self.texts.relay_text(
                rendered(self.store.bucket, body["object"]),
                message_id=message_id,
                author=author_name or "Someone",
                chat_title=chat.title,
                now=now,
            )
        else:
            text = self.texts.kickoff_text(chat_title=chat.title, shift_label=chat_label(chat))
        sms = self.texts.deliver(
            message_id=message_id,
            batch=body["batch"],
            chat_id=chat.chat_id,
            readers=readers,
            text=text,
            now=now,
            deadline=deadline,
        )
        result.sent += sms.sent
        result.failed += sms.failed
        result.skipped += sms.skipped
        result.retry.extend(sms.retry)
        result.halted = result.halted or sms.halted
        return sms.left

    def deliver(self, body: dict[str, Any], *, deadline: float | None = None) -> BatchResult:
        """Deliver one batch; start no send after ``deadline`` (epoch seconds)."""
        with traced("deliver") as annotate:
            result = self._deliver(body, deadline)
            annotate("copies_sent", str(result.sent))
            return result

    def _deliver(self, body: dict[str, Any], deadline: float | None) -> BatchResult:
        message_id, batch = body["message_id"], body["batch"]
        result = BatchResult()
        verdict = ledger.lease(message_id, batch)
        if verdict == "done":
            result.duplicate = True
            metrics.add_metric(name="DuplicateBatches", unit="Count", value=1)
            return result
        if verdict == "busy":
            raise BatchNotDone(f"batch {batch} of {message_id} is being delivered elsewhere")
        try:
            return self._deliver_leased(body, deadline, result)
        except BatchNotDone:
            raise  # released already
        except Exception:
            # An error we did not expect: hand the batch back at once (its
            # claimed copies stay ours), SQS redelivers it.
            ledger.release(message_id, batch, done=False)
            raise

    def _deliver_leased(self, body: dict[str, Any], deadline: float | None, result: BatchResult) -> BatchResult:
        message_id, batch = body["message_id"], body["batch"]
        chat = self._chat_from(body["chat"])
        people = participants(chat.chat_id)
        everyone = recipients(people)  # one record per reachable person
        author = next((p for p in people if p.participant_key == body.get("author")), None)
        wanted = {p.participant_key: p for p in everyone if author is None or p.address_hash != author.address_hash}
        keys: list[str] = list(dict.fromkeys(body["recipients"]))
        targets = [wanted[k] for k in keys if k in wanted]
        result.skipped = len(keys) - len(targets)
        # SMS (issue 12): who gets a text (sms, both); mail only for who follows by mail.
        texted = [p for p in targets if sms_reachable(p)] if self._texts(body) else []
        targets = [p for p in targets if email_reachable(p)]
        if body["kind"] == "relay" and not body.get("private") and not body.get("announcement"):
            # Digest readers get this message in their next daily digest instead
            # (the chat's size counts everyone, as the settings page does).
            digest = {p.participant_key for p in targets if wants_digest(p, chat, len(everyone), self.settings)}
            if digest:
                self.digests.defer(chat, message_id, [p for p in targets if p.participant_key in digest])
                result.deferred = len(digest)
                targets = [p for p in targets if p.participant_key not in digest]
        now = clock.now()
        copies = BatchCopies(self.settings, self.store.bucket, body, chat, people, everyone, targets, now)
        ctx, copy_for = copies.context, copies.copy_for

        work = deque(targets)
        lock = threading.Condition()
        pacer = self.pacer
        workers = max(1, min(self.settings.send_concurrency, len(targets), IN_FLIGHT_BUDGET // (4 * copies.size)))
        chunk = max(1, min(CLAIM_CHUNK, -(-len(targets) // workers)))
        # Sent or sending copies without their record: never more than `workers`
        # (what a crash can repeat). Records go out in groups of `flush_at`.
        flush_at = max(1, workers // 2)
        pending: list[tuple[Participant, str]] = []
        unrecorded = 0

        def flush(group: list[tuple[Participant, str]]) -> None:
            nonlocal unrecorded
            try:
                if group:
                    ledger.record_sent(message_id, batch, chat.chat_id, now, group)
            finally:
                with lock:
                    unrecorded -= len(group)
                    lock.notify_all()

        def take_pending() -> list[tuple[Participant, str]]:
            group = pending[:]
            pending.clear()
            return group

        def send(p: Participant) -> None:
            nonlocal unrecorded
            with lock:
                while unrecorded >= workers:
                    # Only a whole group: the copies still sending (or being
                    # recorded) wake us as they finish, and the one that fills a
                    # group writes it. Flushing whatever is pending here wrote one
                    # record a call (92 BatchWriteItem for 100 copies).
                    if len(pending) >= flush_at:
                        group = take_pending()
                        lock.release()
                        try:
                            flush(group)
                        finally:
                            lock.acquire()
                    else:
                        lock.wait()
                unrecorded += 1
            recorded = False
            try:
                to = transport_address(p.email)
                try:
                    if to is None:
                        raise SendFailed("NeedsSmtpUtf8", "permanent")  # SES cannot send to it
                    ses_id = self.mailer.send_raw(sender=ctx.relay_address, recipient=to, raw=copy_for(p))
                except SendFailed as exc:
                    with lock:
                        if exc.kind == "permanent":
                            result.failed += 1
                        else:
                            result.retry.append(p.participant_key)
                            if exc.kind == "deployment":
                                result.halted = exc.code
                    if exc.kind == "permanent":
                        logger.warning(
                            "permanent send failure",
                            extra={"message_id": message_id, "participant": p.participant_key, "code": exc.code},
                        )
                        ledger.record_failed(message_id, p, exc.code)
                    return
                with lock:
                    result.sent += 1
                    pending.append((p, ses_id))
                    recorded = True  # counted in `unrecorded` until its group is written
                    group = take_pending() if len(pending) >= flush_at else []
                if group:
                    flush(group)
            finally:
                if not recorded:
                    with lock:
                        unrecorded -= 1
                        lock.notify_all()

        def worker() -> None:
            while True:
                with lock:
                    if result.halted or not work:
                        return
                    if deadline is not None and time.time() >= deadline:
                        return
                    take = [work.popleft() for _ in range(min(chunk, len(work)))]
                # Tokens first, then the claim: a copy this batch claimed is
                # always sent, never handed to a continuation batch.
                for n in range(len(take)):
                    if not pacer.acquire(deadline):
                        with lock:
                            work.extendleft(reversed(take[n:]))
                        take = take[:n]
                        break
                if not take:
                    return
                mine = ledger.claim_copies(message_id, batch, take, chat.chat_id, now)
                with lock:
                    result.skipped += len(take) - len(mine)
                for n, p in enumerate(mine):
                    if result.halted:
                        # Parked: these stay claimed by this batch, whose retry sends them.
                        with lock:
                            result.retry.extend(q.participant_key for q in mine[n:])
                        break
                    send(p)

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for future in [pool.submit(worker) for _ in range(workers)]:
                    future.result()
        finally:
            # Whatever stopped the batch, write the records of what went out.
            with lock:
                group = take_pending()
            if group:
                flush(group)

        texts_left: list[str] = []
        if texted and not result.halted:
            texts_left = self._send_texts(body, chat, texted, copies.author_name, now, deadline, result)
        if (work or texts_left) and not result.halted:
            # Out of time: the untouched rest goes on in a batch of its own.
            result.continued = list(dict.fromkeys([p.participant_key for p in work] + texts_left))
            rest = {**body, "batch": f"{batch}+{len(targets) - len(work)}", "recipients": result.continued}
            self.queue.send_all([rest])
            metrics.add_metric(name="BatchesContinued", unit="Count", value=1)
        ledger.release(message_id, batch, done=not result.retry and not result.halted)
        metrics.add_metric(name="CopiesSent", unit="Count", value=result.sent)
        if result.failed:
            metrics.add_metric(name="CopiesFailed", unit="Count", value=result.failed)
        if result.halted:
            metrics.add_metric(name="SendsHalted", unit="Count", value=1)
            logger.error("SES refused the deployment's sends; batch parked", extra={"code": result.halted})
            raise BatchNotDone(f"SES {result.halted}: batch {batch} of {message_id} parked for retry")
        if result.retry:
            metrics.add_metric(name="CopiesRetried", unit="Count", value=len(result.retry))
            raise BatchNotDone(f"{len(result.retry)} copies of {message_id} to retry")
        return result
