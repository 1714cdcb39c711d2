"""Next steps and the debrief over the twin (issue 11): real HTTP, real SMTP, the
twin's clock and its Scheduler loop."""

from __future__ import annotations

import http.client
import re
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from infra.twin.client import Copy, event_body, signup_body, wait_for
from tests.e2e.conftest import Twin

pytestmark = pytest.mark.e2e

STEPS = [
    {"id": "petition", "label": "Sign the petition", "url": "https://act.example.org/petition?src=muster"},
    {"id": "next-shift", "label": "Pick your next shift", "url": "https://events.example.org/e/42"},
]
PROMPT = "How did it go? One thing you learned, or a photo."


def raw_request(url: str, method: str = "GET") -> http.client.HTTPResponse:
    """One request, redirects not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    conn.request(method, parts.path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def clicks(twin: Twin, chat_id: str) -> dict[str, int]:
    table = boto3.resource(
        "dynamodb",
        endpoint_url=twin.config.aws_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).Table("muster-dev")
    items = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :d)",
        ExpressionAttributeValues={":pk": "KPI#local", ":d": "D#"},
    )["Items"]
    out: dict[str, int] = {}
    for item in items:
        if f"#CH#{chat_id}#L#" in item["sk"]:
            step = item["sk"].rsplit("#L#", 1)[1]
            out[step] = out.get(step, 0) + int(item["clicks"])
    return out


def links(twin: Twin, copy: Copy) -> list[str]:
    body = copy.message.get_body(("plain",))
    assert body is not None
    return re.findall(re.escape(twin.config.api_url) + r"/n/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", body.get_content())


def event(title: str, tag: str, starts_in: float, **extra: Any) -> dict[str, Any]:
    organizer = {"id": f"{tag}-o1", "first_name": "Omar", "last_name": "Ortiz", "email": f"omar@{tag}.example"}
    body = event_body(title, starts_in, [organizer])
    body["next_steps"] = STEPS
    body.update(extra)
    return body


def test_a_click_through_the_redirect_counts_once_per_click(twin: Twin) -> None:
    client = twin.client
    client.put_event("steps-click", event("Phone bank", "stepclick", 10))
    client.put_signup("steps-click", "c1", signup_body("Dee", "Diaz", "dee@stepclick.example"))
    (kickoff,) = client.wait_for_copies(1, match=lambda c: c.to == "dee@stepclick.example")
    petition, shift = links(twin, kickoff)
    chat_id = client.chat("steps-click", "t1")["address"].split("@")[0].rsplit("-", 1)[1]

    for n in (1, 2):
        response = raw_request(petition)
        assert response.status == 302 and response.getheader("Location") == STEPS[0]["url"]
        assert clicks(twin, chat_id) == {"petition": n}
    assert raw_request(shift).getheader("Location") == STEPS[1]["url"]
    # HEAD (link scanners' prefetch): same answer, nothing counted.
    assert raw_request(petition, "HEAD").status == 302
    assert clicks(twin, chat_id) == {"petition": 2, "next-shift": 1}

    body, sig = petition.rsplit(".", 1)
    tampered = f"{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    refused = raw_request(tampered)
    assert refused.status == 403 and refused.getheader("Location") is None
    assert clicks(twin, chat_id) == {"petition": 2, "next-shift": 1}


def test_the_debrief_is_posted_once_after_a_clock_advance_moved_with_the_shift_not_when_disabled(twin: Twin) -> None:
    client = twin.client
    debrief = {"after_hours": 1, "text": PROMPT}
    # Three shifts, 10 h ahead, 3 h long: their chats open at once.
    for tag in ("dbon", "dbmove", "dboff"):
        client.put_event(f"debrief-{tag}", event(f"Debrief {tag}", tag, 10, debrief=debrief))
        client.put_signup(f"debrief-{tag}", "d1", signup_body("Dee", "Diaz", f"dee@{tag}.example"))
    client.wait_for_copies(6, match=lambda c: c.to.split("@")[1].startswith("db"))
    # One shift moves 2 h later; one chat is turned off.
    client.put_event("debrief-dbmove", event("Debrief dbmove", "dbmove", 12, debrief=debrief))
    off = event("Debrief dboff", "dboff", 10, debrief=debrief)
    off["timeslots"][0]["chat_enabled"] = False
    client.put_event("debrief-dboff", off)
    assert client.chat("debrief-dboff", "t1")["state"] == "disabled"

    def debriefs(tag: str) -> list[Copy]:
        return [
            c for c in client.outbox() if c.to.endswith(f"@{tag}.example") and "debrief-" in (c.sent_message_id or "")
        ]

    try:
        twin.run("-m", "infra.twin.clock", "advance", "13.5")  # before every debrief
        twin.run("-m", "infra.twin.clock", "advance", "0.6")  # 14.1 h: the first shift's ends_at + 1 h
        got = wait_for(lambda: debriefs("dbon") if len(debriefs("dbon")) >= 2 else None, 30, what="the debrief")
        assert sorted(c.to for c in got) == ["dee@dbon.example", "omar@dbon.example"]
        text = got[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert PROMPT in text and len(links(twin, got[0])) == 2
        assert debriefs("dbmove") == [] and debriefs("dboff") == []

        twin.run("-m", "infra.twin.clock", "advance", "2")  # 16.1 h: the moved shift's
        wait_for(lambda: debriefs("dbmove") if len(debriefs("dbmove")) >= 2 else None, 30, what="the moved debrief")
        twin.run("-m", "infra.twin.clock", "advance", "1")
        import time

        time.sleep(3)  # a few dispatcher rounds (schedules and the sweeper)
        assert len(debriefs("dbon")) == 2 and len(debriefs("dbmove")) == 2  # once each
        assert debriefs("dboff") == []
    finally:
        twin.run("-m", "infra.twin.clock", "reset")


def test_an_announcement_over_http_goes_out_once_as_the_organizers_message(twin: Twin) -> None:
    client = twin.client
    client.put_event("steps-announce", event("Food drive", "stepann", 10))
    client.put_signup("steps-announce", "a1", signup_body("Dee", "Diaz", "dee@stepann.example"))
    client.put_signup("steps-announce", "a2", signup_body("Eve", "Eng", "eve@stepann.example"))
    client.wait_for_copies(3, match=lambda c: c.to.endswith("@stepann.example"))
    address = client.chat("steps-announce", "t1")["address"]
    before = len(client.outbox())
    body = {
        "organizer_id": "stepann-o1",
        "text": "Doors open at 9. Ask omar@stepann.example for keys.",
        "next_steps": ["next-shift"],
    }

    first = client.request("POST", "/events/steps-announce/timeslots/t1/chat/messages", body)
    assert first.status == 202, first.body
    copies = client.wait_for_copies(2, since=before, match=lambda c: c.to.endswith("@stepann.example"))
    assert sorted(c.to for c in copies) == ["dee@stepann.example", "eve@stepann.example"]
    for copy in copies:
        sender = copy.message["From"].addresses[0]
        assert sender.display_name == "Omar O. (organizer)" and sender.addr_spec == address
        assert b"omar@stepann.example" not in copy.raw.lower()
        (link,) = links(twin, copy)
        assert raw_request(link).getheader("Location") == STEPS[1]["url"]

    again = client.request("POST", "/events/steps-announce/timeslots/t1/chat/messages", body)
    assert again.status == 202 and again.json()["messages"][0]["created"] is False
    import time

    time.sleep(2)  # the dispatcher drains the queue several times a second
    assert len([c for c in client.outbox()[before:] if c.to.endswith("@stepann.example")]) == 2
