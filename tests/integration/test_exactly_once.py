"""R8 and R9 under retries, crashes and outages, through the public paths.

Each test injects a failure (or kills the "process") at a stated point of the
SES handler or of ``deliver``, lets AWS do what it does next (Lambda retries the
same event, SQS redelivers, an operator redrives the DLQ) and asserts that every
active recipient ends with exactly one copy and the inbound message with exactly
one recorded outcome.
"""

from __future__ import annotations

import json
import pkgutil
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.models import BatchClaim, Delivery, MessageLog
from tests.integration.faults import expire_leases
from tests.integration.test_relay import ORGANIZER, addr, chat, mail  # noqa: F401  (chat is a fixture)
from tests.integration.world import World, event_body, signup_body

ACTIVE_OTHERS = [ORGANIZER, addr("ann1"), addr("ann2"), addr("ann3")]


class Killed(BaseException):
    """The process dies here: nothing after this point runs (not an Exception,
    so no handler in the code under test can catch it)."""


def copies(world: World, subject: str) -> Counter[str]:
    """How many copies of the message with ``subject`` each address received."""
    return Counter(s.to for s in world.sent() if subject in str(s.message["Subject"]))


def logs(world: World) -> list[MessageLog]:
    return [m for m in MessageLog.scan() if m.sk.startswith("M#")]


def post(world: World, chat: dict[str, Any], subject: str, sender: str = "ann0", **headers: str) -> Any:
    return world.receive(
        mail(addr(sender), chat["address"], subject=subject, **headers), sender=addr(sender), to=[chat["address"]]
    )


def crash_then_redeliver(world: World) -> None:
    """Deliver until the injected crash, then (injections gone, the batch's lease
    lapsed) again: SQS redelivering the batch to a new container."""
    with pytest.raises(Killed):
        world.drain()
    world.unpatch()
    expire_leases(world)
    world.drain()


def fail_first(
    world: World,
    target: str,
    *,
    when: Callable[..., bool] = lambda *args, **kwargs: True,
    partly: Callable[..., Any] | None = None,
    crash: bool = False,
) -> None:
    """Patch ``target`` so that its first call matching ``when`` fails (after
    doing ``partly(real, ...)``, if given, as a half-done call would), with an
    error or, with ``crash``, by killing the process; every other call runs the
    real thing."""
    real = pkgutil.resolve_name(target)
    failed: list[bool] = []

    def once(*args: Any, **kwargs: Any) -> Any:
        if not failed and when(*args, **kwargs):
            failed.append(True)
            if partly is not None:
                partly(real, *args, **kwargs)
            if crash:
                raise Killed
            raise RuntimeError(f"injected failure in {target}")
        return real(*args, **kwargs)

    world.patch(target, once)


def fail_queue_once(world: World) -> None:
    """SQS refuses the next SendMessageBatch, then works again."""
    fail_first(world, "chalicelib.adapters.queue.DeliveryQueue.send_all")


def queue_url(world: World, dlq: bool = False) -> str:
    name = world.settings.delivery_queue + ("-dlq" if dlq else "")
    return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


# -- 1. a retried inbound invocation ---------------------------------------------


def test_a_failure_after_the_fan_out_then_lambdas_retry_sends_nothing_twice(world: World, chat: dict) -> None:
    fail_first(world, "chalicelib.services.relay.metrics.add_metric", when=lambda **kw: kw["name"] == "FanOutSize")
    with pytest.raises(RuntimeError):
        post(world, chat, "Retry after fan-out")
    assert world.retry() == {"outcomes": ["relayed"]}
    world.drain()

    assert copies(world, "Retry after fan-out") == Counter(ACTIVE_OTHERS)
    assert [m.outcome for m in logs(world)] == ["relayed"]


def test_a_failure_while_finishing_the_log_resumes_instead_of_relaying_again(world: World, chat: dict) -> None:
    from chalicelib.models import ChatStats

    fail_first(world, "chalicelib.services.relay.RelayService._finish")
    with pytest.raises(RuntimeError):
        post(world, chat, "Resume me")
    world.retry()
    world.retry()  # and once more after it finished: nothing changes
    world.drain()

    assert copies(world, "Resume me") == Counter(ACTIVE_OTHERS)
    assert [(m.outcome, m.state) for m in logs(world)] == [("relayed", "done")]
    assert ChatStats.get(f"CH#{chat['address'].split('@')[0].rsplit('-', 1)[-1]}", "STATS").messages == 1


def test_a_partial_sqs_send_then_a_retry_delivers_each_copy_once(world: World, chat: dict) -> None:
    def relay_batches(queue: Any, bodies: list[dict[str, Any]]) -> bool:
        return bool(bodies) and bodies[0].get("kind") == "relay"

    def first_two(real: Callable[..., None], queue: Any, bodies: list[dict[str, Any]]) -> None:
        real(queue, bodies[:2])  # SQS took two entries and refused the rest

    with world.settings_override(MUSTER_BATCH_SIZE="1"):
        fail_first(world, "chalicelib.adapters.queue.DeliveryQueue.send_all", when=relay_batches, partly=first_two)
        with pytest.raises(RuntimeError):
            post(world, chat, "Partial queue")
        assert world.retry() == {"outcomes": ["relayed"]}
        world.drain()

    assert copies(world, "Partial queue") == Counter(ACTIVE_OTHERS)
    assert len(logs(world)) == 1


def test_a_reply_citing_a_non_ascii_message_id_is_relayed_once_and_logged(world: World, chat: dict) -> None:
    raw = mail(addr("ann0"), chat["address"], subject="Odd reply").replace(
        b"Subject: Odd reply", b"Subject: Odd reply\r\nIn-Reply-To: <abc\xff@muster.test>"
    )
    outcome = world.receive(raw, sender=addr("ann0"), to=[chat["address"]])
    world.drain()

    assert outcome == {"outcomes": ["relayed"]}
    assert copies(world, "Odd reply") == Counter(ACTIVE_OTHERS)
    assert [m.outcome for m in logs(world)] == ["relayed"]


# -- 2 and 3. crashes inside a delivery batch, and a DLQ redrive --------------------


def _kill_on_send(world: World, *, after: int, before_record: bool) -> list[str]:
    """Kill the delivery "process" at send number ``after + 1`` (before it goes
    out), or, with ``before_record``, right after send number ``after`` went out
    and before it was recorded."""
    from chalicelib.adapters.mail import Mailer

    real = Mailer.send_raw
    sent: list[str] = []
    dead: list[bool] = []

    def send(self: Mailer, *, sender: str, recipient: str, raw: bytes) -> str:
        if dead:
            raise Killed
        if not before_record and len(sent) == after:
            dead.append(True)
            raise Killed
        ses_id = real(self, sender=sender, recipient=recipient, raw=raw)
        sent.append(recipient)
        if before_record and len(sent) == after:
            dead.append(True)
            raise Killed
        return ses_id

    world.patch("chalicelib.adapters.mail.Mailer.send_raw", send)
    return sent


@pytest.mark.parametrize("before_record", [False, True], ids=["between-copies", "between-send-and-record"])
def test_a_crash_in_the_middle_of_a_batch_repeats_at_most_the_copy_in_flight(
    world: World, chat: dict, before_record: bool
) -> None:
    with world.settings_override(MUSTER_SEND_CONCURRENCY="1"):
        post(world, chat, "Crash mid batch")
        _kill_on_send(world, after=2, before_record=before_record)
        crash_then_redeliver(world)

    got = copies(world, "Crash mid batch")
    assert set(got) == set(ACTIVE_OTHERS)
    repeated = [to for to, n in got.items() if n > 1]
    # Killed between two copies: nobody twice. Killed between a send and its
    # record: only that one copy can go out again (the bound in the docs).
    assert len(repeated) == (1 if before_record else 0)
    assert all(n <= 2 for n in got.values())


def test_a_dlq_redrive_after_a_crash_sends_no_copy_twice(world: World, chat: dict) -> None:
    sqs = boto3.client("sqs")
    with world.settings_override(MUSTER_SEND_CONCURRENCY="1"):
        post(world, chat, "Redrive me")
        bodies = [
            m["Body"]
            for m in sqs.receive_message(QueueUrl=queue_url(world), MaxNumberOfMessages=10, VisibilityTimeout=0)[
                "Messages"
            ]
            if '"kind":"relay"' in m["Body"]
        ]
        _kill_on_send(world, after=2, before_record=False)
        with pytest.raises(Killed):
            world.drain()
        world.unpatch()
        # The batch went to the DLQ; an operator redrives it: a new SQS message
        # with the same body, received for the first time.
        sqs.purge_queue(QueueUrl=queue_url(world))
        for body in bodies:
            sqs.send_message(QueueUrl=queue_url(world), MessageBody=body)
        expire_leases(world)
        world.drain()
        # A second redrive of a finished batch changes nothing either.
        for body in bodies:
            sqs.send_message(QueueUrl=queue_url(world), MessageBody=body)
        world.drain()

    assert copies(world, "Redrive me") == Counter(ACTIVE_OTHERS)


def test_a_batch_that_runs_out_of_time_continues_in_a_new_batch_without_repeats(world: World, chat: dict) -> None:
    from chalicelib.blueprints import delivery

    calls: list[int] = []
    real = delivery._send_until

    def short(context: Any) -> float | None:
        calls.append(1)
        # The first invocation has time for nothing; later ones for everything.
        return 0.0 if len(calls) == 1 else real(context)

    world.patch("chalicelib.blueprints.delivery._send_until", short)
    post(world, chat, "Out of time")
    world.drain()

    assert copies(world, "Out of time") == Counter(ACTIVE_OTHERS)
    claims = [c.sk for c in BatchClaim.scan() if c.sk.startswith("B#r-")]
    assert any("+" in c for c in claims), claims  # the continuation batch


def test_a_crash_right_after_queuing_the_continuation_repeats_nothing(world: World, chat: dict) -> None:
    """The batch queued its rest and died before it released its lease: SQS
    brings the batch back while the continuation also runs; both want the
    same recipients, and each copy is claimed once."""
    from chalicelib.blueprints import delivery

    real = delivery._send_until
    calls: list[int] = []

    def short(context: Any) -> float | None:
        calls.append(1)
        return 0.0 if len(calls) == 1 else real(context)

    def continuation(queue: Any, bodies: list[dict[str, Any]]) -> bool:
        return any("+" in b["batch"] for b in bodies)

    world.patch("chalicelib.blueprints.delivery._send_until", short)
    post(world, chat, "Continued then crashed")
    fail_first(
        world,
        "chalicelib.adapters.queue.DeliveryQueue.send_all",
        when=continuation,
        partly=lambda send, queue, bodies: send(queue, bodies),
        crash=True,
    )
    with pytest.raises(Killed):
        world.drain()
    expire_leases(world)
    world.drain()

    assert copies(world, "Continued then crashed") == Counter(ACTIVE_OTHERS)


# -- 4. the kickoff survives a failed queue --------------------------------------


def test_a_kickoff_whose_queuing_failed_once_goes_out_on_the_next_sweep(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=100))
    for n in range(3):
        world.put_signup("e1", f"s{n}", signup_body(n))
    fail_queue_once(world)
    world.advance(53)  # the chat is due to open; its schedule fires
    (schedule,) = world.schedules()
    with pytest.raises(RuntimeError):
        world.fire_schedule(schedule)
    assert world.chat("e1", "t1")["state"] == "open"
    world.drain()
    assert world.sent() == []

    tick = {
        "version": "0",
        "id": "t",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "1",
        "time": "2026-12-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }
    assert world.client.lambda_.invoke("sweeper", tick).payload == 1  # five minutes later
    assert world.client.lambda_.invoke("sweeper", tick).payload == 0  # and again: nothing more
    world.drain()

    kickoffs = Counter(s.to for s in world.sent())
    assert kickoffs == Counter([ORGANIZER, addr("ann0"), addr("ann1"), addr("ann2")])


def test_a_late_signup_whose_kickoff_failed_to_queue_gets_it_when_the_put_is_retried(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10))
    world.drain()
    fail_queue_once(world)
    assert world.put_signup("e1", "s9", signup_body(9)).status_code >= 500  # the integration will retry
    assert world.put_signup("e1", "s9", signup_body(9)).status_code in (200, 201)
    assert world.put_signup("e1", "s9", signup_body(9)).status_code == 200
    world.drain()

    assert [s.to for s in world.inbox(addr("ann9"))] == [addr("ann9")]


# -- 5. deployment-wide SES errors park the batch --------------------------------

DEPLOYMENT_ERRORS = [
    ("AccessDeniedException", "User is not authorized to perform ses:SendEmail"),
    ("SendingPausedException", "Sending is paused for this account."),
    ("NotFoundException", "Configuration set muster-prod does not exist."),
    ("MessageRejected", "Email address is not verified. The following identities failed the check: x"),
    ("AccountSuspendedException", "The account is suspended."),
]


class _FailingSes:
    def __init__(self, real: Any, code: str, message: str, only: str | None = None) -> None:
        self.real, self.code, self.message, self.only = real, code, message, only
        self.on = True

    def send_email(self, **kwargs: Any) -> Any:
        to = kwargs["Destination"]["ToAddresses"][0]
        if self.on and (self.only is None or to == self.only):
            raise ClientError({"Error": {"Code": self.code, "Message": self.message}}, "SendEmail")
        return self.real.send_email(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _failing_ses(world: World, code: str, message: str, only: str | None = None) -> _FailingSes:
    from chalicelib.adapters import aws

    fake = _FailingSes(aws.client("sesv2"), code, message, only)
    world.patch("chalicelib.adapters.mail.Mailer.client", property(lambda self: fake))
    return fake


@pytest.mark.parametrize(("code", "message"), DEPLOYMENT_ERRORS, ids=[c for c, _ in DEPLOYMENT_ERRORS])
def test_a_deployment_wide_ses_error_parks_the_batch_and_a_redrive_delivers_it(
    world: World, chat: dict, code: str, message: str
) -> None:
    sqs = boto3.client("sqs")
    fake = _failing_ses(world, code, message)
    post(world, chat, "Held back")
    world.drain(max_rounds=30)  # SQS gives up after 5 receives: the DLQ holds it

    parked = sqs.receive_message(QueueUrl=queue_url(world, dlq=True), MaxNumberOfMessages=10)["Messages"]
    assert any('"kind":"relay"' in m["Body"] for m in parked)
    assert copies(world, "Held back") == Counter()
    assert not [d for d in Delivery.scan() if d.sk.startswith("TO#") and d.status == "failed"]

    fake.on = False  # the operator fixes IAM / SES, then redrives the DLQ
    for m in parked:
        sqs.send_message(QueueUrl=queue_url(world), MessageBody=m["Body"])
    world.drain()

    assert copies(world, "Held back") == Counter(ACTIVE_OTHERS)


def test_a_recipient_specific_rejection_is_recorded_for_that_recipient_only(world: World, chat: dict) -> None:
    _failing_ses(world, "MessageRejected", "Address blacklisted.", only=addr("ann2"))
    post(world, chat, "One refused")
    world.drain()

    assert copies(world, "One refused") == Counter([ORGANIZER, addr("ann1"), addr("ann3")])
    failed = [d for d in Delivery.scan() if d.sk.startswith("TO#") and d.status == "failed"]
    assert [(d.participant_key, d.reason) for d in failed] == [("s-s2", "MessageRejected")]


# -- 6. one message, the same chat spelled twice ----------------------------------


def test_two_spellings_of_one_chat_in_one_message_are_one_relay(world: World, chat: dict) -> None:
    local, _, domain = chat["address"].partition("@")
    chat_id = local.rsplit("-", 1)[-1]
    spellings = [chat["address"], f"{chat_id.upper()}+tag@{domain}"]
    outcome = world.receive(
        mail(addr("ann0"), chat["address"], subject="Twice addressed"), sender=addr("ann0"), to=spellings
    )
    world.drain()

    assert outcome == {"outcomes": ["relayed"]}
    assert copies(world, "Twice addressed") == Counter(ACTIVE_OTHERS)


# -- 7. an organizer who also signed up is one person ------------------------------


def test_an_organizer_who_also_signed_up_gets_one_kickoff_one_copy_and_no_echo(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10))
    body = signup_body(0)
    body["person"]["email"] = ORGANIZER.upper()  # the same person, however spelled
    world.put_signup("e1", "s0", body)
    world.put_signup("e1", "s1", signup_body(1))
    world.drain()
    assert Counter(s.to.lower() for s in world.sent()) == Counter([ORGANIZER, addr("ann1")])
    chat = world.chat("e1", "t1")

    world.receive(mail(addr("ann1"), chat["address"], subject="From Ann"), sender=addr("ann1"), to=[chat["address"]])
    world.receive(mail(ORGANIZER, chat["address"], subject="From Olive"), sender=ORGANIZER, to=[chat["address"]])
    world.drain()

    assert Counter(s.to.lower() for s in world.sent() if "From Ann" in str(s.message["Subject"])) == Counter(
        [ORGANIZER]
    )
    olive = [s for s in world.sent() if "From Olive" in str(s.message["Subject"])]
    assert [s.to for s in olive] == [addr("ann1")]  # not echoed to the organizer's signup
    assert olive[0].message["From"].addresses[0].display_name.startswith("Olive0 O.")


# -- 8. a render failure ends in a recorded outcome -------------------------------


def test_a_render_failure_is_recorded_and_does_not_count_against_the_sender(world: World, chat: dict) -> None:
    from chalicelib.models import Counter as RateCounter

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    world.patch("chalicelib.relay.anonymize.render", broken)
    outcome = post(world, chat, "Unrenderable")
    world.drain()

    assert outcome == {"outcomes": ["render_failed"]}
    assert [m.outcome for m in logs(world)] == ["render_failed"]
    assert copies(world, "Unrenderable") == Counter()
    assert not [c for c in RateCounter.scan() if c.pk.startswith("LIM#sender#")]


# -- 12. notices never become backscatter -----------------------------------------


def _notices(world: World) -> list[Any]:
    return [s for s in world.sent() if s.message["Auto-Submitted"] == "auto-replied"]


def test_a_notice_goes_only_to_an_authenticated_address_once_a_day_and_quotes_nothing(world: World, chat: dict) -> None:
    victim = "victim@target.example"
    # A forger: envelope sender is the victim, SPF fails, DKIM passes for the
    # forger's own domain (not aligned with the From). Rotating From addresses.
    for n in range(3):
        raw = mail(f"spammer{n}@evil.example", chat["address"], subject="Cheap pills at http://spam.example")
        world.receive(
            raw, sender=victim, to=[chat["address"]], verdicts={"spf": "FAIL", "dkim": "PASS", "dmarc": "GRAY"}
        )
    assert _notices(world) == []

    # A real outsider whose SPF passes: one notice a day, however many From
    # addresses they rotate through.
    for n in range(3):
        raw = mail(f"alias{n}@people.example", chat["address"], subject="Cheap pills at http://spam.example")
        world.receive(raw, sender="stranger@people.example", to=[chat["address"]])
    notices = _notices(world)
    assert [n.to for n in notices] == ["stranger@people.example"]
    text = notices[0].raw.decode()
    assert "Cheap pills" not in text and "spam.example" not in text


def test_a_notice_goes_to_the_from_address_when_only_aligned_dkim_passed(world: World, chat: dict) -> None:
    raw = mail("outsider@dkim.example", chat["address"], subject="Hello").replace(
        b"Subject: Hello", b"Subject: Hello\r\nDKIM-Signature: v=1; a=rsa-sha256; d=dkim.example; s=s1; b=abc"
    )
    world.receive(
        raw,
        sender="bounce@esp.example",
        to=[chat["address"]],
        verdicts={"spf": "FAIL", "dkim": "PASS", "dmarc": "PASS"},
    )
    assert [n.to for n in _notices(world)] == ["outsider@dkim.example"]


def test_the_delivery_records_of_a_redelivered_batch_carry_the_batch(world: World, chat: dict) -> None:
    post(world, chat, "Recorded")
    world.drain()
    records = [d for d in Delivery.scan() if d.sk.startswith("TO#") and not d.pk.startswith("MSG#kickoff")]
    assert {d.status for d in records} == {"sent"}
    assert all(d.batch and d.batch.startswith("r-0-") for d in records)
    assert json.dumps(sorted(d.participant_key for d in records)) == json.dumps(["o-org0", "s-s1", "s-s2", "s-s3"])


# -- 18. decided on SES's verdicts and headers before any download -----------------


@pytest.mark.parametrize(
    ("sender", "verdicts", "outcome"),
    [
        ("ann0", {"spam": "FAIL"}, "spam"),
        ("ann0", {"spf": "FAIL", "dkim": "FAIL"}, "auth_failed"),
        ("stranger", {}, "not_a_participant"),
    ],
)
def test_a_refusal_decided_from_the_ses_event_never_downloads_the_raw_mail(
    world: World, chat: dict, sender: str, verdicts: dict[str, str], outcome: str
) -> None:
    def no_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the raw mail was downloaded")

    world.patch("chalicelib.services.relay.RelayService._raw", no_download)
    raw = mail(addr(sender), chat["address"], subject="Decided early")
    assert world.receive(raw, sender=addr(sender), to=[chat["address"]], verdicts=verdicts) == {"outcomes": [outcome]}
    assert [m.outcome for m in logs(world)] == [outcome]


def test_sent_copies_are_recorded_in_groups_not_one_write_each(world: World) -> None:
    """With 8 send threads at most 8 copies are ever sent without their record,
    and the records go out in groups of 4 (a quarter of the writes), not one
    BatchWriteItem per copy as when waiting senders flushed whatever was pending."""
    from chalicelib.services import ledger

    big = world.open_chat(["registered"] * 40)
    groups: list[int] = []
    real = ledger.record_sent

    def counted(message_id: str, batch: str, chat_id: str, now: Any, sent: list[Any]) -> None:
        groups.append(len(sent))
        real(message_id, batch, chat_id, now, sent)

    world.patch("chalicelib.services.ledger.record_sent", counted)
    with world.settings_override(MUSTER_SEND_CONCURRENCY="8"):
        post(world, big, "Grouped records")
        world.drain()
    got = copies(world, "Grouped records")
    assert len(got) == 40 and set(got.values()) == {1}  # 40 others of ann0 (39 attendees + the organizer)
    records = [d for d in Delivery.scan() if d.status == "sent" and d.ses_message_id]
    assert sum(groups) == 40 and len([d for d in records if d.pk == records[0].pk]) >= 40
    assert max(groups) <= 8
    assert len(groups) <= 40 // 4 + 2, groups


def test_a_crash_while_recording_a_group_repeats_at_most_send_concurrency_copies(world: World) -> None:
    """8 send threads, records in groups: the process dies while writing the second
    group of records. A redelivery sends every copy whose record never landed again
    - never more than the 8 the bound allows - and nobody goes without one."""
    from chalicelib.adapters.mail import Mailer
    from chalicelib.services import ledger

    big = world.open_chat(["registered"] * 40)
    dead: list[bool] = []
    real_record, real_send = ledger.record_sent, Mailer.send_raw

    def record(message_id: str, batch: str, chat_id: str, now: Any, sent: list[Any]) -> None:
        if dead or record.calls:  # type: ignore[attr-defined]
            dead.append(True)
            raise Killed
        record.calls += 1  # type: ignore[attr-defined]
        real_record(message_id, batch, chat_id, now, sent)

    record.calls = 0  # type: ignore[attr-defined]

    def send(self: Mailer, *, sender: str, recipient: str, raw: bytes) -> str:
        if dead:
            raise Killed
        return real_send(self, sender=sender, recipient=recipient, raw=raw)

    with world.settings_override(MUSTER_SEND_CONCURRENCY="8"):
        post(world, big, "Crash while recording")
        world.patch("chalicelib.services.ledger.record_sent", record)
        world.patch("chalicelib.adapters.mail.Mailer.send_raw", send)
        crash_then_redeliver(world)

    got = copies(world, "Crash while recording")
    assert len(got) == 40  # everyone (39 attendees and the organizer) has the message
    repeated = [to for to, n in got.items() if n > 1]
    assert 0 < len(repeated) <= 8 and max(got.values()) == 2
