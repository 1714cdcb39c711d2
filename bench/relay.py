"""Relay benchmark (prints figures; not a test): ``.venv/bin/python bench/relay.py [--quick]``.

Issue 4. Three measurements, all in process against moto:

1. Rendering cost. Per-recipient work in ``FanOut.deliver`` (``sign_token`` +
   ``CopyTemplate.render``, with the once-per-batch split spread over the batch) and the once-per-message ``parse_inbound`` + ``anonymize``,
   against one stdlib parse-and-serialize of the same raw message
   (``BytesParser(policy=policy.default).parsebytes(raw).as_bytes()``) timed in
   the same run. Medians of several repetitions. Target: per-recipient <= 0.1x.
2. AWS API calls per inbound message for N = 10, 100, 1000 recipients, counted by
   patching ``botocore.client.BaseClient._make_api_call`` (boto3 and PynamoDB
   both go through it). Only the app's own calls are counted: the inbound handler
   and the delivery handler for every batch; SES's S3 write and the SQS polling
   Lambda does for us are not. Targets: SES calls == N; DynamoDB calls for
   delivery <= 2N + 3B + the pacer's (every copy is claimed before its send and
   recorded right after it, so a crash repeats at most the copies in flight).
3. Peak memory, 10 MB message to 500 recipients: the inbound handler, then the
   one 500-copy delivery batch, in one process. ``tracemalloc`` peaks and
   ``ru_maxrss`` (process-wide high-water) are measured in two separate child
   processes so tracemalloc's bookkeeping does not inflate RSS. SES SendEmail is
   answered by a ``before-send`` hook (botocore still serializes, base64-encodes
   and signs every copy) because moto would otherwise keep all 500 copies.
   Target: < 256 MB. The full run repeats this at 2 send threads
   (``MUSTER_SEND_CONCURRENCY=2``) to preview the proposed size-aware cap.
   These run with every attachment inline (``MUSTER_ATTACHMENT_LINK_ABOVE`` at
   1 GiB: the relay before issue 14); then once more at the default, where the
   attachment is stored once and every copy carries a link, and "3b" compares
   the two: bytes sent to SES (the SendEmail request bodies) and delivery time.

4. Hostile size (issue 13): the 200 KB folded Subject of encoded words and
   300,000 empty MIME parts, parsed the old way (stdlib, everything) and by
   ``parse_inbound`` with its caps, each in a fresh process; the stdlib parse of
   a 5 KB reply in the same run is the reference.

``--part 1|2|3|4`` runs only some parts (``--links``: only 3b); ``--json PATH`` also writes the raw figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Environment first: nothing may import boto3 or chalicelib before this.
from tests.offline import use_offline_aws  # noqa: E402

# Every reader gets every copy here (large chats would otherwise default to digests).
use_offline_aws(POWERTOOLS_METRICS_NAMESPACE="MusterBench", POWERTOOLS_LOG_LEVEL="ERROR", MUSTER_DIGEST_ABOVE="0")
warnings.filterwarnings("ignore")

import botocore.client  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.adapters import aws  # noqa: E402
from chalicelib.models import Participant  # noqa: E402
from chalicelib.relay import anonymize  # noqa: E402
from chalicelib.relay.parse import parse_inbound  # noqa: E402
from chalicelib.relay.threadheaders import header_block, reader_headers  # noqa: E402
from chalicelib.relay.tokens import sign_token  # noqa: E402
from chalicelib.schemas import Person as PersonBody  # noqa: E402
from chalicelib.services.events import EventService  # noqa: E402
from chalicelib.services.fanout import FanOut  # noqa: E402
from chalicelib.services.links import MUTE_DAYS  # noqa: E402
from chalicelib.services.relay import RelayService  # noqa: E402
from chalicelib.settings import get_settings  # noqa: E402
from tests.integration.world import World, event_body  # noqa: E402

MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # MUSTER_MAX_MESSAGE_BYTES default (10 MiB)
AUTHOR = "ann0@people.example"
MIB = 1024 * 1024

# --- realistic messages -----------------------------------------------------------

WORDS = [
    "shift",
    "canvass",
    "station",
    "carpool",
    "clipboard",
    "volunteers",
    "door",
    "list",
    "turf",
    "park",
    "meet",
    "morning",
    "coffee",
    "water",
    "bring",
    "sign",
    "sheet",
    "route",
    "north",
    "south",
    "block",
    "apartment",
    "call",
    "thanks",
    "everyone",
    "please",
    "reply",
    "bus",
    "parking",
    "lot",
    "early",
    "late",
    "team",
    "leader",
    "vest",
    "badge",
]


def _prose(rng: random.Random, chars: int) -> list[str]:
    """Paragraphs of plausible text, ``chars`` long in total."""
    out, size = [], 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))).capitalize() + "."
        para = " ".join(
            [sentence]
            + [
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))).capitalize() + "."
                for _ in range(rng.randint(1, 4))
            ]
        )
        out.append(para)
        size += len(para) + 2
    return out


def _base(subject: str, to: str, *, seq: int) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    msg["From"] = f"Ann Zero <{AUTHOR}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Tue, 04 Jun 2024 09:15:00 -0400"
    msg["Message-ID"] = f"<bench-{seq}-{uuid.uuid4().hex[:8]}@people.example>"
    msg["In-Reply-To"] = "<CAF0reply1234567890abcdef@mail.gmail.com>"
    msg["References"] = "<CAF0start1234567890abcdef@mail.gmail.com> <CAF0reply1234567890abcdef@mail.gmail.com>"
    msg["User-Agent"] = "Mozilla/5.0 Thunderbird/115.11.0"
    return msg


def _alternative(msg: EmailMessage, rng: random.Random, body_chars: int) -> None:
    """A reply: new text on top, then the quoted thread (with a participant's address)."""
    new = _prose(rng, min(600, body_chars // 4))
    quoted = _prose(rng, max(0, body_chars - 600))
    attribution = "On Mon, Jun 3, 2024 at 8:02 PM Ann One <ann1@people.example> wrote:"
    text = "\n\n".join(new) + "\n\n" + attribution + "\n" + "\n>\n".join("> " + p for p in quoted) + "\n"
    html_new = "".join(f"<p>{p}</p>\n" for p in new)
    html_quoted = "".join(f"<p>{p}</p>\n" for p in quoted)
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head><body>\n'
        f'<div dir="ltr">{html_new}</div>\n<div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        'On Mon, Jun 3, 2024 at 8:02 PM Ann One &lt;<a href="mailto:ann1@people.example">ann1@people.example</a>&gt; wrote:<br></div>'
        f'<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">\n{html_quoted}'
        "</blockquote></div>\n</body></html>\n"
    )
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")


def reply_message(target: int, to: str, *, seq: int = 0) -> bytes:
    """multipart/alternative text+html reply of about ``target`` bytes."""
    rng = random.Random(target)
    # Text and HTML share the prose; HTML adds ~15 % markup. QP adds a little.
    body_chars = max(300, int((target - 1500) / 2.25))
    msg = _base("Re: Carpool from the station?", to, seq=seq)
    _alternative(msg, rng, body_chars)
    return msg.as_bytes()


def attachment_message(target: int, to: str, *, seq: int = 0) -> bytes:
    """A short text+html note with one binary attachment; about ``target`` bytes in all."""
    rng = random.Random(target)
    msg = _base("Re: Route maps for Saturday", to, seq=seq)
    _alternative(msg, rng, 1200)
    overhead = len(msg.as_bytes()) + 600
    binary = rng.randbytes(max(1, (target - overhead) // 78 * 57))
    msg.add_attachment(binary, maintype="application", subtype="pdf", filename="route-maps-saturday.pdf")
    raw = msg.as_bytes()
    return raw


# --- 1. rendering ------------------------------------------------------------------


def _median_us(fn: Callable[[], object], reps: int, inner: int = 1) -> float:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter_ns() - t0) / inner / 1000)
    return statistics.median(samples)


ANCESTORS = ["18f0c0ffee0123456789aaaa", "18f0c0ffee0123456789bbbb", "18f0c0ffee0123456789cccc"]
HELD = {a: f"<0100018c{i:04d}-aaaa-bbbb-cccc-dddddddddddd-000000@email.amazonses.com>" for i, a in enumerate(ANCESTORS)}


def bench_rendering(quick: bool) -> list[dict[str, Any]]:
    settings = get_settings()
    chat = anonymize.ChatContext(
        chat_id="a46sobqb7q6wxrl6",
        relay_address="canvass-a46sobqb7q6wxrl6@muster.test",
        list_name="Canvass \u2013 Sat 08 Jun 09:00",
        subject_prefix="[Canvass Sat 09:00]",
    )
    people = [
        anonymize.Person(key=f"s-s{i}", display_name=f"Ann{i} A.", addresses=(f"ann{i}@people.example",))
        for i in range(50)
    ]
    cases = [
        ("5 KB reply", reply_message(5 * 1024, chat.relay_address)),
        ("100 KB reply", reply_message(100 * 1024, chat.relay_address)),
        ("5 MB attachment", attachment_message(5 * MIB, chat.relay_address)),
    ]
    # (baseline reps, anonymize reps, per-recipient reps, recipients per rep)
    plan = [(200, 50, 50, 200), (40, 15, 30, 50), (7, 5, 15, 10)]
    if quick:
        plan = [(60, 15, 15, 100), (12, 5, 10, 20), (3, 2, 5, 5)]
    rows = []
    for (label, raw), (base_reps, anon_reps, rec_reps, per_rep) in zip(cases, plan, strict=True):
        parser = BytesParser(policy=policy.default)
        baseline = _median_us(lambda raw=raw, parser=parser: parser.parsebytes(raw).as_bytes(), base_reps)

        mail = parse_inbound(raw)
        parse_us = _median_us(lambda raw=raw: parse_inbound(raw), anon_reps)

        def render(mail: Any = mail) -> bytes:
            return anonymize.anonymize(
                mail,
                author=people[0],
                people=people,
                chat=chat,
                message_id="<18f0c0ffee0123456789abcd@muster.test>",
                in_reply_to=None,
                references=[],
                date=datetime(2024, 6, 4, 13, 15, tzinfo=UTC),
            )

        anon_us = _median_us(render, anon_reps)
        rendered = render()
        keys = [f"s-s{i}" for i in range(per_rep)]
        expires = int(time.time()) + MUTE_DAYS * 86400

        def per_recipient(rendered: bytes = rendered, keys: list[str] = keys, expires: int = expires) -> None:
            # Exactly FanOut.deliver for a relayed message: split once per batch
            # (counted here, spread over the batch), then copy_for() per recipient:
            # token, List-Unsubscribe, this reader's threading headers, one join.
            template = anonymize.CopyTemplate.of(rendered)
            for key in keys:
                token = sign_token(
                    settings.secret, chat_id=chat.chat_id, participant_key=key, purpose="mute", expires_at=expires
                )
                mute_url = f"{settings.public_url}/mute/{token}"
                headers = anonymize.list_unsubscribe_headers(mute_url)
                # A reply three deep: this reader's ids for its ancestors (R10).
                thread = header_block(
                    *reader_headers(
                        own="18f0c0ffee0123456789abcd",
                        ancestors=ANCESTORS,
                        reader_ids=HELD,
                        relay_domain=settings.relay_domain,
                    )
                )
                template.render(mute_url=mute_url, list_unsubscribe_headers=headers, thread_headers=thread)

        copy_us = _median_us(per_recipient, rec_reps) / per_rep
        rows.append(
            {
                "case": label,
                "raw_bytes": len(raw),
                "rendered_bytes": len(rendered),
                "baseline_us": baseline,
                "parse_us": parse_us,
                "anonymize_us": anon_us,
                "per_recipient_us": copy_us,
                "per_recipient_ratio": copy_us / baseline,
                "message_ratio": (parse_us + anon_us) / baseline,
            }
        )
    return rows


# --- counting AWS calls ---------------------------------------------------------------


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.on = False
        self.lock = threading.Lock()

    def install(self) -> None:
        original = botocore.client.BaseClient._make_api_call
        counter = self

        def counted(client: Any, operation_name: str, api_params: Any) -> Any:
            if counter.on:
                with counter.lock:
                    counter.calls[(client.meta.service_model.service_name, operation_name)] += 1
            return original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        previous, self.on = self.on, True
        try:
            yield
        finally:
            self.on = previous

    def take(self) -> Counter[tuple[str, str]]:
        out, self.calls = self.calls, Counter()
        return out


COUNTER = CallCounter()


def lambda_timeout_context(seconds: int = 60) -> None:
    """Chalice's test client gives every invocation a 3 s context; a deployed
    function has the stack's 60 s, and ``deliver`` plans its sends by it."""
    import functools

    import chalice.test
    from chalice.local import LambdaContext

    chalice.test.LambdaContext = functools.partial(LambdaContext, max_runtime_ms=seconds * 1000)  # type: ignore[misc]


def install_counting_scopes() -> None:
    """Count only inside the two handlers' service entry points."""

    def scoped(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with COUNTER.counting():
                return fn(*args, **kwargs)

        return wrapper

    RelayService.handle_ses_event = scoped(RelayService.handle_ses_event)  # type: ignore[method-assign]
    FanOut.deliver = scoped(FanOut.deliver)  # type: ignore[method-assign]


# --- the world ---------------------------------------------------------------------


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The handlers print EMF metrics on flush; keep the table readable."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def open_chat(world: World, signups: int) -> str:
    """An event whose shift starts 10 h from now, ``signups`` registered people, chat
    open and kickoffs delivered. Returns the relay address.

    The shift is created 50 h out, the signups are written (one batch write: the
    per-signup API path re-reads the whole chat each time, which under moto is
    quadratic and is setup anyway), then the clock moves 40 h and the opening
    schedule fires, so the kickoff goes out as full batches.
    """
    with quiet():
        assert world.put_event("e1", event_body(start_in_hours=50)).status_code == 201
    svc = EventService()
    chat_pk = f"CH#{svc._chat_id(world.integration, 'e1', 't1')}"
    with Participant.batch_write() as batch:
        for n in range(signups):
            batch.save(
                svc._person(
                    chat_pk,
                    f"s-s{n}",
                    "attendee",
                    "registered",
                    PersonBody(first_name=f"Ann{n}", last_name="Attendee", email=f"ann{n}@people.example"),
                )
            )
    world.advance(40)
    (schedule,) = [s for s in world.schedules() if "-open-" in s["Name"]]
    with quiet():
        world.fire_schedule(schedule)
        world.drain(max_rounds=200)
    chat = world.chat("e1", "t1")
    assert chat["state"] == "open", chat
    return str(chat["address"])


def ses_event(world: World, raw: bytes, *, to: str, sender: str = AUTHOR) -> dict[str, Any]:
    """SES receiving's S3 action (done here, uncounted), and the Lambda action's event."""
    import boto3

    from infra.twin.smtp import ses_event as receipt_event

    ses_id = uuid.uuid4().hex
    boto3.client("s3").put_object(Bucket=world.settings.mail_bucket, Key=f"inbound/{ses_id}", Body=raw)
    verdicts = dict.fromkeys(("spf", "dkim", "dmarc", "spam", "virus"), "PASS")
    return receipt_event(
        message_id=ses_id, stored=raw, mail_from=sender, recipients=[to], verdicts=verdicts, when=datetime.now(UTC)
    )


def relay_one(world: World, event: dict[str, Any]) -> None:
    with quiet():
        payload = world.client.lambda_.invoke("inbound_email", event).payload
    assert payload == {"outcomes": ["relayed"]}, payload


def drain(world: World) -> None:
    with quiet():
        world.drain(max_rounds=500)


# --- 2. AWS calls per message ---------------------------------------------------------


def bench_calls(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        with mock_aws():
            world = World.create()
            try:
                # N signups + 1 organizer; the author (a signup) gets no copy: N recipients.
                address = open_chat(world, n)
                sent_before = len(world.sent())
                previous: str | None = None
                for label in ("first (cold)", "steady", "reply in thread"):
                    raw = reply_message(5 * 1024, address, seq=n)
                    if label == "reply in thread" and previous:
                        # A reply to the previous relayed message: every reader's
                        # copy of it is looked up (per-reader threading, R10).
                        raw = re.sub(rb"In-Reply-To: [^\r\n]+", b"In-Reply-To: " + previous.encode(), raw, count=1)
                    event = ses_event(world, raw, to=address)
                    COUNTER.take()
                    relay_one(world, event)
                    inbound = COUNTER.take()
                    drain(world)
                    delivery = COUNTER.take()
                    copies = len(world.sent()) - sent_before
                    previous = str(world.sent()[-1].message["Message-ID"])  # moto keeps Muster's id
                    sent_before = len(world.sent())
                    rows.append({"n": n, "message": label, "inbound": inbound, "delivery": delivery, "copies": copies})
            finally:
                world.close()
    return rows


def summarize(calls: Counter[tuple[str, str]]) -> dict[str, int]:
    ddb_batch = sum(c for (s, op), c in calls.items() if s == "dynamodb" and op == "BatchWriteItem")
    ddb_other = sum(c for (s, op), c in calls.items() if s == "dynamodb" and op != "BatchWriteItem")
    ses = sum(c for (s, _), c in calls.items() if s in ("sesv2", "ses"))
    sqs = sum(c for (s, _), c in calls.items() if s == "sqs")
    s3 = sum(c for (s, _), c in calls.items() if s == "s3")
    return {
        "ddb_batch": ddb_batch,
        "ddb_other": ddb_other,
        "ses": ses,
        "sqs": sqs,
        "s3": s3,
        "total": sum(calls.values()),
    }


def ops(calls: Counter[tuple[str, str]]) -> str:
    return ", ".join(f"{s}.{op} {c}" for (s, op), c in sorted(calls.items()))


# --- 3. memory ------------------------------------------------------------------------


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()


def stub_ses_send(stats: dict[str, int]) -> None:
    """Answer sesv2 SendEmail after botocore has built, encoded and signed the request."""
    lock = threading.Lock()

    from moto.core.models import botocore_stubber

    def answer(request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        if event_name != "before-send.sesv2.SendEmail":
            return botocore_stubber(request=request, event_name=event_name, **kwargs)  # type: ignore[no-any-return]
        with lock:
            stats["copies"] += 1
            stats["request_bytes"] += len(request.body or b"")
            stats["max_request_bytes"] = max(stats["max_request_bytes"], len(request.body or b""))
        body = json.dumps({"MessageId": f"0100bench{uuid.uuid4().hex}-000000"}).encode()
        return AWSResponse(request.url, 200, {"content-type": "application/json"}, _Raw(body))

    events = aws.client("sesv2").meta.events
    # Every before-send handler runs (the first response wins), so moto's is swapped
    # out on this one client; otherwise moto's SES backend would keep every copy.
    events.unregister("before-send", botocore_stubber)
    events.register("before-send", answer)


def _proc_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_child(mode: str, recipients: int) -> dict[str, Any]:
    import tracemalloc

    lambda_timeout_context()
    out: dict[str, Any] = {
        "mode": mode,
        "recipients": recipients,
        "concurrency": get_settings().send_concurrency,
        "link_above": get_settings().attachment_link_above,
    }
    with mock_aws():
        world = World.create()
        try:
            address = open_chat(world, recipients)  # N signups + organizer - author = N copies
            stats = {"copies": 0, "max_request_bytes": 0, "request_bytes": 0}
            stub_ses_send(stats)
            raw = attachment_message(MAX_MESSAGE_BYTES - 64 * 1024, address)
            assert len(raw) < MAX_MESSAGE_BYTES, len(raw)
            out["raw_bytes"] = len(raw)
            event = ses_event(world, raw, to=address)
            del raw
            gc.collect()
            maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out["rss_baseline"] = _proc_status()["VmRSS"]
            out["maxrss_baseline"] = maxrss0
            if mode == "tracemalloc":
                tracemalloc.start()
                relay_one(world, event)
                current, peak = tracemalloc.get_traced_memory()
                out["inbound_peak"], out["inbound_retained"] = peak, current
                gc.collect()
                tracemalloc.reset_peak()
                start, _ = tracemalloc.get_traced_memory()
                drain(world)
                current, peak = tracemalloc.get_traced_memory()
                out["deliver_peak"], out["deliver_start"] = peak - start, start
                tracemalloc.stop()
            else:
                hwm = _reset_hwm()
                relay_one(world, event)
                out["maxrss_after_inbound"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                status = _proc_status()
                out["inbound_hwm"] = status["VmHWM"] if hwm else None
                gc.collect()
                before = _proc_status()["VmRSS"]
                hwm = _reset_hwm()
                t0, cpu0 = time.perf_counter(), _cpu()
                drain(world)
                out["deliver_seconds"] = time.perf_counter() - t0
                out["deliver_cpu_seconds"] = _cpu() - cpu0
                out["maxrss_after_deliver"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                out["deliver_rss_start"] = before
                out["deliver_hwm"] = _proc_status()["VmHWM"] if hwm else None
            out["copies"] = stats["copies"]
            out["max_request_bytes"] = stats["max_request_bytes"]
            out["request_bytes"] = stats["request_bytes"]
            keys = [k for k in _rendered_keys()]
            out["rendered_bytes"] = keys[0] if keys else None
            out["stored_file_bytes"] = sum(_rendered_keys("files/"))
        finally:
            world.close()
    return out


def _rendered_keys(prefix: str = "outbound/") -> list[int]:
    import boto3

    s3 = boto3.client("s3")
    bucket = get_settings().mail_bucket
    return [o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


# Issue 14: attachments stay inline whatever their size (what the relay did before).
LINKS_OFF = {"MUSTER_ATTACHMENT_LINK_ABOVE": str(1024 * MIB)}


def bench_links(recipients: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Issue 14: the 10 MB message to ``recipients`` readers, attachments inline
    (before) and linked (the default), one ``rss`` child each, side by side."""
    procs = []
    for extra in (LINKS_OFF, {}):
        env = {**os.environ, **extra}
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--memory-child", "rss", "--recipients", str(recipients)],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"links child failed ({proc.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def bench_memory(
    recipients: int, concurrency: int | None = None, extra_env: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Both children at once (one core each); memory figures do not depend on timing."""
    env = dict(os.environ)
    if concurrency is not None:
        env["MUSTER_SEND_CONCURRENCY"] = str(concurrency)
    env.update(extra_env or {})
    procs = {
        mode: subprocess.Popen(
            [sys.executable, __file__, "--memory-child", mode, "--recipients", str(recipients)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for mode in ("tracemalloc", "rss")
    }
    out = {}
    for mode, proc in procs.items():
        stdout, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {mode} failed ({proc.returncode})")
        out[mode] = json.loads(stdout.strip().splitlines()[-1])
    return out


# --- report ---------------------------------------------------------------------------


def mb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / MIB:.1f} MiB"


def size(n: int) -> str:
    return f"{n / MIB:.2f} MiB" if n >= MIB else f"{n / 1024:.1f} KiB"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def report_rendering(rows: list[dict[str, Any]]) -> bool:
    print("\n1. Rendering cost (median; baseline = BytesParser(policy.default).parsebytes(raw).as_bytes())\n")
    print(
        table(
            [
                "message",
                "raw",
                "rendered",
                "stdlib parse+serialize",
                "per recipient",
                "ratio",
                "parse_inbound",
                "anonymize",
                "ratio (once/msg)",
            ],
            [
                [
                    r["case"],
                    size(r["raw_bytes"]),
                    size(r["rendered_bytes"]),
                    f"{r['baseline_us']:,.0f} us",
                    f"{r['per_recipient_us']:,.1f} us",
                    f"{r['per_recipient_ratio']:.4f}x",
                    f"{r['parse_us']:,.0f} us",
                    f"{r['anonymize_us']:,.0f} us",
                    f"{r['message_ratio']:.2f}x",
                ]
                for r in rows
            ],
        )
    )
    ok = all(r["per_recipient_ratio"] <= 0.1 for r in rows)
    print(f"\nTarget per-recipient <= 0.1x baseline: {'MET' if ok else 'NOT MET'}")
    return ok


def report_calls(rows: list[dict[str, Any]]) -> bool:
    settings = get_settings()
    batch = settings.batch_size
    chunk = max(1, int(settings.max_send_rate or 1) // 4)
    print(
        f"\n2. AWS API calls per inbound message (MUSTER_BATCH_SIZE={batch}, {settings.send_concurrency} send threads,"
        f" pacer chunk {chunk})\n"
    )
    out = []
    ok = True
    for r in rows:
        n, total = r["n"], r["inbound"] + r["delivery"]
        s, si, sd = summarize(total), summarize(r["inbound"]), summarize(r["delivery"])
        batches = math.ceil(n / batch)
        ddb = s["ddb_batch"] + s["ddb_other"]
        out.append(
            [
                str(n),
                r["message"],
                str(batches),
                f"{ddb} ({si['ddb_batch'] + si['ddb_other']} in + {sd['ddb_batch'] + sd['ddb_other']} dlv)",
                f"{(sd['ddb_batch'] + sd['ddb_other']) / max(n, 1):.2f}",
                str(s["ses"]),
                str(s["sqs"]),
                str(s["s3"]),
                str(s["total"]),
            ]
        )
        if r["message"] != "first (cold)":
            ok &= s["ses"] == n == r["copies"]
            # Per copy: its claim and its record. Per batch: lease, participants,
            # release (+ a BatchGetItem per 100 lookups for replies). The pacer
            # claims a chunk per second of sending, so allow 0.1 per copy for it.
            ok &= sd["ddb_batch"] + sd["ddb_other"] <= 2.1 * n + 3 * batches + 5
    print(
        table(
            ["N", "message", "batches", "DynamoDB calls", "DDB / copy (delivery)", "SES", "SQS", "S3", "total"],
            out,
        )
    )
    print("\nPer operation (steady-state message, and a reply in its thread):")
    for r in rows:
        if r["message"] != "first (cold)":
            print(f"  N={r['n']:>4} inbound : {ops(r['inbound'])}")
            print(f"         delivery: {ops(r['delivery'])}")
    print(
        f"\nFormula, N recipients, B = ceil(N/{batch}) batches:\n"
        "  SES SendEmail      = N\n"
        "  DynamoDB, delivery = 2N (per copy: conditional claim PutItem before the send, UpdateItem with the\n"
        "                       SES id right after it) + 3B (lease PutItem, participants Query, release PutItem)\n"
        f"                       + the pacer's UpdateItem per {chunk} send tokens (and per second of sending)\n"
        "  DynamoDB, replies  = + ceil(B x min(ancestors, 5) x batch / 100) BatchGetItem (each reader's id of\n"
        "                       the parent and up to 4 more ancestors) + one BatchGetItem of their metadata per batch\n"
        "  DynamoDB, inbound  = a constant (chat, log, participants, rate counters, log, thread ref, one\n"
        "                       TransactWriteItems for the log + stats), plus idempotency\n"
        "  SQS SendMessageBatch = ceil(B/10);  S3 = 1 GetObject + 1 PutObject (inbound) + 1 GetObject per warm container"
    )
    for r in rows:
        if r["message"] == "steady":
            s = summarize(r["inbound"] + r["delivery"])
            if s["ses"] != r["n"] or r["copies"] != r["n"]:
                print(f"  !! N={r['n']}: SES calls {s['ses']}, copies {r['copies']}")
    print(f"\nTargets: SES == N and delivery DynamoDB <= 2.1N + 3B + 5: {'MET' if ok else 'NOT MET'}")
    return ok


def report_memory(results: list[dict[str, dict[str, Any]]]) -> bool:
    t = results[0]["tracemalloc"]
    print(
        f"\n3. Peak memory: {size(t['raw_bytes'])} raw message (cap {MAX_MESSAGE_BYTES}), "
        f"{t['recipients']} recipients (batches of at most {get_settings().batch_size}), {t['copies']} copies sent; "
        f"rendered {size(t['rendered_bytes'] or 0)}, largest SendEmail request {size(t['max_request_bytes'])}\n"
    )
    rows = []
    for result in results:
        t, r = result["tracemalloc"], result["rss"]
        threads = t["concurrency"]
        note = "" if threads == 8 else " [fix preview]"
        note += " [links]" if t["link_above"] < t["raw_bytes"] else ""
        rows.append(
            [
                "inbound handler (parse + anonymize + store)"
                + (" [links]" if t["link_above"] < t["raw_bytes"] else ""),
                "-",
                mb(t["inbound_peak"]),
                mb(r["inbound_hwm"] - r["rss_baseline"] if r["inbound_hwm"] else None),
                mb(r["maxrss_after_inbound"] - r["maxrss_baseline"]),
                "-",
            ]
        )
        rows.append(
            [
                f"delivery ({t['recipients']} copies){note}",
                str(threads),
                mb(t["deliver_peak"]),
                mb(r["deliver_hwm"] - r["deliver_rss_start"] if r["deliver_hwm"] else None),
                mb(r["maxrss_after_deliver"] - r["maxrss_after_inbound"]),
                f"{r['deliver_cpu_seconds'] / r['recipients'] * 1000:.0f} ms"
                f" / {r['deliver_seconds'] / r['recipients'] * 1000:.0f} ms",
            ]
        )
    print(
        table(
            [
                "stage",
                "send threads",
                "tracemalloc peak",
                "VmHWM - RSS at start",
                "ru_maxrss delta",
                "CPU / wall per copy",
            ],
            rows,
        )
    )
    r = results[0]["rss"]
    print(
        f"\nChild process before the stages: RSS {mb(r['rss_baseline'])} (moto + app + setup), "
        f"ru_maxrss {mb(r['maxrss_baseline'])}; after: ru_maxrss {mb(r['maxrss_after_deliver'])}.\n"
        "ru_maxrss only moves once the process exceeds its earlier high-water (set by setup), so it\n"
        "understates a stage; VmHWM is reset (/proc/self/clear_refs) at each stage start instead."
    )
    t, r = results[0]["tracemalloc"], results[0]["rss"]
    rss = [r["inbound_hwm"] - r["rss_baseline"], r["deliver_hwm"] - r["deliver_rss_start"]] if r["inbound_hwm"] else []
    worst = max(t["inbound_peak"], t["deliver_peak"], *rss)
    ok = worst < 256 * MIB
    print(
        f"Target < 256 MiB at the default {t['concurrency']} send threads: {'MET' if ok else 'NOT MET'} (worst {mb(worst)})"
    )
    return ok


def report_links(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Issue 14: the same 10 MB message to the same readers, attachments inline
    (before) and over ``attachment_link_above`` as one stored file and a link (after)."""
    print(
        f"\n3b. Large attachments as links: the same {size(before['raw_bytes'])} message to {before['recipients']} "
        f"readers, inline (before) and linked (after, MUSTER_ATTACHMENT_LINK_ABOVE={after['link_above']})\n"
    )
    rows = []
    for label, r in (("inline (before)", before), ("linked (after)", after)):
        rows.append(
            [
                label,
                size(r["rendered_bytes"] or 0),
                f"{r['copies']}",
                f"{r['request_bytes'] / MIB:,.1f} MiB",
                size(r["stored_file_bytes"]) if r["stored_file_bytes"] else "-",
                f"{r['deliver_seconds']:.1f} s",
                f"{r['deliver_cpu_seconds']:.1f} s",
            ]
        )
    print(
        table(
            [
                "attachments",
                "rendered copy",
                "copies",
                "sent to SES (request bytes)",
                "stored once in S3",
                "delivery wall",
                "delivery CPU",
            ],
            rows,
        )
    )
    volume = after["request_bytes"] / before["request_bytes"]
    wall = after["deliver_seconds"] / before["deliver_seconds"]
    cpu = after["deliver_cpu_seconds"] / before["deliver_cpu_seconds"]
    print(f"\nafter / before: SES data volume {volume:.4f}x, delivery wall {wall:.3f}x, delivery CPU {cpu:.3f}x")
    ok = after["copies"] == before["copies"] and volume < 0.01
    print(f"Target: same copies, < 1% of the SES data volume: {'MET' if ok else 'NOT MET'}")
    return ok


# --- 4. hostile size (issue 13, item 18) ------------------------------------------------


def hostile_inputs() -> dict[str, bytes]:
    head = b"From: Ann <ann0@people.example>\r\nTo: chat@muster.test\r\nMessage-ID: <h@people.example>\r\n"
    subject = b"Subject: " + b"\r\n ".join([b"=?utf-8?q?a?="] * 14_285) + b"\r\n"
    parts = b"".join(b"--b\r\n\r\n" for _ in range(300_000))
    return {
        "200 KB folded Subject of encoded words": head + subject + b"\r\nhello\r\n",
        "300,000 empty MIME parts": head
        + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + parts
        + b"--b--\r\n",
        "5 KB reply (reference)": reply_message(5 * 1024, "chat@muster.test"),
    }


def hostile_child(case: str, how: str) -> dict[str, Any]:
    """One input, one way, in a fresh process: seconds and peak RSS growth."""
    raw = hostile_inputs()[case]
    if how == "stdlib":
        # What the relay did before: parse everything, then read the Subject.
        resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    try:
        if how == "stdlib":
            msg = BytesParser(policy=policy.default).parsebytes(raw)
            str(msg.get("Subject"))
            result = "parsed"
        else:
            from chalicelib.relay.parse import parse_inbound as parse

            result = "too_complex" if parse(raw).too_complex else "parsed"
    except MemoryError:
        result = "MemoryError (3 GB cap)"
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"case": case, "how": how, "seconds": seconds, "rss_growth": peak, "result": result}


def bench_hostile() -> list[dict[str, Any]]:
    rows = []
    for case in hostile_inputs():
        for how in ("stdlib", "muster"):
            try:
                proc = subprocess.run(
                    [sys.executable, __file__, "--hostile-child", case, how],
                    capture_output=True,
                    text=True,
                    timeout=180,
                    check=False,
                )
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            except subprocess.TimeoutExpired:
                rows.append({"case": case, "how": how, "seconds": 180.0, "rss_growth": None, "result": "timeout"})
    return rows


def report_hostile(rows: list[dict[str, Any]]) -> bool:
    print(
        "\n4. Hostile size: stdlib full parse (what the relay did before) vs parse_inbound with the caps,\n"
        "   each in a fresh process (seconds, ru_maxrss growth)\n"
    )
    ref = next(r for r in rows if r["case"].startswith("5 KB") and r["how"] == "stdlib")["seconds"]
    out = []
    ok = True
    for r in rows:
        out.append(
            [
                r["case"],
                r["how"],
                f"{r['seconds'] * 1000:,.1f} ms",
                f"{r['seconds'] / ref:,.1f}x",
                mb(r["rss_growth"]),
                r["result"],
            ]
        )
        if r["how"] == "muster" and not r["case"].startswith("5 KB"):
            ok &= r["result"] == "too_complex" and r["seconds"] < 0.5 and (r["rss_growth"] or 0) < 64 * MIB
    print(table(["input", "parser", "time", "vs 5 KB stdlib parse", "RSS growth", "result"], out))
    print(f"\nTarget: hostile inputs refused as too_complex in < 0.5 s and < 64 MiB: {'MET' if ok else 'NOT MET'}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, N up to 100, 100 recipients for memory")
    ap.add_argument("--memory-child", choices=["tracemalloc", "rss"], help=argparse.SUPPRESS)
    ap.add_argument("--recipients", type=int, default=500, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--part", type=int, choices=[1, 2, 3, 4], action="append", help="run only these parts")
    ap.add_argument("--hostile-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--links", action="store_true", help="only 3b: inline vs linked attachments (issue 14)")
    args = ap.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.recipients)))
        return
    if args.hostile_child:
        print(json.dumps(hostile_child(*args.hostile_child)))
        return

    t0 = time.perf_counter()
    print(
        f"Muster relay benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} cores, {'quick' if args.quick else 'full'}"
    )
    COUNTER.install()
    install_counting_scopes()
    lambda_timeout_context()
    parts = set(args.part or ([] if args.links else [1, 2, 3, 4]))
    rendering: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    memory: list[dict[str, dict[str, Any]]] = []
    ok1 = ok2 = ok3 = ok4 = True
    hostile: list[dict[str, Any]] = []
    links: tuple[dict[str, Any], dict[str, Any]] | None = None
    if 1 in parts:
        rendering = bench_rendering(args.quick)
        ok1 = report_rendering(rendering)
    if 2 in parts:
        calls = bench_calls([10, 100] if args.quick else [10, 100, 1000])
        ok2 = report_calls(calls)
    if 3 in parts:
        recipients = 100 if args.quick else 500
        # Before issue 14's links: every copy carries the whole attachment.
        memory = [bench_memory(recipients, extra_env=LINKS_OFF)]
        if not args.quick:
            # What the proposed cap would do. The peak depends on the threads, not on
            # the batch length (100 and 500 copies peak alike), so 100 copies save time.
            memory.append(bench_memory(100, concurrency=2, extra_env=LINKS_OFF))
        ok3 = report_memory(memory)
    if 3 in parts or args.links:
        links = bench_links(100 if args.quick else 500)
        ok3 &= report_links(*links)
    if 4 in parts:
        hostile = bench_hostile()
        ok4 = report_hostile(hostile)
    print(f"\nAll targets {'met' if ok1 and ok2 and ok3 and ok4 else 'NOT all met'}; {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rendering": rendering,
                    "calls": [
                        {
                            **r,
                            "inbound": {f"{s}.{o}": c for (s, o), c in r["inbound"].items()},
                            "delivery": {f"{s}.{o}": c for (s, o), c in r["delivery"].items()},
                        }
                        for r in calls
                    ],
                    "memory": memory,
                    "links": links,
                    "hostile": hostile,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
