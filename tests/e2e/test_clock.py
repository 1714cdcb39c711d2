"""Moving the twin's clock forward fires the schedules that became due."""

from __future__ import annotations

import pytest

from infra.twin.client import event_body, signup_body, wait_for
from tests.e2e.conftest import Twin

pytestmark = pytest.mark.e2e


def test_a_shift_50h_ahead_opens_when_the_clock_moves_2h(twin: Twin) -> None:
    client = twin.client
    organizer = {"id": "clock-o1", "first_name": "Omar", "last_name": "Ortiz", "email": "omar@clock.example"}
    client.put_event("clock-shift", event_body("Beach cleanup", 50, [organizer]))
    client.put_signup("clock-shift", "c1", signup_body("Dee", "Diaz", "dee@clock.example"))
    assert client.chat("clock-shift", "t1")["state"] == "scheduled"  # opens 48 h before: in 2 h

    out = twin.run("-m", "infra.twin.clock", "advance", "2")
    assert "offset +2.00 h" in out.stdout

    state = wait_for(lambda: client.chat("clock-shift", "t1")["state"] == "open" or None, 15, what="the chat to open")
    assert state
    copies = client.wait_for_copies(2, timeout=20, match=lambda c: c.to.endswith("@clock.example"))
    assert sorted(c.to for c in copies) == ["dee@clock.example", "omar@clock.example"]
    assert all("kickoff-" in (c.sent_message_id or "") for c in copies)
    twin.run("-m", "infra.twin.clock", "reset")
