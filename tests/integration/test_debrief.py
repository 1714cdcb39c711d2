"""The post-shift debrief (issue 11): posted by Muster into each chat once, at the
shift's end plus ``after_hours``, through the chat's own schedules; moved with the
shift, removed with the debrief, never posted into a chat that is not open."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.models import Chat, ChatStats
from chalicelib.services.chats import ChatService, chat_id_for
from tests.integration.steps_helpers import STEPS, TARGETS, click, reply, step_links, texts
from tests.integration.world import World, at, event_body, signup_body

PROMPT = "How did it go? One thing you learned, or a photo."


def body(start_in_hours: float = 10, after_hours: float = 2, **chat: Any) -> dict[str, Any]:
    b = event_body(start_in_hours=start_in_hours, **chat)
    b["next_steps"] = STEPS
    b["debrief"] = {"after_hours": after_hours, "text": PROMPT}
    return b


def setup(world: World, **kwargs: Any) -> dict[str, Any]:
    assert world.put_event("e1", body(**kwargs)).status_code == 201
    for n, status in enumerate(["registered", "confirmed", "cancelled"]):
        world.put_signup("e1", f"s{n}", signup_body(n, status))
    world.drain()
    world.kickoffs = len(world.sent())
    return world.chat("e1", "t1")


def the_chat(world: World) -> Chat:
    return Chat.get(f"CH#{chat_id_for('acme', 'e1', 't1', world.settings.secret)}", "META", consistent_read=True)


def debrief_schedules(world: World) -> list[dict[str, Any]]:
    return [s for s in world.schedules() if json.loads(s["Target"]["Input"]).get("action") == "debrief"]


def when(schedule: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(schedule["ScheduleExpression"][3:-1] + "+00:00")


def debriefs(world: World) -> list[Any]:
    return [c for c in world.relayed() if PROMPT in texts(c.raw).get("plain", "")]


def test_the_debrief_is_posted_once_per_person_at_its_time(world: World) -> None:
    chat = setup(world)
    ends = datetime.fromisoformat(world.chat("e1", "t1")["opens_at"]) + timedelta(hours=48 + 2)
    (schedule,) = debrief_schedules(world)
    assert abs((when(schedule) - (ends + timedelta(hours=2))).total_seconds()) < 2
    assert schedule["Target"]["Arn"].endswith(":function:muster-test-open_chat")

    world.advance(13)  # before ends_at + 2 h: nothing yet
    ChatService().sweep()
    world.drain()
    assert debriefs(world) == []

    world.advance(1.1)
    world.fire_schedule(schedule)
    world.drain()
    got = debriefs(world)
    assert sorted(c.to for c in got) == ["ann0@people.example", "ann1@people.example", "olive0@org.example"]
    for copy in got:
        msg = copy.message
        assert msg["From"].addresses[0].display_name == "Muster"
        assert msg["From"].addresses[0].addr_spec == chat["address"]
        assert msg["List-Unsubscribe"].startswith("<https://") and msg["Auto-Submitted"] == "auto-generated"
        plain = texts(copy.raw)["plain"]
        assert "Sign the petition" in plain and "Pick your next shift" in plain
        links = step_links(world, copy.raw)
        assert links == step_links(world, copy.raw, "html") and len(links) == 2
        assert click(world, links[1]).headers["Location"] == TARGETS["next-shift"]
        for other in ("ann0@people.example", "ann1@people.example", "olive0@org.example"):
            if other != copy.to:
                assert other.encode() not in copy.raw
    assert the_chat(world).debrief_state == "posted" and not the_chat(world).debrief_pending

    # The schedule again, the sweeper, an upsert: nothing more.
    world.client.lambda_.invoke("open_chat", json.loads(schedule["Target"]["Input"]))
    ChatService().sweep()
    world.put_event("e1", body())
    world.drain()
    assert len(debriefs(world)) == 3
    assert debrief_schedules(world) == []


def test_the_debrief_moves_with_the_shift(world: World) -> None:
    setup(world)
    (before,) = debrief_schedules(world)
    # The same event, its shift 5 h later (from the stored times, not the wall clock).
    moved = body(after_hours=3)
    slot = json.loads(world.call("GET", "/events/e1").body)["timeslots"][0]
    for edge in ("starts_at", "ends_at"):
        moved["timeslots"][0][edge] = (datetime.fromisoformat(slot[edge]) + timedelta(hours=5)).isoformat()
    world.put_event("e1", moved)
    (after,) = debrief_schedules(world)
    assert abs((when(after) - when(before)).total_seconds() - 6 * 3600) < 2
    world.advance(14.1)  # the old time: nothing
    ChatService().sweep()
    world.drain()
    assert debriefs(world) == []
    world.advance(6)  # the new one: the sweeper finds it even without the schedule firing
    assert ChatService().sweep() >= 1
    world.drain()
    assert len(debriefs(world)) == 3


def test_removing_the_debrief_deletes_its_schedule(world: World) -> None:
    setup(world)
    assert len(debrief_schedules(world)) == 1
    without = body()
    del without["debrief"]
    world.put_event("e1", without)
    assert debrief_schedules(world) == []
    world.advance(15)
    ChatService().sweep()
    world.drain()
    assert debriefs(world) == []


def test_a_disabled_chat_gets_no_debrief(world: World) -> None:
    setup(world)
    world.put_event("e1", body(enabled=False))
    assert debrief_schedules(world) == []
    world.advance(15)
    ChatService().sweep()
    world.drain()
    assert debriefs(world) == []
    # Re-enabled after the debrief's time (and within the close window): still none,
    # the chat records why.
    world.advance(30)
    world.put_event("e1", body())
    world.drain()
    assert debriefs(world) == []
    assert the_chat(world).debrief_state == "skipped_late"


def test_a_chat_closed_by_its_window_records_the_skip(world: World) -> None:
    setup(world, after_hours=2, close_after_hours=1)
    world.advance(13.5)  # the chat closes at ends_at + 1 h
    ChatService().sweep()
    assert world.chat("e1", "t1")["state"] == "closed"
    (schedule,) = debrief_schedules(world)  # kept, so its time is recorded
    world.advance(1)
    world.fire_schedule(schedule)
    world.drain()
    assert debriefs(world) == []
    assert the_chat(world).debrief_state == "skipped_closed"


def test_racing_schedule_and_sweeps_post_it_once(world: World) -> None:
    setup(world)
    assert len(debrief_schedules(world)) == 1
    world.advance(14.1)
    start = threading.Barrier(4)
    service = ChatService()
    chat_id = chat_id_for("acme", "e1", "t1", world.settings.secret)

    def one(n: int) -> None:
        start.wait()
        if n % 2:
            service.fire(chat_id, "debrief")
        else:
            service.sweep()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.drain()
    assert sorted(c.to for c in debriefs(world)) == ["ann0@people.example", "ann1@people.example", "olive0@org.example"]


def test_a_queue_failure_is_retried_by_the_sweeper(world: World) -> None:
    from chalicelib.services.fanout import FanOut

    setup(world)
    real = FanOut.debrief
    calls = {"n": 0}

    def fail_once(self: FanOut, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("SQS went away")
        real(self, *args, **kwargs)

    world.patch("chalicelib.services.fanout.FanOut.debrief", fail_once)
    world.advance(14.1)
    with pytest.raises(RuntimeError):
        ChatService().sweep()  # the invocation fails; the chat stays due
    assert the_chat(world).debrief_pending
    ChatService().sweep()
    world.drain()
    assert len(debriefs(world)) == 3 and not the_chat(world).debrief_pending


def test_replies_to_the_debrief_count_as_after_event_messages(world: World) -> None:
    chat = setup(world)
    world.advance(14.1)
    ChatService().sweep()
    world.drain()
    raw = reply("ann0@people.example", chat["address"], "Great shift, thanks!")
    world.receive(raw, sender="ann0@people.example", to=[chat["address"]], when=datetime.fromisoformat(at(14.2)))
    world.drain()
    assert any("Great shift" in texts(c.raw)["plain"] for c in world.inbox("ann1@people.example"))
    stats = ChatStats.get(f"CH#{the_chat(world).chat_id}", "STATS")
    assert stats.messages == 1 and stats.after_event == 1
