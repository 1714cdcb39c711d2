"""SMS bridge (issue 12), in process: moto for AWS, the twin's SMS service
(infra/twin/sms.py) behind the app's one SMS adapter, the real handlers.

A mixed chat (an organizer and two signups by mail, two signups by text, one of
them ``both``): every message reaches everyone once, in the right form, both
ways, with no address or phone number in any copy; duplicates relay once;
throttled texts are retried; permanent failures opt the number out; STOP, START,
HELP, MUTE; routing (most recent chat, ``#n``, CHATS, unknown numbers).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from chalicelib.models import SmsCopy
from infra.twin.lambdas import sns_event
from infra.twin.sms import SmsBackend, inbound_message
from tests.integration.faults import aws_fault, client_error
from tests.integration.world import World, at, event_body

SAM = "+12025550143"  # sms
BEA = "+13125550123"  # both (mail and text)
PAT = "+14155550101"  # an email person whose number is on file
NUMBERS = (SAM, BEA, PAT)
ADDRESSES = ("olive0@org.example", "ann0@people.example", "ann1@people.example", "bea@people.example")


@pytest.fixture
def texts(world: World, tmp_path: Path) -> Iterator[SmsBackend]:
    backend = SmsBackend(tmp_path / "sms")
    world.patch("chalicelib.adapters.sms._client", lambda endpoint, region: backend)
    yield backend


def person(
    n: int, first: str, *, email: str | None, phone: str | None = None, channel: str = "email"
) -> dict[str, Any]:
    p: dict[str, Any] = {"first_name": first, "last_name": "Smith", "channel": channel}
    if email:
        p["email"] = email
    if phone:
        p["phone"] = phone
    return p


def signup(world: World, sid: str, p: dict[str, Any], timeslot: str = "t1", event: str = "e1") -> None:
    r = world.put_signup(event, sid, {"timeslot_id": timeslot, "status": "registered", "person": p})
    assert r.status_code in (200, 201), r.body


def mixed_chat(world: World, *, slots: int = 1) -> None:
    body = event_body(start_in_hours=10)
    if slots == 2:
        body["timeslots"].append({"id": "t2", "starts_at": at(30), "ends_at": at(32)})
    assert world.put_event("e1", body).status_code in (200, 201)
    signup(world, "s0", person(0, "Ann", email="ann0@people.example", phone=PAT))
    signup(world, "s1", person(1, "Abe", email="ann1@people.example"))
    signup(world, "s2", person(2, "Sam", email=None, phone=SAM, channel="sms"))
    signup(world, "s3", person(3, "Bea", email="bea@people.example", phone=BEA, channel="both"))
    if slots == 2:
        signup(world, "s4", person(4, "Sam", email=None, phone=SAM, channel="sms"), timeslot="t2")
    world.drain()
    world.kickoffs = len(world.sent())


def text_in(world: World, origin: str, text: str, inbound_id: str | None = None) -> Any:
    msg = inbound_message(origin, text, "+15550100000", inbound_id or uuid.uuid4().hex)
    result = world.client.lambda_.invoke("sms_inbound", sns_event({"Message": json.dumps(msg)}, "arn:sub")).payload
    world.drain()
    return result


def mail_in(world: World, sender: str, text: str, chat: dict[str, Any]) -> None:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = chat["address"]
    m["Subject"] = "Plans"
    m["Message-ID"] = f"<{uuid.uuid4().hex}@people.example>"
    m.set_content(text)
    world.receive(m.as_bytes(), sender=sender, to=[chat["address"]])
    world.drain()


def got(backend: SmsBackend, number: str) -> list[str]:
    return backend.texts(number)


def assert_no_leaks(blob: str) -> None:
    digits = re.sub(r"\D", "", blob)
    for number in NUMBERS:
        assert number[2:] not in digits, number
    for address in ADDRESSES:
        assert address not in blob.lower()


def test_a_mixed_chat_reaches_everyone_once_in_their_form_both_ways(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    chat = world.chat("e1", "t1")
    # Kickoffs: by mail to the mail people, by text to the text people (Bea both).
    assert len(got(texts, SAM)) == 1 and len(got(texts, BEA)) == 1
    assert "STOP" in got(texts, SAM)[0]
    assert {s.to for s in world.sent()} == {
        "olive0@org.example",
        "ann0@people.example",
        "ann1@people.example",
        "bea@people.example",
    }

    # Mail -> chat: the mail people by mail, the text people by text, trimmed and named.
    mail_in(world, "ann0@people.example", "Bring water, call me at (415) 555-0101\n\nOn Mon, Olive wrote:\n> hi", chat)
    mails = world.relayed()
    assert sorted(s.to for s in mails) == ["ann1@people.example", "bea@people.example", "olive0@org.example"]
    for n in (SAM, BEA):
        assert len(got(texts, n)) == 2
        assert got(texts, n)[-1] == "Ann S. (Canvass): Bring water, call me at Ann S."
    # Text -> chat: Sam's text reaches everyone else once, by their channel.
    text_in(world, SAM, "Running 10 min late, text Bea at 312.555.0123")
    mails = world.relayed()[3:]
    assert sorted(s.to for s in mails) == [
        "ann0@people.example",
        "ann1@people.example",
        "bea@people.example",
        "olive0@org.example",
    ]
    for s in mails:
        body = s.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert "Running 10 min late, text Bea at Bea S." in body
        assert "Sam S." in str(s.message["From"])
        assert_no_leaks(s.raw.decode("utf-8", "replace"))
    assert got(texts, BEA)[-1] == "Sam S. (Canvass): Running 10 min late, text Bea at Bea S."
    assert len(got(texts, SAM)) == 2  # never their own text back
    for n in (SAM, BEA):
        for t in got(texts, n):
            assert_no_leaks(t)
    # Every text copy is recorded with its segments and cost.
    copies = [c for c in SmsCopy.scan(SmsCopy.sk.startswith("SMS#")) if c.status == "sent"]
    assert copies and all(c.segments >= 1 and c.cost > 0 for c in copies)


def test_a_duplicate_sns_delivery_relays_once(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    text_in(world, SAM, "On my way", inbound_id="in-1")
    before = (len(world.sent()), len(texts.sent))
    text_in(world, SAM, "On my way", inbound_id="in-1")
    assert (len(world.sent()), len(texts.sent)) == before
    assert len([s for s in world.relayed() if s.to == "ann1@people.example"]) == 1


def test_a_throttled_text_is_retried_and_arrives_once(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    texts.throttle_next = 1
    mail_in(world, "ann1@people.example", "Parking is behind the library", world.chat("e1", "t1"))
    relayed = [t for n in (SAM, BEA) for t in got(texts, n) if "Parking" in t]
    assert len(relayed) == 2  # one each, after the throttled batch came back from SQS
    assert texts.calls >= 3


def test_a_text_record_lost_twice_after_the_send_is_retried_and_the_text_is_not_repeated(
    world: World, texts: SmsBackend
) -> None:
    """A text went out, then its record's write was throttled twice: the record is
    written on the third try, the batch succeeds, and nobody gets the text again."""
    mixed_chat(world)
    hits = aws_fault(
        world,
        "UpdateItem",
        client_error("ProvisionedThroughputExceededException", operation="UpdateItem"),
        when=lambda params: params.get("Key", {}).get("sk", {}).get("S", "").startswith("SMS#"),
        times=2,
    )
    mail_in(world, "ann1@people.example", "Parking is behind the library", world.chat("e1", "t1"))
    assert len(hits) == 2
    relayed = [t for n in (SAM, BEA) for t in got(texts, n) if "Parking" in t]
    assert len(relayed) == 2  # one each: the throttled record did not make the batch send again
    records = [c for c in SmsCopy.scan(SmsCopy.sk.startswith("SMS#")) if c.status == "sent"]
    assert len({c.pk for c in records}) == 2  # the kickoff's texts and this message's, all recorded


def test_a_permanent_failure_opts_the_number_out_and_mail_goes_on(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    texts.refused.add(BEA)
    chat = world.chat("e1", "t1")
    mail_in(world, "ann1@people.example", "First", chat)
    mail_in(world, "ann1@people.example", "Second", chat)
    assert not any("First" in t or "Second" in t for t in got(texts, BEA))
    assert len([c for c in texts.sent if c["DestinationPhoneNumber"] == BEA]) == 1  # the kickoff only
    assert len([s for s in world.inbox("bea@people.example") if "Second" in s.raw.decode()]) == 1
    failed = [
        c for c in SmsCopy.scan(SmsCopy.sk.startswith("SMS#")) if c.participant_key == "s-s3" and c.status == "failed"
    ]
    assert len(failed) == 1  # the second message found the number opted out: no attempt


def test_a_delivery_event_with_a_permanent_failure_opts_the_number_out(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    event = {"eventType": "TEXT_INVALID", "destinationPhoneNumber": SAM, "messageId": "x", "context": {}}
    world.client.lambda_.invoke("feedback", sns_event({"Message": json.dumps(event)}, "arn:sub"))
    mail_in(world, "ann1@people.example", "Anyone there?", world.chat("e1", "t1"))
    assert not any("Anyone" in t for t in got(texts, SAM))
    assert any("Anyone" in t for t in got(texts, BEA))


def test_stop_confirms_once_silences_every_chat_keeps_mail_and_start_restores(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    chat = world.chat("e1", "t1")
    n = len(got(texts, BEA))
    text_in(world, BEA, "Stop")
    text_in(world, BEA, "STOP")
    replies = got(texts, BEA)[n:]
    assert len(replies) == 1 and "no more texts" in replies[0]
    mail_in(world, "ann1@people.example", "Shirts are blue", chat)
    assert len(got(texts, BEA)) == n + 1
    assert any("Shirts" in s.raw.decode() for s in world.inbox("bea@people.example"))
    assert any("Shirts" in t for t in got(texts, SAM))
    # Never relayed: nobody saw the word STOP.
    assert not any("Stop" in t or "STOP" in t.split(":")[-1] for t in got(texts, SAM)[1:])
    assert not any(
        "Stop" in (s.message.get_body(("plain",)).get_content())
        for s in world.relayed()
        if s.to == "ann1@people.example"
    )  # type: ignore[union-attr]
    text_in(world, BEA, "start")
    assert "back on" in got(texts, BEA)[-1]
    mail_in(world, "ann1@people.example", "Lunch at noon", chat)
    assert "Lunch at noon" in got(texts, BEA)[-1]


def test_help_names_the_organization_and_how_to_stop(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    text_in(world, SAM, "help")
    assert "Muster" in got(texts, SAM)[-1] and "STOP" in got(texts, SAM)[-1]
    assert world.relayed() == []


def test_mute_and_unmute_act_on_the_current_chat(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    chat = world.chat("e1", "t1")
    text_in(world, SAM, "MUTE")
    assert "muted" in got(texts, SAM)[-1]
    n = len(got(texts, SAM))
    mail_in(world, "ann1@people.example", "Quiet please", chat)
    assert len(got(texts, SAM)) == n
    text_in(world, SAM, "unmute")
    mail_in(world, "ann1@people.example", "Back again", chat)
    assert "Back again" in got(texts, SAM)[-1]


def test_routing_most_recent_chat_numbers_and_chats(world: World, texts: SmsBackend) -> None:
    mixed_chat(world, slots=2)
    world.advance(22)  # both chats open (t2 starts 30 h out, opens 48 h before)
    for s in world.schedules():
        world.fire_schedule(s)
    world.drain()
    text_in(world, SAM, "CHATS")
    listing = got(texts, SAM)[-1]
    assert "#1 Canvass" in listing and "#2 Canvass" in listing
    start = len(world.sent())
    text_in(world, SAM, "#2 See you Tuesday")
    # Chat 2 has Sam alone besides the organizer: only Olive gets it.
    assert [s.to for s in world.sent()[start:]] == ["olive0@org.example"]
    text_in(world, SAM, "#7 nowhere")
    assert "no chat #7" in got(texts, SAM)[-1]


def test_an_unknown_number_gets_one_notice_a_day(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    stranger = "+12015550123"
    text_in(world, stranger, "hello?")
    text_in(world, stranger, "anyone?")
    assert len(got(texts, stranger)) == 1 and "not in any chat" in got(texts, stranger)[0]
    assert world.relayed() == []


def test_a_long_message_is_cut_with_a_link_to_the_whole_of_it(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    long = " ".join(f"word{i}" for i in range(200)) + " THE-END"
    mail_in(world, "ann1@people.example", long, world.chat("e1", "t1"))
    text = got(texts, SAM)[-1]
    assert "THE-END" not in text
    link = re.search(r"\(more: (\S+)\)$", text)
    assert link is not None
    path = link.group(1).split("://", 1)[1].split("/", 1)[1]
    page = world.client.http.get(f"/{path}")
    assert page.status_code == 200 and b"THE-END" in page.body
    assert_no_leaks(page.body.decode())
    tampered = world.client.http.get(f"/{path[:-2]}xx")
    assert tampered.status_code == 403


def test_a_text_to_a_closed_chat_gets_one_notice_a_day(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    world.advance(10 + 2 + 7 * 24 + 1)
    for s in world.schedules():
        world.fire_schedule(s)
    start = len(world.sent())
    n = len(got(texts, SAM))
    text_in(world, SAM, "still there?")
    text_in(world, SAM, "hello?")
    assert len(world.sent()) == start
    assert len(got(texts, SAM)) == n + 1 and "closed" in got(texts, SAM)[-1]


@pytest.mark.parametrize(
    ("person", "field"),
    [
        ({"first_name": "Sam", "channel": "sms"}, "person"),  # no phone
        ({"first_name": "Sam", "phone": SAM}, "person"),  # email channel without an email
        ({"first_name": "Sam", "phone": "+1202555014", "channel": "sms"}, "person.phone"),  # too short for +1
        ({"first_name": "Sam", "phone": "202-555-0143", "channel": "sms"}, "person.phone"),  # not E.164
        ({"first_name": "Sam", "phone": SAM, "channel": "pager"}, "person.channel"),
    ],
)
def test_people_reachable_by_text_are_validated_strictly(world: World, person: dict[str, Any], field: str) -> None:
    assert world.put_event("e1", event_body(start_in_hours=10)).status_code == 201
    r = world.put_signup("e1", "s9", {"timeslot_id": "t1", "status": "registered", "person": person})
    assert r.status_code == 422, r.body
    error = json.loads(r.body)["error"]
    assert error["field"].startswith(field), error
    assert SAM not in r.body.decode()  # never echoed back


def test_a_signup_by_text_reads_back_as_given_and_mail_only_people_are_unchanged(
    world: World, texts: SmsBackend
) -> None:
    assert world.put_event("e1", event_body(start_in_hours=10)).status_code == 201
    signup(world, "s2", person(2, "Sam", email=None, phone=SAM, channel="sms"))
    view = json.loads(world.call("GET", "/events/e1/signups/s2").body)
    assert view["person"] == {"first_name": "Sam", "last_name": "Smith", "email": None, "phone": SAM, "channel": "sms"}
    signup(world, "s1", {"first_name": "Abe", "email": "ann1@people.example"})
    view = json.loads(world.call("GET", "/events/e1/signups/s1").body)
    assert view["person"]["channel"] == "email" and view["person"]["phone"] is None


def test_an_attachment_becomes_a_photo_link_that_downloads(world: World, texts: SmsBackend) -> None:
    mixed_chat(world)
    chat = world.chat("e1", "t1")
    m = EmailMessage()
    m["From"] = "ann1@people.example"
    m["To"] = chat["address"]
    m["Subject"] = "Map"
    m["Message-ID"] = f"<{uuid.uuid4().hex}@people.example>"
    m.set_content("Here is the map")
    m.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, maintype="image", subtype="png", filename="map.png")
    world.receive(m.as_bytes(), sender="ann1@people.example", to=[chat["address"]])
    world.drain()
    text = got(texts, SAM)[-1]
    link = re.search(r"^Abe S\. \(Canvass\): Here is the map \(photo: (\S+)\)$", text)
    assert link is not None, text
    path = "/" + link.group(1).split("://", 1)[1].split("/", 1)[1]
    response = world.client.http.get(path)
    assert response.status_code == 302 and "files/" in response.headers["Location"]


def test_a_keyword_by_text_is_answered_privately_by_text_and_never_relayed(world: World, texts: SmsBackend) -> None:
    body = event_body(start_in_hours=10)
    body["keywords"] = {"WHERE": "Meet at the library steps"}
    assert world.put_event("e1", body).status_code in (200, 201)
    signup(world, "s0", person(0, "Ann", email="ann0@people.example", phone=PAT))
    signup(world, "s2", person(2, "Sam", email=None, phone=SAM, channel="sms"))
    world.drain()
    before_mail, before_sam = len(world.sent()), len(got(texts, SAM))

    inbound_id = uuid.uuid4().hex
    text_in(world, SAM, "where?", inbound_id)
    answers = got(texts, SAM)[before_sam:]
    assert len(answers) == 1 and "Meet at the library steps" in answers[0]
    assert len(world.sent()) == before_mail  # nobody else hears the question
    assert_no_leaks(answers[0])

    text_in(world, SAM, "where?", inbound_id)  # SNS delivers it again
    assert len(got(texts, SAM)) == before_sam + 1
    assert len(world.sent()) == before_mail
