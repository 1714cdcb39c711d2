"""Issue 12 over the twin: a mixed chat (two people by mail, two by text, one of
them both) over real SMTP and HTTP. Texts Muster sends land in the twin's SMS
outbox (``<state>/sms/<E.164>/<time>-<id>.txt``); texts to Muster are
``POST /sms`` on the mailbox's port, published to the inbound SNS topic in moto
and delivered to the real ``sms_inbound`` handler. The phone page is used by
hand in headless Chromium, and its screenshot goes to docs/phone.png."""

from __future__ import annotations

import re
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

from infra.twin.client import chat_message, event_body, wait_for
from tests.e2e.conftest import Twin
from tests.e2e.test_mailbox import dump_dom
from tests.e2e.test_settings_page import screenshot
from tests.e2e.test_stewardship import click_in_chromium

DOCS = Path(__file__).resolve().parents[2] / "docs"
SAM, BEA, PAT = "+12025550143", "+13125550123", "+14155550101"
ORGANIZER = {
    "id": "o1",
    "first_name": "Ola",
    "last_name": "Org",
    "email": "ola@org.example",
    "phone": "+12015550123",
    "channel": "email",
}
ADDRESSES = ("ola@org.example", "ann@people.example", "abe@people.example", "bea@people.example")


def texts(twin: Twin, number: str) -> list[str]:
    folder = twin.config.state_dir / "sms" / number
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))] if folder.is_dir() else []


def wait_text(twin: Twin, number: str, needle: str) -> str:
    return wait_for(
        lambda: next((t for t in texts(twin, number) if needle in t), None), 30, what=f"a text with {needle!r}"
    )


def text_in(twin: Twin, origin: str, text: str) -> int:
    request = urllib.request.Request(
        f"{twin.config.mailbox_url}/sms", data=urlencode({"from": origin, "text": text}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def no_leaks(blob: str) -> None:
    digits = re.sub(r"\D", "", blob)
    for number in (SAM, BEA, PAT, ORGANIZER["phone"]):
        assert number[2:] not in digits, number
    for address in ADDRESSES:
        assert address not in blob.lower(), address


def test_a_mixed_chat_over_the_twin_both_ways_and_the_phone_page(twin: Twin) -> None:
    client = twin.client
    tag = uuid.uuid4().hex[:6]
    client.put_event(f"sms-{tag}", event_body("Canvass Mon", 10, [ORGANIZER]))
    people = [
        ("s1", {"first_name": "Ann", "last_name": "Avery", "email": "ann@people.example", "phone": PAT}),
        ("s2", {"first_name": "Abe", "last_name": "Brook", "email": "abe@people.example"}),
        ("s3", {"first_name": "Sam", "last_name": "Stone", "phone": SAM, "channel": "sms"}),
        (
            "s4",
            {"first_name": "Bea", "last_name": "Bell", "email": "bea@people.example", "phone": BEA, "channel": "both"},
        ),
    ]
    for sid, person in people:
        client.put_signup(f"sms-{tag}", sid, {"timeslot_id": "t1", "status": "confirmed", "person": person})
    chat = client.chat(f"sms-{tag}", "t1")
    wait_text(twin, SAM, "you're in the chat for Canvass Mon")
    wait_text(twin, BEA, "you're in the chat for Canvass Mon")

    # Mail -> texts.
    since = len(client.outbox())
    client.send(
        # A number among other figures (the random tag may be all digits, too).
        chat_message("ann@people.example", chat["address"], "Plan", f"Meet at 9, call 415-555-0101 5 pm {tag}"),
        "ann@people.example",
        [chat["address"]],
    )
    for number in (SAM, BEA):
        got = wait_text(twin, number, tag)
        assert got == f"Ann A. (Canvass Mon): Meet at 9, call Ann A. 5 pm {tag}"
    for c in client.wait_for_copies(3, since=since, timeout=30):
        no_leaks(c.raw.decode("utf-8", "replace"))

    # Text -> mail and texts: through POST /sms, SNS in moto, the real handler.
    since = len(client.outbox())
    assert text_in(twin, SAM, f"Running late {tag}-b, text me at (202) 555-0143") == 202
    copies = client.wait_for_copies(
        4, since=since, timeout=30, match=lambda c: f"{tag}-b" in c.raw.decode("utf-8", "replace")
    )
    assert sorted(c.to for c in copies) == [
        "abe@people.example",
        "ann@people.example",
        "bea@people.example",
        "ola@org.example",
    ]
    for c in copies:
        assert "Sam S." in str(c.message["From"])
        no_leaks(c.raw.decode("utf-8", "replace"))
    assert wait_text(twin, BEA, f"{tag}-b") == f"Sam S. (Canvass Mon): Running late {tag}-b, text me at Sam S."
    assert not any(f"{tag}-b" in t for t in texts(twin, SAM))  # never their own text back
    for number in (SAM, BEA):
        for t in texts(twin, number):
            no_leaks(t)

    # The phone page: send a text by hand, read what each number received.
    page = click_in_chromium(f"{twin.config.mailbox_url}/phone", {"from": BEA, "text": "HELP"})
    assert "Received texts" in page
    assert wait_text(twin, BEA, "STOP to opt out")
    dom = dump_dom(f"{twin.config.mailbox_url}/phone")
    assert f"Sam S. (Canvass Mon): Running late {tag}-b" in dom
    screenshot(f"{twin.config.mailbox_url}/phone", DOCS / "phone.png", size="900,1100")
