"""The relay end to end in process: SES receipt -> inbound_email -> SQS -> deliver
-> SES, against moto (R3-R12)."""

from __future__ import annotations

import json
import re
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest

from chalicelib.adapters.mail import Mailer, SendFailed
from tests.integration.world import World, event_body, signup_body

ORGANIZER = "olive0@org.example"
STATUSES = {
    "ann0": "registered",
    "ann1": "confirmed",
    "ann2": "attended",
    "ann3": "registered",
    "ann4": "cancelled",
    "ann5": "blocked",
    "ann6": "missed",
}


def addr(name: str) -> str:
    return f"{name}@people.example"


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    """An open chat: one organizer, four active signups, three inactive ones."""
    return world.open_chat(STATUSES.values())


def mail(
    frm: str, to: str, subject: str = "Carpool?", body: str = "Who can drive from the station?", **headers: str
) -> bytes:
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))  # msg-ids stay unfolded, as clients send them
    msg["From"] = f"Someone <{frm}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=frm.split("@")[1])
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body)
    return msg.as_bytes()


def relayed(world: World) -> list:
    return world.relayed()


def real_addresses() -> list[str]:
    return [ORGANIZER, *(addr(n) for n in STATUSES)]


def test_message_reaches_every_other_active_participant_once(world: World, chat: dict) -> None:
    outcome = world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    assert outcome == {"outcomes": ["relayed"]}
    world.drain()

    got = sorted(s.to for s in relayed(world))
    assert got == sorted([ORGANIZER, addr("ann1"), addr("ann2"), addr("ann3")])
    for copy in relayed(world):
        msg = copy.message
        assert msg["From"].addresses[0].display_name == "Ann0 A."
        assert msg["From"].addresses[0].addr_spec == chat["address"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] and msg["List-Post"] == f"<mailto:{chat['address']}>"
        lowered = copy.raw.lower()
        for real in real_addresses():
            assert real.encode() not in lowered


def test_muted_participant_gets_nothing(world: World, chat: dict) -> None:
    world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    (first_to_ann1,) = [s for s in relayed(world) if s.to == addr("ann1")]
    url = first_to_ann1.message["List-Unsubscribe"].strip("<>")
    path = url.removeprefix(world.settings.public_url)

    # A link scanner's GET mutes nothing
    assert world.client.http.get(path).status_code == 200
    response = world.client.http.post(
        path, body=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    before = len(relayed(world))
    world.receive(mail(addr("ann2"), chat["address"], subject="Second"), sender=addr("ann2"), to=[chat["address"]])
    world.drain()
    new = [s.to for s in relayed(world)[before:]]
    assert addr("ann1") not in new
    assert sorted(new) == sorted([ORGANIZER, addr("ann0"), addr("ann3")])


@pytest.mark.parametrize("mangle", ["tamper", "truncate", "garbage"])
def test_bad_mute_token_is_refused_without_change(world: World, chat: dict, mangle: str) -> None:
    world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    url = relayed(world)[0].message["List-Unsubscribe"].strip("<>")
    token = url.rsplit("/", 1)[1]
    bad = {"tamper": token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "truncate": token[:20], "garbage": "x"}[
        mangle
    ]
    response = world.client.http.post(
        f"/mute/{bad}",
        body=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403
    participants = world.chat("e1", "t1")["participants"]
    assert not any(p["muted"] for p in participants)


def test_token_for_one_chat_does_not_mute_in_another(world: World, chat: dict) -> None:
    from chalicelib.relay.tokens import sign_token

    forged = sign_token(b"some-other-deployment-key", chat_id="x" * 16, participant_key="s-s1", expires_at=2**31)
    assert world.client.http.post(f"/mute/{forged}", body=b"List-Unsubscribe=One-Click").status_code == 403


def test_duplicate_ses_invocation_sends_one_copy_each(world: World, chat: dict) -> None:
    raw = mail(addr("ann0"), chat["address"])
    world.receive(raw, sender=addr("ann0"), to=[chat["address"]], ses_message_id="ses-dup-1")
    world.receive(raw, sender=addr("ann0"), to=[chat["address"]], ses_message_id="ses-dup-1")
    world.drain()
    assert len(relayed(world)) == 4


def test_duplicate_sqs_delivery_sends_one_copy_each(world: World, chat: dict) -> None:
    import boto3

    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=world.settings.delivery_queue)["QueueUrl"]
    world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])  # SQS delivers it twice
    world.drain()
    assert sorted(s.to for s in relayed(world)) == sorted([ORGANIZER, addr("ann1"), addr("ann2"), addr("ann3")])


def test_ses_failure_for_one_recipient_retries_that_recipient_only(world: World, chat: dict) -> None:
    attempts: dict[str, int] = {}
    real_send = Mailer.send_raw

    def flaky(self: Mailer, *, sender: str, recipient: str, raw: bytes) -> str:
        attempts[recipient] = attempts.get(recipient, 0) + 1
        if recipient == addr("ann2") and attempts[recipient] == 1:
            raise SendFailed("Throttling", "transient")
        return real_send(self, sender=sender, recipient=recipient, raw=raw)

    world.patch("chalicelib.adapters.mail.Mailer.send_raw", flaky)
    world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    assert attempts == {ORGANIZER: 1, addr("ann1"): 1, addr("ann2"): 2, addr("ann3"): 1}
    assert sorted(s.to for s in relayed(world)) == sorted([ORGANIZER, addr("ann1"), addr("ann2"), addr("ann3")])


def test_permanent_failure_is_recorded_per_recipient(world: World, chat: dict) -> None:
    real_send = Mailer.send_raw

    def rejecting(self: Mailer, *, sender: str, recipient: str, raw: bytes) -> str:
        if recipient == addr("ann3"):
            raise SendFailed("MessageRejected", "permanent")
        return real_send(self, sender=sender, recipient=recipient, raw=raw)

    world.patch("chalicelib.adapters.mail.Mailer.send_raw", rejecting)
    world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    from chalicelib.models import Delivery

    records = {
        d.participant_key: d for d in Delivery.scan() if d.sk.startswith("TO#") and not d.pk.startswith("MSG#kickoff")
    }
    assert records["s-s3"].status == "failed" and records["s-s3"].reason == "MessageRejected"
    assert {k for k, d in records.items() if d.status == "sent"} == {"o-org0", "s-s1", "s-s2"}


def log_outcomes(world: World) -> list[str]:
    from chalicelib.models import MessageLog

    return sorted(m.outcome for m in MessageLog.scan() if m.sk.startswith("M#"))


REFUSALS = [
    ("spoofed: spf and dkim fail", addr("ann0"), {"spf": "FAIL", "dkim": "FAIL"}, {}, "auth_failed"),
    ("dmarc fail", addr("ann0"), {"dmarc": "FAIL"}, {}, "auth_failed"),
    ("virus", addr("ann0"), {"virus": "FAIL"}, {}, "virus"),
    ("spam", addr("ann0"), {"spam": "FAIL"}, {}, "spam"),
    ("auto-reply", addr("ann0"), {}, {"Auto_Submitted": "auto-replied"}, "auto_reply"),
    ("vacation precedence", addr("ann0"), {}, {"Precedence": "bulk"}, "auto_reply"),
    ("from the relay domain", "loop@muster.test", {}, {}, "loop"),
]


@pytest.mark.parametrize("case, sender, verdicts, headers, reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_mail_is_not_relayed_and_recorded(
    world: World, chat: dict, case: str, sender: str, verdicts: dict, headers: dict, reason: str
) -> None:
    outcome = world.receive(
        mail(sender, chat["address"], **headers), sender=sender, to=[chat["address"]], verdicts=verdicts
    )
    world.drain()
    assert outcome == {"outcomes": [reason]}
    assert relayed(world) == []  # not relayed, and no notice to anyone (no backscatter)
    assert log_outcomes(world) == [reason]


def test_cancelled_signup_is_not_relayed_but_told_why(world: World, chat: dict) -> None:
    outcome = world.receive(mail(addr("ann4"), chat["address"]), sender=addr("ann4"), to=[chat["address"]])
    world.drain()
    assert outcome == {"outcomes": ["sender_inactive"]}
    (notice,) = relayed(world)
    assert notice.to == addr("ann4")
    assert "no longer active" in notice.message.get_body(("plain",)).get_content()


def test_delivery_report_is_neither_relayed_nor_answered(world: World, chat: dict) -> None:
    dsn = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.people.example>\r\nTo: "
        + chat["address"].encode()
        + b"\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.people.example\r\n\r\nFinal-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    outcome = world.receive(dsn, sender="", to=[chat["address"]])
    world.drain()
    assert outcome["outcomes"][0] in {"null_sender", "delivery_report"}
    assert relayed(world) == []


def test_stranger_gets_one_polite_notice_a_day(world: World, chat: dict) -> None:
    stranger = "stranger@elsewhere.example"
    for n in range(3):
        outcome = world.receive(
            mail(stranger, chat["address"], subject=f"hi {n}"), sender=stranger, to=[chat["address"]]
        )
        assert outcome == {"outcomes": ["not_a_participant"]}
    world.drain()
    notices = relayed(world)
    assert [n.to for n in notices] == [stranger]
    from chalicelib.models import MessageLog

    assert sorted(m.bounced for m in MessageLog.scan() if m.sk.startswith("M#")) == [False, False, True]
    text = notices[0].message.get_body(("plain",)).get_content()
    assert "not in this chat" in text
    for real in real_addresses():
        assert real.encode() not in notices[0].raw.lower()


def test_too_large_is_refused_with_a_notice(world: World, chat: dict) -> None:
    with world.settings_override(MUSTER_MAX_MESSAGE_BYTES="2000"):
        outcome = world.receive(
            mail(addr("ann0"), chat["address"], body="x" * 5000), sender=addr("ann0"), to=[chat["address"]]
        )
    world.drain()
    assert outcome == {"outcomes": ["too_large"]}
    assert [n.to for n in relayed(world)] == [addr("ann0")]
    assert "too large" in relayed(world)[0].message.get_body(("plain",)).get_content()


def test_chat_not_open_yet_says_when_it_opens(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=50))
    world.put_signup("e1", "s0", signup_body(0))
    chat = world.chat("e1", "t1")
    outcome = world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    assert outcome == {"outcomes": ["chat_not_open"]}
    (notice,) = world.sent()
    assert "opens on" in notice.message.get_body(("plain",)).get_content()


def test_plus_tag_and_case_are_tolerated(world: World, chat: dict) -> None:
    local, domain = chat["address"].split("@")
    to = f"{local.upper()}+carpool@{domain.upper()}"
    assert world.receive(mail(addr("ann0"), to), sender=addr("ann0"), to=[to]) == {"outcomes": ["relayed"]}


def test_reply_to_a_relayed_copy_cites_each_readers_own_copy_of_the_parent(world: World, chat: dict) -> None:
    from chalicelib.models import Delivery

    first = mail(addr("ann0"), chat["address"])
    ann0_client_id = re.search(rb"Message-ID: (<[^>]+>)", first).group(1).decode()  # type: ignore[union-attr]
    world.receive(first, sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    root_id = relayed(world)[0].message["Message-ID"]  # moto keeps ours; SES would replace it
    root = root_id.strip("<>").split("@")[0]
    # What each reader's client holds the first message under: their copy's SES id.
    held = {
        d.participant_key: f"<{d.ses_message_id}@email.amazonses.com>" for d in Delivery.scan() if d.pk == f"MSG#{root}"
    }
    assert all(copy.message["References"] == root_id for copy in relayed(world))  # a root cites itself

    reply = mail(
        addr("ann1"),
        chat["address"],
        subject="Re: Carpool?",
        body="I can drive.",
        In_Reply_To=held["s-s1"],
        References=held["s-s1"],
    )
    before = len(relayed(world))
    world.receive(reply, sender=addr("ann1"), to=[chat["address"]])
    world.drain()

    copies = {s.to: s.message for s in relayed(world)[before:]}
    assert sorted(copies) == sorted([ORGANIZER, addr("ann0"), addr("ann2"), addr("ann3")])
    expected = {
        ORGANIZER: held["o-org0"],
        addr("ann0"): ann0_client_id,
        addr("ann2"): held["s-s2"],
        addr("ann3"): held["s-s3"],
    }
    for to, message in copies.items():
        assert message["In-Reply-To"] == expected[to], to
        refs = str(message["References"]).split()
        assert refs == [root_id, expected[to], message["Message-ID"]], to


def test_authors_own_reply_to_their_sent_message_threads(world: World, chat: dict) -> None:
    first = mail(addr("ann0"), chat["address"])
    client_id = re.search(rb"Message-ID: (<[^>]+>)", first).group(1).decode()  # type: ignore[union-attr]
    world.receive(first, sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    muster_id = relayed(world)[0].message["Message-ID"]
    follow_up = mail(addr("ann0"), chat["address"], subject="Re: Carpool?", In_Reply_To=client_id)
    before = len(relayed(world))
    world.receive(follow_up, sender=addr("ann0"), to=[chat["address"]])
    world.drain()
    # Every reader gets the follow-up threaded under the first message: their copy
    # cites the first message's Muster id and their own copy of it.
    for copy in relayed(world)[before:]:
        assert muster_id in str(copy.message["References"])
        assert copy.message["In-Reply-To"].endswith("@email.amazonses.com>")


def test_sender_rate_limit_bounces_politely(world: World, chat: dict) -> None:
    with world.settings_override(MUSTER_SENDER_MESSAGES_PER_HOUR="2"):
        outcomes = [
            world.receive(
                mail(addr("ann0"), chat["address"], subject=f"m{n}"), sender=addr("ann0"), to=[chat["address"]]
            )["outcomes"][0]
            for n in range(3)
        ]
    assert outcomes == ["relayed", "relayed", "rate_limited"]
    world.drain()
    (notice,) = [s for s in relayed(world) if s.to == addr("ann0")]
    assert "too many messages" in notice.message.get_body(("plain",)).get_content()


def test_kpis_count_messages_per_chat(world: World, chat: dict) -> None:
    world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    from chalicelib.models import ChatStats

    (stats,) = [s for s in ChatStats.scan() if s.sk == "STATS"]
    assert stats.messages == 1 and stats.after_event == 0
    assert json.dumps(log_outcomes(world)) == '["relayed"]'


def test_kpis_report_shares_of_opened_chats(world: World, chat: dict) -> None:
    from datetime import timedelta

    from chalicelib import clock
    from chalicelib.services import kpis as service

    def kpis() -> service.Kpis:
        today = clock.now().date()
        return service.kpis(world.integration, today - timedelta(days=2), today + timedelta(days=1))

    # Given a second shift whose chat opened but stayed silent
    body = event_body(start_in_hours=10)
    body["timeslots"].append({**body["timeslots"][0], "id": "t2"})
    world.put_event("e1", body)
    assert kpis().chats_opened == 2 and kpis().with_messages == 0

    # When someone posts in the first chat after its shift ended
    world.advance(13)
    world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])

    # Then half the chats carried a message, and half went on after the event
    k = kpis()
    assert (k.chats_opened, k.with_messages, k.after_event) == (2, 1, 1)
    assert k.share_with_messages == 0.5 and k.share_after_event == 0.5


def test_many_batches_still_deliver_one_copy_each(world: World, chat: dict) -> None:
    import boto3

    # Given recipient batches of one person each (as a 10 MB message gets smaller batches)
    with world.settings_override(MUSTER_BATCH_SIZE="1"):
        world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
        sqs = boto3.client("sqs")
        url = sqs.get_queue_url(QueueName=world.settings.delivery_queue)["QueueUrl"]
        queued = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        world.drain()
    assert queued == 4
    assert sorted(s.to for s in relayed(world)) == sorted([ORGANIZER, addr("ann1"), addr("ann2"), addr("ann3")])


def test_large_message_gets_smaller_batches(world: World, chat: dict) -> None:
    import boto3

    from chalicelib.models import Chat
    from chalicelib.services.fanout import FanOut

    # Given a 10 MB rendered message for 120 recipients
    chat_item = next(c for c in Chat.scan() if c.sk == "META" and c.pk.startswith("CH#"))
    FanOut().relay(chat_item, "m1", "outbound/m1.eml", "s-s0", [f"s-x{n}" for n in range(120)], size=10 * 1024 * 1024)

    # Then they go out in batches of 50, so one delivery Lambda holds ~500 MB of copies at most
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=world.settings.delivery_queue)["QueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(len(b["recipients"]) for b in bodies) == [20, 50, 50]


def test_an_authors_client_id_never_goes_to_someone_else_under_the_same_signup(world: World, chat: dict) -> None:
    from chalicelib.models import Delivery

    first = mail(addr("ann1"), chat["address"], subject="Rides")
    client_id = re.search(rb"Message-ID: (<[^>]+>)", first).group(1).decode()  # type: ignore[union-attr]
    world.receive(first, sender=addr("ann1"), to=[chat["address"]])
    world.drain()
    root = relayed(world)[0].message["Message-ID"].strip("<>").split("@")[0]
    ann0_copy = next(d.ses_message_id for d in Delivery.scan() if d.pk == f"MSG#{root}" and d.sk == "TO#s-s0")
    # The platform reuses signup s1 for another person.
    body = signup_body(1, "registered")
    body["person"] = {"first_name": "Zed", "last_name": "Newcomer", "email": "zed@people.example"}
    assert world.put_signup("e1", "s1", body).status_code == 200
    before = len(relayed(world))
    world.receive(
        mail(addr("ann0"), chat["address"], subject="Re: Rides", In_Reply_To=f"<{ann0_copy}@email.amazonses.com>"),
        sender=addr("ann0"),
        to=[chat["address"]],
    )
    world.drain()

    zed = next(s for s in relayed(world)[before:] if s.to == "zed@people.example")
    assert client_id not in zed.raw.decode("ascii", "replace")
    assert zed.message["In-Reply-To"] == f"<{root}@{world.settings.relay_domain}>"
