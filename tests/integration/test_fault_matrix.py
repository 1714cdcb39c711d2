"""The fault matrix (issue 14, item 2): one row per fault, each ending in R8/R9's check.

Each row injects one fault into the public paths (the SES handler, the SQS
``deliver`` handler, the Scheduler target), lets AWS do what it does next (Lambda
retries the event, SQS redelivers the batch, an operator redrives the DLQ) and
asserts, through what SES sent and the recorded items, that *every active recipient
ends with exactly one copy or a recorded permanent failure, and the inbound message
in exactly one R9 state* (relayed, rejected with a reason, or parked for retry).

How faults are made: AWS errors are real botocore ``ClientError``s raised from
``BaseClient._make_api_call`` (above botocore's own retries, so they are what the
code sees after botocore gave up); concurrency is two real threads against the
in-process moto; crashes are the ``Killed`` BaseException (nothing after the point
runs and no ``except Exception`` can catch it), after which every in-process cache
is dropped as a new container would have it. A real SIGKILLed process was not
used: everything a retry reads lives in DynamoDB, S3 and SQS, which ``Killed``
leaves exactly as a dead process would.

The table in ``docs/fault-matrix.md`` is written from this run's observations:
``MUSTER_WRITE_FAULT_MATRIX=1 .venv/bin/python -m pytest -q tests/integration/test_fault_matrix.py``.
Every row checks its committed line; a complete run checks the whole document.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from infra.twin.smtp import ses_event
from tests.integration.faults import DOC as MATRIX_DOC
from tests.integration.faults import (
    WRITE_ENV,
    Killed,
    Matrix,
    Row,
    aws_fault,
    client_error,
    committed_text,
    expire_leases,
    final_state,
    judge,
    lapse_in_progress,
    restart,
    with_table,
)
from tests.integration.test_relay import ORGANIZER, addr, chat, mail  # noqa: F401  (chat is a fixture)
from tests.integration.world import World, event_body, signup_body

ACTIVE = [ORGANIZER, addr("ann1"), addr("ann2"), addr("ann3")]  # ann0 writes; ann4-6 are inactive

ROWS = {
    r.id: r
    for r in [
        # -- duplicates and concurrency
        Row(
            "C1",
            "the same SES event invoked twice at once",
            "inbound handler, while the first is deciding",
            "threads",
            "Lambda retries the one that was refused",
        ),
        Row(
            "C2",
            "one SQS batch delivered twice at once",
            "deliver, while the first is sending",
            "threads",
            "SQS redelivers the one that was refused",
        ),
        Row(
            "C3",
            "the open_chat schedule fired twice at once",
            "ChatService.update, both read the chat before saving",
            "threads",
            "both finish; the queue is drained",
        ),
        # -- errors
        Row("E1", "SES `Throttling`", "the first SendEmail of the batch", "error", "SQS redelivers the batch"),
        Row(
            "E2",
            "SES `TooManyRequestsException`",
            "the first SendEmail of the batch",
            "error",
            "SQS redelivers the batch",
        ),
        Row(
            "E3",
            "SES `MessageRejected` (one recipient's address)",
            "every SendEmail to ann2",
            "error",
            "SQS redelivers nothing",
        ),
        Row(
            "E4",
            "SES `AccountSendingPausedException`",
            "every SendEmail until the operator acts",
            "error",
            "SQS gives up after 5 receives (DLQ); the operator redrives",
        ),
        Row(
            "E5",
            "DynamoDB `ConditionalCheckFailedException` (a real one)",
            "a copy's claim, held by a crashed batch, met by the same recipients queued again under another name",
            "Killed + error",
            "the crashed batch's lease lapses; SQS redelivers it",
        ),
        Row(
            "E6",
            "DynamoDB `ProvisionedThroughputExceededException`",
            "a send thread's claims (TransactWriteItems TO#)",
            "error",
            "SQS redelivers the batch",
        ),
        Row(
            "E7",
            "DynamoDB `ProvisionedThroughputExceededException`",
            "the records of sent copies, right after SES accepted them (BatchWriteItem TO#)",
            "error",
            "none needed",
        ),
        Row(
            "E8",
            "DynamoDB `TransactionConflict` (TransactionCanceled)",
            "the transaction that finishes the log entry and counts the stats",
            "error",
            "Lambda retries the inbound event",
        ),
        Row("E9", "S3 `NoSuchKey` for the raw mail", "the download of inbound/<id>", "error", "none needed"),
        Row(
            "E10",
            "SQS `SendMessageBatch` refused after the render was stored",
            "the fan-out's queueing",
            "error",
            "Lambda retries the inbound event",
        ),
        # -- crashes in the inbound handler (relay_one)
        Row(
            "K1",
            "crash before the claim",
            "relay_one: before the log entry (`relaying`) is written",
            "Killed",
            "the in-progress record lapses; Lambda retries",
        ),
        Row(
            "K2",
            "crash after the claim",
            "relay_one: log entry `relaying`, fan-out not queued",
            "Killed",
            "the in-progress record lapses; Lambda retries",
        ),
        Row(
            "K3",
            "crash between a send and its record",
            "relay_one: fan-out queued, log entry not finished",
            "Killed",
            "the in-progress record lapses; Lambda retries",
        ),
        Row(
            "K4",
            "crash after the last record",
            "relay_one: log entry `done`, idempotency record not completed",
            "Killed",
            "the in-progress record lapses; Lambda retries",
        ),
        # -- crashes in deliver
        Row(
            "K5",
            "crash before the claim",
            "deliver: before the first claim",
            "Killed",
            "the lease lapses; SQS redelivers",
        ),
        Row(
            "K6",
            "crash after the claim",
            "deliver: a send thread's copies claimed (one transaction), none sent",
            "Killed",
            "the lease lapses; SQS redelivers",
        ),
        Row(
            "K7",
            "crash between a send and its record",
            "deliver: third copy accepted by SES, not recorded",
            "Killed",
            "the lease lapses; SQS redelivers",
        ),
        Row(
            "K8",
            "crash after the last record",
            "deliver: every copy recorded, lease not released",
            "Killed",
            "the lease lapses; SQS redelivers",
        ),
    ]
}


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    m = Matrix(ROWS)
    yield m
    if not m.complete():
        return  # a partial run (one row, one xdist worker's share): each row checked its own line
    text = with_table(committed_text(), m.table())
    if os.environ.get(WRITE_ENV):
        MATRIX_DOC.write_text(text, encoding="utf-8")
    else:
        assert committed_text() == text, "docs/fault-matrix.md differs from this run: regenerate it"


# -- helpers ---------------------------------------------------------------------


def chat_id_of(chat: dict[str, Any]) -> str:
    return str(chat["address"].split("@")[0].rsplit("-", 1)[-1])


def inbound_event(world: World, chat: dict[str, Any], subject: str, *, store: bool = True) -> dict[str, Any]:
    """What SES's receipt rule does for one message from ann0: the S3 action
    (unless ``store`` is False), then the Lambda action's event."""
    raw = mail(addr("ann0"), chat["address"], subject=subject)
    ses_id = uuid.uuid4().hex
    if store:
        boto3.client("s3").put_object(Bucket=world.settings.mail_bucket, Key=f"inbound/{ses_id}", Body=raw)
    verdicts = {"spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "spam": "PASS", "virus": "PASS"}
    event = ses_event(
        message_id=ses_id,
        stored=raw,
        mail_from=addr("ann0"),
        recipients=[chat["address"]],
        verdicts=verdicts,
        when=datetime.now(UTC),
    )
    world.last_ses_event = event
    return event


def post(world: World, chat: dict[str, Any], subject: str) -> Any:
    return world.client.lambda_.invoke("inbound_email", inbound_event(world, chat, subject)).payload


def settle(world: World, chat: dict[str, Any], subject: str, *, repeats: int = 0) -> str:
    return judge(final_state(world, chat_id_of(chat), subject, ACTIVE), repeats=repeats)


def crash_at(
    world: World,
    target: str,
    *,
    after: bool = False,
    when: Callable[[int], bool] = lambda n: n == 1,
) -> None:
    """Kill the process at the call of ``target`` for which ``when(call number)``
    holds: before it runs, or with ``after``, once it has run."""
    import pkgutil

    owner_name, _, attr = target.rpartition(".")
    real = getattr(pkgutil.resolve_name(owner_name), attr)
    calls: list[int] = []

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if when(len(calls)):
            if after:
                real(*args, **kwargs)
            raise Killed
        return real(*args, **kwargs)

    world.patch(target, dying)


def queued_bodies(world: World) -> list[dict[str, Any]]:
    import json

    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=world.settings.delivery_queue)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def send_email_to(address: str) -> Callable[[dict[str, Any]], bool]:
    return lambda params: params.get("Destination", {}).get("ToAddresses") == [address]


def any_send(params: dict[str, Any]) -> bool:
    return "Destination" in params and "Content" in params


def copy_key(params: dict[str, Any], key: str = "Item") -> bool:
    return str(params.get(key, {}).get("sk", {}).get("S", "")).startswith("TO#")


def copy_claims(params: dict[str, Any]) -> bool:
    """A TransactWriteItems that claims copies (fan-out claims a send thread's next few at once)."""
    return any(copy_key(item.get("Put", {})) for item in params.get("TransactItems", []))


def copy_records(params: dict[str, Any]) -> bool:
    """A BatchWriteItem that records sent copies."""
    return any(
        copy_key(request.get("PutRequest", {}))
        for requests in params.get("RequestItems", {}).values()
        for request in requests
    )


# -- C: duplicates and concurrency ----------------------------------------------------


def test_c1_the_same_ses_event_twice_at_once(world: World, chat: dict, matrix: Matrix) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    from chalicelib.blueprints import inbound
    from chalicelib.services.relay import RelayService

    event = inbound_event(world, chat, "Twice at once")
    deciding, second_done = threading.Event(), threading.Event()
    real = RelayService._decide

    def slow_decide(self: RelayService, *args: Any) -> Any:
        if not deciding.is_set():
            deciding.set()
            assert second_done.wait(60)
        return real(self, *args)

    world.patch("chalicelib.services.relay.RelayService._decide", slow_decide)
    results: dict[str, Any] = {}

    def invoke(name: str) -> None:
        try:
            results[name] = inbound.relay().handle_ses_event(event)
        except Exception as exc:
            results[name] = exc
        finally:
            if name == "second":
                second_done.set()

    first = threading.Thread(target=invoke, args=("first",))
    first.start()
    assert deciding.wait(60)
    invoke("second")
    first.join(120)
    assert results["first"] == ["relayed"]
    assert isinstance(results["second"], IdempotencyAlreadyInProgressError)
    assert inbound.relay().handle_ses_event(event) == ["relayed"]  # Lambda's retry of the refused one
    world.drain()
    matrix.record("C1", settle(world, chat, "Twice at once"))


def test_c2_one_sqs_batch_twice_at_once(world: World, chat: dict, matrix: Matrix) -> None:
    from chalicelib.adapters.mail import Mailer
    from chalicelib.blueprints import delivery
    from chalicelib.services.fanout import BatchNotDone

    post(world, chat, "Batch twice")
    (body,) = [b for b in queued_bodies(world) if b["kind"] == "relay"]
    sending, second_done = threading.Event(), threading.Event()
    real = Mailer.send_raw

    def slow_send(self: Mailer, **kwargs: Any) -> str:
        if not sending.is_set():
            sending.set()
            assert second_done.wait(60)
        return real(self, **kwargs)

    world.patch("chalicelib.adapters.mail.Mailer.send_raw", slow_send)
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            results[name] = delivery.fanout().deliver(body)
        except Exception as exc:
            results[name] = exc

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert sending.wait(60)
    run("second")
    second_done.set()
    first.join(120)
    assert isinstance(results["second"], BatchNotDone)  # the lease is held: SQS will redeliver it
    assert results["first"].sent == len(ACTIVE)
    assert delivery.fanout().deliver(body).duplicate  # SQS's redelivery of the refused one
    world.drain()  # the queue's own copy of the batch: a duplicate too
    matrix.record("C2", settle(world, chat, "Batch twice"))


def test_c3_open_chat_fired_twice_at_once(world: World, matrix: Matrix) -> None:
    import json

    from chalicelib.blueprints import scheduling
    from chalicelib.models import Chat

    world.put_event("e1", event_body(start_in_hours=100))
    for n in range(3):
        world.put_signup("e1", f"s{n}", signup_body(n))
    world.advance(53)  # the opening is due
    (schedule,) = world.schedules()
    chat_id = json.loads(schedule["Target"]["Input"])["chat_id"]
    barrier = threading.Barrier(2, timeout=60)
    local = threading.local()
    real = Chat.save

    def racing_save(self: Chat, *args: Any, **kwargs: Any) -> Any:
        if getattr(local, "racing", False):
            local.racing = False
            barrier.wait()  # both read the chat at the same version before either saves
        return real(self, *args, **kwargs)

    world.patch("chalicelib.models.Chat.save", racing_save)
    states: list[Any] = []

    def fire() -> None:
        local.racing = True
        states.append(scheduling.chats().fire(chat_id, "open"))

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert states == ["open", "open"]
    world.drain()
    kickoffs = Counter(s.to for s in world.sent())
    expected = [ORGANIZER, addr("ann0"), addr("ann1"), addr("ann2")]
    assert kickoffs == Counter(expected), kickoffs
    assert world.chat("e1", "t1")["state"] == "open"
    matrix.record("C3", f"opened once: {sum(1 for a in expected if kickoffs[a] == 1)}/{len(expected)} one kickoff")


# -- E: errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "code"), [("E1", "Throttling"), ("E2", "TooManyRequestsException")])
def test_e1_e2_ses_throttling_retries_the_copy(world: World, chat: dict, matrix: Matrix, row: str, code: str) -> None:
    hits = aws_fault(
        world, "SendEmail", client_error(code, "Maximum sending rate exceeded.", "SendEmail"), when=any_send
    )
    post(world, chat, f"Throttled {code}")
    world.drain()
    assert len(hits) == 1
    matrix.record(row, settle(world, chat, f"Throttled {code}"))


def test_e3_ses_message_rejected_is_recorded_for_that_recipient(world: World, chat: dict, matrix: Matrix) -> None:
    aws_fault(
        world,
        "SendEmail",
        client_error("MessageRejected", "Address blacklisted.", "SendEmail"),
        when=send_email_to(addr("ann2")),
        times=99,
    )
    post(world, chat, "Refused one")
    world.drain()
    matrix.record("E3", settle(world, chat, "Refused one"))


def test_e4_ses_sending_paused_parks_then_a_redrive_delivers(world: World, chat: dict, matrix: Matrix) -> None:
    sqs = boto3.client("sqs")
    aws_fault(
        world,
        "SendEmail",
        client_error("AccountSendingPausedException", "Sending is paused.", "SendEmail"),
        when=any_send,
        times=10_000,
    )
    post(world, chat, "Paused account")
    world.drain(max_rounds=30)
    parked = settle(world, chat, "Paused account")
    assert parked.startswith("parked in DLQ")
    restart(world)  # the operator resumes sending, then redrives the DLQ
    dlq = sqs.get_queue_url(QueueName=world.settings.delivery_queue + "-dlq")["QueueUrl"]
    main = sqs.get_queue_url(QueueName=world.settings.delivery_queue)["QueueUrl"]
    for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]:
        sqs.send_message(QueueUrl=main, MessageBody=m["Body"])
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
    world.drain()
    matrix.record("E4", f"{parked}; after the redrive: {settle(world, chat, 'Paused account')}")


def test_e5_a_real_conditional_check_failure_on_a_claim(world: World, chat: dict, matrix: Matrix) -> None:
    from chalicelib.blueprints import delivery
    from chalicelib.services import ledger

    with world.settings_override(MUSTER_SEND_CONCURRENCY="1"):
        post(world, chat, "Claimed elsewhere")
        (body,) = [b for b in queued_bodies(world) if b["kind"] == "relay"]
        crash_at(world, "chalicelib.services.ledger.claim_copies", after=True)
        with pytest.raises(Killed):
            world.drain()
        restart(world)
        # The same recipients queued again under another batch name (a fan-out
        # resumed with other batch sizes): their claims are the crashed batch's
        # (one send thread claimed them all at once), so DynamoDB's condition
        # fails for every one of them and the transaction is cancelled.
        claimed: list[list[Any]] = []
        real = ledger.claim_copies

        def spy(*args: Any) -> list[Any]:
            claimed.append(real(*args))
            return claimed[-1]

        world.patch("chalicelib.services.ledger.claim_copies", spy)
        again = delivery.fanout().deliver({**body, "batch": body["batch"] + "-again"})
        assert claimed and not any(claimed) and again.sent == 0
        expire_leases(world)
        world.drain()
    matrix.record("E5", settle(world, chat, "Claimed elsewhere"))


def test_e6_throughput_exceeded_on_a_claim(world: World, chat: dict, matrix: Matrix) -> None:
    hits = aws_fault(
        world,
        "TransactWriteItems",
        client_error("ProvisionedThroughputExceededException", operation="TransactWriteItems"),
        when=copy_claims,
    )
    with world.settings_override(MUSTER_SEND_CONCURRENCY="1"):  # one thread claims every copy at once
        post(world, chat, "Claim throttled")
        world.drain()
    assert len(hits) == 1
    matrix.record("E6", settle(world, chat, "Claim throttled"))


def test_e7_throughput_exceeded_on_a_record_after_the_send(world: World, chat: dict, matrix: Matrix) -> None:
    hits = aws_fault(
        world,
        "BatchWriteItem",
        client_error("ProvisionedThroughputExceededException", operation="BatchWriteItem"),
        when=copy_records,
    )
    post(world, chat, "Record throttled")
    world.drain()
    assert len(hits) == 1
    matrix.record("E7", settle(world, chat, "Record throttled"))


def test_e8_transaction_conflict_while_finishing(world: World, chat: dict, matrix: Matrix) -> None:
    from pynamodb.exceptions import TransactWriteError

    from chalicelib.models import ChatStats

    conflict = client_error(
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]",
        "TransactWriteItems",
        CancellationReasons=[{"Code": "TransactionConflict", "Message": "Transaction is ongoing"}, {"Code": "None"}],
    )
    aws_fault(world, "TransactWriteItems", conflict)
    with pytest.raises(TransactWriteError) as raised:
        post(world, chat, "Conflicted")
    assert [r.code for r in raised.value.cancellation_reasons if r and r.code != "None"] == ["TransactionConflict"]
    assert world.retry() == {"outcomes": ["relayed"]}
    world.drain()
    assert ChatStats.get(f"CH#{chat_id_of(chat)}", "STATS").messages == 1
    matrix.record("E8", settle(world, chat, "Conflicted"))


def test_e9_the_raw_mail_is_missing_from_s3(world: World, chat: dict, matrix: Matrix) -> None:
    event = inbound_event(world, chat, "Vanished", store=False)
    assert world.client.lambda_.invoke("inbound_email", event).payload == {"outcomes": ["malformed"]}
    world.drain()
    matrix.record("E9", settle(world, chat, "Vanished"))


def test_e10_sqs_refuses_the_fan_out_after_the_render_was_stored(world: World, chat: dict, matrix: Matrix) -> None:
    aws_fault(
        world,
        "SendMessageBatch",
        client_error("ServiceUnavailable", "Service unavailable", "SendMessageBatch"),
        when=lambda p: '"kind":"relay"' in str(p),
    )
    with pytest.raises(Exception, match="ServiceUnavailable"):
        post(world, chat, "Queue down")
    stored = boto3.client("s3").list_objects_v2(Bucket=world.settings.mail_bucket, Prefix="outbound/")
    assert stored.get("KeyCount") == 1  # the render is in S3; only the queueing failed
    assert world.retry() == {"outcomes": ["relayed"]}
    world.drain()
    matrix.record("E10", settle(world, chat, "Queue down"))


# -- K: crashes -----------------------------------------------------------------------

INBOUND_CRASHES = {
    "K1": ("chalicelib.models.MessageLog.save", False),
    "K2": ("chalicelib.services.relay.RelayService._fan_out", False),
    "K3": ("chalicelib.services.relay.RelayService._fan_out", True),
    "K4": ("chalicelib.services.relay.RelayService._finish", True),
}


@pytest.mark.parametrize("row", list(INBOUND_CRASHES))
def test_k1_k4_a_crash_in_the_inbound_handler_then_lambdas_retry(
    world: World, chat: dict, matrix: Matrix, row: str
) -> None:
    target, after = INBOUND_CRASHES[row]
    subject = f"Inbound crash {row}"
    crash_at(world, target, after=after)
    with pytest.raises(Killed):
        post(world, chat, subject)
    restart(world)
    lapse_in_progress(world)  # Lambda's retry comes after the dead invocation's timeout
    assert world.retry() == {"outcomes": ["relayed"]}
    assert world.retry() == {"outcomes": ["relayed"]}  # and a late duplicate changes nothing
    world.drain()
    matrix.record(row, settle(world, chat, subject))


DELIVERY_CRASHES = {
    "K5": ("chalicelib.services.ledger.claim_copies", False, 1, 0),
    "K6": ("chalicelib.services.ledger.claim_copies", True, 1, 0),
    "K7": ("chalicelib.adapters.mail.Mailer.send_raw", True, 3, 1),
    "K8": ("chalicelib.services.ledger.release", False, 1, 0),
}


@pytest.mark.parametrize("row", list(DELIVERY_CRASHES))
def test_k5_k8_a_crash_in_deliver_then_sqs_redelivers(world: World, chat: dict, matrix: Matrix, row: str) -> None:
    target, after, nth, repeats = DELIVERY_CRASHES[row]
    subject = f"Delivery crash {row}"
    with world.settings_override(MUSTER_SEND_CONCURRENCY="1"):
        post(world, chat, subject)
        crash_at(world, target, after=after, when=lambda n: n == nth)
        with pytest.raises(Killed):
            world.drain()
        restart(world)
        expire_leases(world)
        world.drain()
    matrix.record(row, settle(world, chat, subject, repeats=repeats))


def test_the_committed_matrix_has_exactly_these_rows() -> None:
    from tests.integration.faults import committed_lines

    if os.environ.get(WRITE_ENV):
        pytest.skip("the table is being regenerated by this run")
    assert list(committed_lines()) == list(ROWS)
