"""What a text copy costs next to a mail copy (issue 12; prints figures, not a test):
``.venv/bin/python bench/sms.py [--reps N] [--people N]``.

1. **Per recipient, CPU.** A mail copy is one ``CopyTemplate.render`` (header
   lines, mute URL, footers: what ``FanOut.deliver`` does per reader). A text copy
   is made once per batch from the same rendered message (``source_of`` + trim +
   ``render_text`` + segment count) and then only sent; its per-recipient share is
   that work divided by the batch's texts (100), plus the per-copy argument
   building. Both are timed interleaved in one run; the figure is a ratio of medians.
2. **Per recipient, money.** SES $0.10 per 1,000 mails; End User Messaging SMS at
   ``MUSTER_SMS_PRICE_PER_SEGMENT`` (US 10DLC base price, carrier fees extra) times
   the copy's segments, for a short and a long message.
3. **AWS calls for a 200-person mixed chat** (moto, calls counted by patching
   botocore; the SMS service is the twin's, behind the same adapter): one mail in,
   one text in, each to 199 others, half by mail and half by text.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.offline import use_offline_aws  # noqa: E402

use_offline_aws(POWERTOOLS_METRICS_NAMESPACE="MusterBench", POWERTOOLS_LOG_LEVEL="ERROR", MUSTER_DIGEST_ABOVE="0")
warnings.filterwarnings("ignore")

import botocore.client  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.relay import sms as core  # noqa: E402
from chalicelib.relay.anonymize import ChatContext, CopyTemplate, Person, anonymize, list_unsubscribe_headers  # noqa: E402
from chalicelib.relay.parse import parse_inbound  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402

CHAT = ChatContext(
    chat_id="k3x9qk3x9qk3x9qk",
    relay_address="bench-k3x9q@relay.example.org",
    list_name="Canvass",
    subject_prefix="[Canvass]",
)
PEOPLE = [Person(f"s-p{n}", f"Person {n}.", (f"person{n}@example.org",), (f"+1202555{n:04d}",)) for n in range(50)]
SES_PER_MAIL = 0.10 / 1000


def rendered(words: int) -> bytes:
    body = " ".join(["Who can drive from the station on Saturday morning?"] * (words // 9 + 1))
    raw = (
        "From: Person 0 <person0@example.org>\r\nTo: bench-k3x9q@relay.example.org\r\nSubject: Rides\r\n"
        "Message-ID: <a@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body
        + "\r\n\r\nOn Mon, Person 1 wrote:\r\n> earlier\r\n"
    )
    return anonymize(
        parse_inbound(raw.encode()),
        author=PEOPLE[0],
        people=PEOPLE,
        chat=CHAT,
        message_id="<m1@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=datetime(2026, 12, 1, tzinfo=UTC),
    )


def per_recipient(reps: int, message: bytes, batch: int = 100) -> tuple[float, float]:
    settings = Settings.from_env({"MUSTER_STAGE": "dev"})
    template = CopyTemplate.of(message)
    link = "https://x.execute-api.us-east-1.amazonaws.com/api/mute/" + "t" * 110
    headers = list_unsubscribe_headers(link)

    def mail() -> None:
        template.render(mute_url=link, list_unsubscribe_headers=headers)

    def text_batch() -> None:
        source = core.source_of(message)
        body = core.render_text(
            author="Person 0.",
            chat_title="Canvass",
            text=source.text,
            attachments=[],
            max_segments=settings.sms_max_segments,
            more_link="https://x/t/" + "t" * 45,
        )
        core.count_segments(body)
        args = [  # what each copy adds: its send arguments
            {"DestinationPhoneNumber": f"+1202555{n:04d}", "MessageBody": body, "Context": {"reader": f"s-p{n}"}}
            for n in range(batch)
        ]
        assert len(args) == batch

    mails, texts = [], []
    for _ in range(reps):
        t = time.perf_counter()
        mail()
        mails.append(time.perf_counter() - t)
        if len(texts) < reps // batch + 20:
            t = time.perf_counter()
            text_batch()
            texts.append((time.perf_counter() - t) / batch)
    return statistics.median(mails), statistics.median(texts)


# -- 3. AWS calls ------------------------------------------------------------------------


class Calls:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        original = botocore.client.BaseClient._make_api_call

        def counted(client: Any, operation: str, params: Any) -> Any:
            self.calls[client.meta.service_model.service_name] += 1
            return original(client, operation, params)

        botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]

    def take(self) -> Counter[str]:
        out, self.calls = self.calls, Counter()
        return out


def mixed_chat_calls(people: int) -> list[dict[str, Any]]:
    import functools

    import chalice.test
    from chalice.local import LambdaContext

    from chalicelib.models import Participant
    from chalicelib.schemas import Person as PersonBody
    from chalicelib.services.events import EventService
    from infra.twin.lambdas import sns_event
    from infra.twin.sms import SmsBackend, inbound_message
    from infra.twin.smtp import ses_event
    from tests.integration.world import World, event_body

    chalice.test.LambdaContext = functools.partial(LambdaContext, max_runtime_ms=60_000)  # type: ignore[misc]
    counter = Calls()
    rows = []
    with mock_aws(), tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        world = World.create()
        backend = SmsBackend(Path(tmp))
        world.patch("chalicelib.adapters.sms._client", lambda endpoint, region: backend)
        assert world.put_event("e1", event_body(start_in_hours=50)).status_code == 201
        svc = EventService()
        pk = f"CH#{svc._chat_id(world.integration, 'e1', 't1')}"
        with Participant.batch_write() as batch:
            for n in range(people - 1):
                who = (
                    PersonBody(first_name=f"Sam{n}", last_name="Text", phone=f"+1202555{n:04d}", channel="sms")
                    if n % 2
                    else PersonBody(first_name=f"Ann{n}", last_name="Mail", email=f"ann{n}@people.example")
                )
                batch.save(svc._person(pk, f"s-s{n}", "attendee", "registered", who))
        world.advance(40)
        (schedule,) = [s for s in world.schedules() if "-open-" in s["Name"]]
        world.fire_schedule(schedule)
        world.drain(max_rounds=500)
        address = world.chat("e1", "t1")["address"]
        counter.take()
        texts_before = backend.calls

        raw = (
            f"From: ann0@people.example\r\nTo: {address}\r\nSubject: Rides\r\nMessage-ID: <{uuid.uuid4().hex}@people.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nWho can drive from the station on Saturday?\r\n"
        ).encode()
        ses_id = uuid.uuid4().hex
        world_s3 = __import__("boto3").client("s3")
        world_s3.put_object(Bucket=world.settings.mail_bucket, Key=f"inbound/{ses_id}", Body=raw)
        event = ses_event(
            message_id=ses_id,
            stored=raw,
            mail_from="ann0@people.example",
            recipients=[address],
            verdicts=dict.fromkeys(("spf", "dkim", "dmarc", "spam", "virus"), "PASS"),
            when=datetime.now(UTC),
        )
        counter.take()
        world.client.lambda_.invoke("inbound_email", event)
        inbound = counter.take()
        world.drain(max_rounds=500)
        delivery = counter.take()
        rows.append(
            {
                "message": "mail in",
                "inbound": dict(inbound),
                "delivery": dict(delivery),
                "texts": backend.calls - texts_before,
            }
        )

        texts_before = backend.calls
        msg = inbound_message("+12025550001", "I can drive two people", "+15550100000")
        world.client.lambda_.invoke("sms_inbound", sns_event({"Message": json.dumps(msg)}, "arn:sub"))
        inbound = counter.take()
        world.drain(max_rounds=500)
        delivery = counter.take()
        rows.append(
            {
                "message": "text in",
                "inbound": dict(inbound),
                "delivery": dict(delivery),
                "texts": backend.calls - texts_before,
            }
        )
        world.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3000)
    parser.add_argument("--people", type=int, default=200)
    args = parser.parse_args()
    price = Settings.from_env({"MUSTER_STAGE": "dev"}).sms_price_per_segment

    print("1. per recipient, CPU (median; text: its batch's share)")
    print("| message | mail copy | text copy | text / mail |")
    print("|---|---|---|---|")
    for label, words in (("short (60 words)", 60), ("long (400 words, cut at 3 segments)", 400)):
        message = rendered(words)
        mail, text = per_recipient(args.reps, message)
        print(f"| {label} | {mail * 1e6:.1f} µs | {text * 1e6:.1f} µs | {text / mail:.2f}× |")

    print("\n2. per recipient, money")
    print("| message | segments | text copy | mail copy (SES) | text / mail |")
    print("|---|---|---|---|---|")
    for label, words in (("short (60 words)", 60), ("long (400 words)", 400), ("emoji reply", 0)):
        if words:
            source = core.source_of(rendered(words))
            body = core.render_text(
                author="Person 0.",
                chat_title="Canvass",
                text=source.text,
                attachments=[],
                max_segments=3,
                more_link="https://x/t/" + "t" * 45,
            )
        else:
            body = "Person 0. (Canvass): See you there 🎉"
        segs = core.count_segments(body).count
        cost = core.cost(segs, price)
        print(f"| {label} | {segs} | ${cost:.5f} | ${SES_PER_MAIL:.5f} | {cost / SES_PER_MAIL:.0f}× |")

    print(f"\n3. AWS calls, a {args.people}-person mixed chat (half mail, half text)")
    print("| message | inbound calls | delivery calls | SMS SendTextMessage |")
    print("|---|---|---|---|")
    for row in mixed_chat_calls(args.people):
        fmt = lambda c: ", ".join(f"{k} {v}" for k, v in sorted(c.items()))  # noqa: E731
        print(f"| {row['message']} | {fmt(row['inbound'])} | {fmt(row['delivery'])} | {row['texts']} |")


if __name__ == "__main__":
    main()
