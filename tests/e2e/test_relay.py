"""A chat end to end through the local twin: real SMTP in, real HTTP API, the
outbox out. Only the triggers are emulated; every handler is the production one."""

from __future__ import annotations

import json
import smtplib
import time
import uuid
from email.utils import getaddresses, parseaddr

import boto3
import pytest

from infra.twin.client import Copy, chat_message, event_body, wait_for
from tests.e2e.conftest import ATTENDEES, ORGANIZER, REAL_ADDRESSES, ChatWorld, Twin

pytestmark = pytest.mark.e2e


def post(world: ChatWorld, who: str, subject: str, text: str, headers: dict[str, str] | None = None) -> str:
    """Send as ``who``; the client Message-ID their mail client keeps in Sent."""
    first, last, email = ATTENDEES[who]
    msg = chat_message(f"{first} {last} <{email}>", world.address, subject, text, headers=headers)
    world.twin.client.send(msg, email, [world.address])
    return str(msg["Message-ID"])


def copies_with(world: ChatWorld, marker: str) -> list[Copy]:
    return [c for c in world.twin.client.outbox() if marker in str(c.message["Subject"] or "")]


def wait_copies(world: ChatWorld, marker: str, count: int, timeout: float = 30) -> list[Copy]:
    def enough() -> list[Copy] | None:
        found = copies_with(world, marker)
        return found if len(found) >= count else None

    wait_for(enough, timeout, what=f"{count} copies of {marker!r}")
    time.sleep(0.7)  # anything extra (a duplicate, a copy to the author) would show up by now
    return copies_with(world, marker)


def assert_anonymous(copy: Copy) -> None:
    raw = copy.raw.lower()
    for address in REAL_ADDRESSES:
        assert address.encode() not in raw, f"{address} leaked into the copy to {copy.to}"


def test_kickoff_reaches_each_participant_once(chat_world: ChatWorld) -> None:
    assert sorted(c.to for c in chat_world.kickoffs) == sorted(REAL_ADDRESSES)
    for copy in chat_world.kickoffs:
        assert parseaddr(str(copy.message["From"]))[1] == chat_world.address
        assert copy.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_post_reaches_the_other_three_once_anonymized_with_list_headers(chat_world: ChatWorld) -> None:
    marker = f"vans-{uuid.uuid4().hex[:6]}"
    post(chat_world, "ann", f"Who has the van keys? {marker}", "I can drive at 8. Ann\n")
    copies = wait_copies(chat_world, marker, 3)

    assert sorted(c.to for c in copies) == sorted([ORGANIZER["email"], ATTENDEES["ben"][2], ATTENDEES["cat"][2]])
    for copy in copies:
        msg = copy.message
        name, address = parseaddr(str(msg["From"]))
        assert (name, address) == ("Ann A.", chat_world.address)  # R5
        assert_anonymous(copy)
        chat_id = chat_world.address.split("@")[0].rsplit("-", 1)[-1]
        assert chat_id in str(msg["List-Id"]) and str(msg["List-Id"]).rstrip().endswith(">"), msg["List-Id"]  # R11
        assert str(msg["List-Post"]).strip() == f"<mailto:{chat_world.address}>"
        unsubscribe = str(msg["List-Unsubscribe"])
        assert unsubscribe.startswith("<" + chat_world.twin.config.api_url + "/mute/"), unsubscribe
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert str(msg["Message-ID"]).endswith("@email.amazonses.com>")  # SES replaced it
        assert copy.sent_message_id and copy.sent_message_id.endswith("@muster.test>")


def test_reply_threads_to_the_first_message(chat_world: ChatWorld) -> None:
    marker = f"shirts-{uuid.uuid4().hex[:6]}"
    anns_id = post(chat_world, "ann", f"T-shirt sizes {marker}", "Send me your sizes.\n")
    first = wait_copies(chat_world, marker, 3)
    muster_id = first[0].sent_message_id
    assert muster_id and all(c.sent_message_id == muster_id for c in first)

    bens = next(c for c in first if c.to == ATTENDEES["ben"][2])
    cited = str(bens.message["Message-ID"])  # what Ben's mail client sees: SES's id
    post(
        chat_world,
        "ben",
        f"Re: T-shirt sizes {marker}",
        "Large, please.\n",
        headers={"In-Reply-To": cited, "References": cited},
    )
    replies = wait_for(
        lambda: [c for c in copies_with(chat_world, marker) if c.message["In-Reply-To"]] or None,
        30,
        what="the relayed reply",
    )
    time.sleep(0.7)
    replies = [c for c in copies_with(chat_world, marker) if c.message["In-Reply-To"]]
    assert sorted(c.to for c in replies) == sorted([ORGANIZER["email"], ATTENDEES["ann"][2], ATTENDEES["cat"][2]])
    # Each reader's copy cites the copy of the first message *that reader* holds
    # (SES gave every copy its own Message-ID); Ann holds her own sent message.
    held = {c.to: str(c.message["Message-ID"]).strip() for c in first} | {ATTENDEES["ann"][2]: anns_id}
    for reply in replies:
        assert str(reply.message["In-Reply-To"]).strip() == held[reply.to]
        assert muster_id in str(reply.message["References"])
        assert parseaddr(str(reply.message["From"]))[0] == "Ben B."
        assert_anonymous(reply)


def test_one_click_mute_stops_mail_to_that_person(chat_world: ChatWorld) -> None:
    marker = f"mute-{uuid.uuid4().hex[:6]}"
    post(chat_world, "ann", f"Parking {marker}", "Park behind the church.\n")
    copies = wait_copies(chat_world, marker, 3)
    cats = next(c for c in copies if c.to == ATTENDEES["cat"][2])
    url = str(cats.message["List-Unsubscribe"]).strip().strip("<>")

    response = chat_world.twin.client.request(
        "POST",
        url,
        b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=False,
    )
    assert response.status == 200, response.body

    after = f"muted-{uuid.uuid4().hex[:6]}"
    post(chat_world, "ann", f"Parking, again {after}", "Really, behind the church.\n")
    copies = wait_copies(chat_world, after, 2)
    assert sorted(c.to for c in copies) == sorted([ORGANIZER["email"], ATTENDEES["ben"][2]])


def test_mail_from_a_stranger_is_not_relayed(chat_world: ChatWorld) -> None:
    marker = f"stranger-{uuid.uuid4().hex[:6]}"
    msg = chat_message("Eve Outsider <eve@elsewhere.example>", chat_world.address, f"Buy now {marker}", "Hi!\n")
    chat_world.twin.client.send(msg, "eve@elsewhere.example", [chat_world.address])
    # Then a participant's message: once it is through, the stranger's was handled too.
    follow = f"after-stranger-{uuid.uuid4().hex[:6]}"
    post(chat_world, "ben", f"See you there {follow}", "Bye.\n")
    wait_copies(chat_world, follow, 2)
    time.sleep(1.0)
    leaked = [c for c in copies_with(chat_world, marker) if c.to in REAL_ADDRESSES]
    assert leaked == []


def test_smtp_refuses_other_domains_and_the_twin_stays_up(chat_world: ChatWorld) -> None:
    client = chat_world.twin.client
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send(
            chat_message("ann@people.example", "x@gmail.example", "hi", "hi"), "ann@people.example", ["x@gmail.example"]
        )
    ((code, _),) = refused.value.recipients.values()
    assert code == 550
    # Garbage that is still SMTP-acceptable: stored, handed to the handler, logged.
    client.send(b"\xff\xfe not a mail at all\r\n\r\n\x00\x01", "odd@people.example", [chat_world.address])
    time.sleep(0.5)
    chat_world.twin.assert_alive()
    assert client.chat(chat_world.event_id, "t1")["state"] == "open"


def test_eventbridge_event_created_gives_a_chat(twin: Twin) -> None:
    events = boto3.client(
        "events",
        endpoint_url=twin.config.aws_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    detail = {
        "integration": "local",  # the dev API key's integration, so the API can read it back
        "event_id": "bus-event",
        "event": event_body("Bus event", 10, [{**ORGANIZER, "id": "bus-o1", "email": "bus-org@org.example"}]),
    }
    result = events.put_events(
        Entries=[{"Source": "muster.integration", "DetailType": "EventCreated", "Detail": json.dumps(detail)}]
    )
    assert result["FailedEntryCount"] == 0

    def chat_state() -> str | None:
        response = twin.client.request("GET", "/events/bus-event/timeslots/t1/chat")
        return response.json()["state"] if response.status == 200 else None

    assert wait_for(chat_state, 20, what="the chat created from the bus event") == "open"
    twin.client.wait_for_copies(1, timeout=20, match=lambda c: c.to == "bus-org@org.example")


def test_addresses_in_headers_are_only_relay_addresses(chat_world: ChatWorld) -> None:
    for copy in copies_with(chat_world, "vans-"):
        msg = copy.message
        for header in ("From", "To", "Cc", "Reply-To", "Sender"):
            for _, address in getaddresses([str(v) for v in msg.get_all(header, [])]):
                assert not address or address.endswith("@muster.test"), (header, address)
