"""A delivery batch's exactly-once bookkeeping (R4, R9): the batch's lease, each
copy's claim and its record. :mod:`chalicelib.services.fanout` decides what to
send and when; this module is every DynamoDB write that makes a send happen once.

- **Lease** (``MSG#<message id>``/``B#<batch>``): one conditional write per batch
  delivery -- "go" (ours), "done" (a duplicate after the batch finished) or
  "busy" (another delivery holds it). A crashed holder's lease lapses after
  ``LEASE_SECONDS``; a batch that stops early releases it at once.
- **Claim** (``MSG#<message id>``/``TO#<participant key>``, ``sending``): absent,
  or a claim of this same batch left by a crash. A recipient someone else
  claimed or already got is skipped, however the batch reached us. Claims go
  several at a time in one TransactWriteItems with the same condition per item.
- **Record** (the same item, ``sent`` with the SES MessageId, or ``failed`` with
  the refusal's code): written in groups with BatchWriteItem and retried before
  the batch gives up, since until a record lands a redelivery would send its copy
  again (SES has no idempotency key).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.models import BatchClaim, Delivery, Participant, claim_condition, claim_once, transactions

# A crashed invocation cannot outlive its Lambda timeout; after that its lease lapses.
LEASE_SECONDS = 90
# A sent copy's record is retried this often (0.1 s, 0.2 s, ... apart) before the
# batch fails and a redelivery would repeat the copy (issue 14's fault matrix, E7).
RECORD_ATTEMPTS = 5
RECORD_DAYS = 90


def lease(message_id: str, batch: str) -> str:
    """One conditional write: "go" (ours), "done" (a duplicate) or "busy"."""
    now = int(clock.now().timestamp())
    claim = BatchClaim(
        f"MSG#{message_id}",
        f"B#{batch}",
        state="working",
        lease_until=now + LEASE_SECONDS,
        expires=timedelta(days=RECORD_DAYS),
    )
    try:
        claim.save(
            condition=BatchClaim.pk.does_not_exist() | ((BatchClaim.state != "done") & (BatchClaim.lease_until < now))
        )
        return "go"
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
    # Only duplicates and races pay for this read.
    old = BatchClaim.get(f"MSG#{message_id}", f"B#{batch}", consistent_read=True)
    return "done" if old.state == "done" else "busy"


def release(message_id: str, batch: str, *, done: bool) -> None:
    # Lease 0 releases the batch at once so the redelivery can take over.
    BatchClaim(
        f"MSG#{message_id}",
        f"B#{batch}",
        state="done" if done else "working",
        lease_until=0,
        expires=timedelta(days=RECORD_DAYS),
    ).save()


def copy_record(
    message_id: str, batch: str, p: Participant, chat_id: str, now: datetime, *, ses_id: str | None = None
) -> Delivery:
    """The copy record: ``sending`` while claimed, ``sent`` with its SES id once out."""
    return Delivery(
        f"MSG#{message_id}",
        f"TO#{p.participant_key}",
        chat_id=chat_id,
        participant_key=p.participant_key,
        status="sending" if ses_id is None else "sent",
        batch=batch,
        at=now,
        ses_message_id=ses_id,
        expires=timedelta(days=RECORD_DAYS),
    )


def claim_copy(message_id: str, batch: str, p: Participant, chat_id: str, now: datetime) -> bool:
    """Claim one (message, recipient) pair; False if it is someone else's or done."""
    return claim_once(copy_record(message_id, batch, p, chat_id, now), batch)


def claim_copies(
    message_id: str, batch: str, people: list[Participant], chat_id: str, now: datetime
) -> list[Participant]:
    """Claim several pairs in one TransactWriteItems (each with the same
    condition as :func:`claim_copy`); the ones now ours. A transaction is all
    or nothing: when it is cancelled, the pairs whose condition failed are
    someone else's, and the rest are claimed one by one (a duplicate fan-out or
    a conflict: rare, and correct either way)."""
    if len(people) == 1:
        return people if claim_copy(message_id, batch, people[0], chat_id, now) else []
    try:
        with TransactWrite(connection=transactions()) as tx:
            for p in people:
                tx.save(copy_record(message_id, batch, p, chat_id, now), condition=claim_condition(Delivery, batch))
        return list(people)
    except TransactWriteError as exc:
        reasons = list(exc.cancellation_reasons or [])
        if exc.cause_response_code != "TransactionCanceledException" or len(reasons) != len(people):
            raise
    return [
        p
        for p, reason in zip(people, reasons, strict=True)
        if not (reason is not None and reason.code == "ConditionalCheckFailed")
        and claim_copy(message_id, batch, p, chat_id, now)
    ]


def with_retries(write: Callable[[], None], retry_on: tuple[type[Exception], ...]) -> None:
    """``write()``, tried ``RECORD_ATTEMPTS`` times in all (0.1 s, 0.2 s, ... apart)
    while it raises one of ``retry_on``: for a sent copy's record, which a
    redelivery needs to find, on top of botocore's and PynamoDB's own retries."""
    for attempt in range(RECORD_ATTEMPTS):
        try:
            write()
            return
        except retry_on:
            if attempt == RECORD_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * 2**attempt)


def record_sent(message_id: str, batch: str, chat_id: str, now: datetime, sent: list[tuple[Participant, str]]) -> None:
    """Record sent copies and their SES ids: BatchWriteItem, 25 a call. Each
    item is one we claimed (``sending``, this batch), written whole. Until a
    record lands, a redelivery would send its copy again (SES has no
    idempotency key), so a failed write is retried here before the batch gives
    up (fault matrix E7)."""

    def write() -> None:
        with Delivery.batch_write() as writer:
            for p, ses_id in sent:
                writer.save(copy_record(message_id, batch, p, chat_id, now, ses_id=ses_id))

    with_retries(write, (PutError,))


def record_failed(message_id: str, p: Participant, code: str) -> None:
    """A recipient-specific refusal: the copy's record says so (R9)."""
    Delivery(f"MSG#{message_id}", f"TO#{p.participant_key}").update(
        actions=[
            Delivery.status.set("failed"),
            Delivery.ses_message_id.remove(),
            Delivery.reason.set(code),
        ]
    )
