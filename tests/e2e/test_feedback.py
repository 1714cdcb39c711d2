"""SES feedback through the twin: mail to @bounce.muster.test hard-bounces, the
bounce reaches `feedback` over SNS, and the address gets no more chat mail."""

from __future__ import annotations

import time
import uuid

import pytest

from infra.twin.client import chat_message, event_body, signup_body
from tests.e2e.conftest import Twin

pytestmark = pytest.mark.e2e


def test_a_hard_bounce_suppresses_the_address(twin: Twin) -> None:
    client = twin.client
    organizer = {"id": "fb-o1", "first_name": "Fay", "last_name": "Ford", "email": "fay@feedback.example"}
    client.put_event("feedback-shift", event_body("Feedback", 10, [organizer]))
    client.put_signup("feedback-shift", "f1", signup_body("Gil", "Gray", "gil@feedback.example"))
    client.put_signup("feedback-shift", "f2", signup_body("Hal", "Hill", "hal@bounce.muster.test"))
    address = client.chat("feedback-shift", "t1")["address"]
    client.wait_for_copies(
        1, timeout=20, match=lambda c: c.to == "hal@bounce.muster.test"
    )  # the kickoff, which bounces
    time.sleep(2.0)  # SNS -> feedback

    marker = f"after-bounce-{uuid.uuid4().hex[:6]}"
    msg = chat_message("Gil Gray <gil@feedback.example>", address, f"Gloves {marker}", "Bring gloves.\n")
    client.send(msg, "gil@feedback.example", [address])
    client.wait_for_copies(
        1, timeout=20, match=lambda c: c.to == "fay@feedback.example" and marker in c.raw.decode(errors="replace")
    )
    time.sleep(1.0)
    to_hal = [c for c in client.inbox("hal@bounce.muster.test") if marker in c.raw.decode(errors="replace")]
    assert to_hal == []
