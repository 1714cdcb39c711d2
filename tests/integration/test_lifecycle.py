"""Event lifecycle through the public API: schedules, opening, kickoff (R1-R3, R8)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import boto3
import pytest

from tests.integration.world import World, at, event_body, signup_body


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _at_expression(schedule: dict) -> datetime:
    expr = schedule["ScheduleExpression"]
    assert expr.startswith("at(") and schedule["ScheduleExpressionTimezone"] == "UTC"
    return datetime.fromisoformat(expr[3:-1] + "+00:00")


def test_shift_50h_ahead_gets_one_schedule_at_t_minus_48h(world: World) -> None:
    body = event_body(start_in_hours=50)
    response = world.put_event("e1", body)
    assert response.status_code == 201, response.body

    schedules = world.schedules()
    assert len(schedules) == 1
    (schedule,) = schedules
    starts = _parse(body["timeslots"][0]["starts_at"])
    assert _at_expression(schedule) == starts - timedelta(hours=48)
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"].endswith(":function:muster-test-open_chat")
    chat = world.chat("e1", "t1")
    assert chat["state"] == "scheduled"
    assert _parse(chat["opens_at"]) == starts - timedelta(hours=48)


def test_same_put_twice_is_idempotent(world: World) -> None:
    body = event_body(start_in_hours=50)
    first = world.put_event("e1", body)
    second = world.put_event("e1", body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert json.loads(first.body) == json.loads(second.body)
    assert len(world.schedules()) == 1


def test_moving_the_shift_moves_its_schedule(world: World) -> None:
    body = event_body(start_in_hours=50)
    world.put_event("e1", body)
    body["timeslots"][0].update(starts_at=at(80), ends_at=at(82))
    assert world.put_event("e1", body).status_code == 200

    (schedule,) = world.schedules()
    assert _at_expression(schedule) == _parse(body["timeslots"][0]["starts_at"]) - timedelta(hours=48)


def test_disabling_the_chat_removes_the_schedule_and_reenabling_restores_it(world: World) -> None:
    body = event_body(start_in_hours=50)
    world.put_event("e1", body)
    body["timeslots"][0]["chat_enabled"] = False
    world.put_event("e1", body)
    assert world.schedules() == []
    assert world.chat("e1", "t1")["state"] == "disabled"

    body["timeslots"][0]["chat_enabled"] = True
    world.put_event("e1", body)
    assert len(world.schedules()) == 1
    assert world.chat("e1", "t1")["state"] == "scheduled"


def test_event_level_toggle_disables_every_shift(world: World) -> None:
    body = event_body(start_in_hours=50, enabled=False)
    world.put_event("e1", body)
    assert world.schedules() == []
    assert world.chat("e1", "t1")["state"] == "disabled"


def test_cancelling_the_event_closes_chats_and_removes_schedules(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=50))
    response = world.call("DELETE", "/events/e1")
    assert response.status_code == 200
    assert json.loads(response.body)["cancelled"] is True
    assert world.schedules() == []
    assert world.chat("e1", "t1")["state"] == "closed"


def _signups(world: World, statuses: list[str]) -> None:
    for n, status in enumerate(statuses):
        response = world.put_signup("e1", f"s{n}", signup_body(n, status))
        assert response.status_code == 201, response.body


STATUSES = ["registered", "confirmed", "attended", "cancelled", "missed", "blocked"]


def test_shift_10h_ahead_opens_at_once_and_kicks_off_active_people_only(world: World) -> None:
    # Given people signed up while the shift was far away
    body = event_body(start_in_hours=50, organizers=2)
    world.put_event("e1", body)
    _signups(world, STATUSES)
    assert world.drain() == 0  # nothing to send before the chat opens

    # When the shift moves to 10 hours from now
    body["timeslots"][0].update(starts_at=at(10), ends_at=at(12))
    world.put_event("e1", body)
    world.drain()

    # Then the chat is open, and only organizers and active signups got a kickoff
    chat = world.chat("e1", "t1")
    assert chat["state"] == "open"
    got = sorted(s.to for s in world.sent())
    assert got == sorted(
        [
            "olive0@org.example",
            "olive1@org.example",
            "ann0@people.example",
            "ann1@people.example",
            "ann2@people.example",
        ]
    )
    # and the opening schedule is replaced by the closing one
    (schedule,) = world.schedules()
    assert schedule["Target"]["Arn"].endswith("close_chat")


def test_kickoff_tells_the_reader_what_they_need_and_leaks_no_one(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10))
    _signups(world, ["registered", "registered"])
    world.drain()
    chat = world.chat("e1", "t1")
    (kickoff,) = world.inbox("ann0@people.example")
    msg = kickoff.message
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Ann0 A." in text  # how the reader appears
    assert chat["address"] in text  # how to post
    assert "Canvass" in text and "America/New_York" in text  # which shift, and when
    assert "mute" in text.lower()
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<https://api.muster.test/mute/")
    assert msg["List-Id"] and msg["List-Post"]
    for other in ("ann1@people.example", "olive0@org.example"):
        assert other not in kickoff.raw.decode("ascii", "replace").lower()


def test_open_chat_twice_sends_one_kickoff_per_person(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=50))
    _signups(world, ["registered", "confirmed"])
    (schedule,) = world.schedules()

    world.advance(2)  # the schedule's time
    world.fire_schedule(schedule)
    world.client.lambda_.invoke("open_chat", json.loads(schedule["Target"]["Input"]))
    world.drain()
    world.client.lambda_.invoke("open_chat", json.loads(schedule["Target"]["Input"]))
    world.drain()

    got = sorted(s.to for s in world.sent())
    assert got == ["ann0@people.example", "ann1@people.example", "olive0@org.example"]


def test_late_signup_gets_its_kickoff_at_once_and_only_once(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10))
    world.drain()
    assert [s.to for s in world.sent()] == ["olive0@org.example"]

    world.put_signup("e1", "late", signup_body(7))
    world.put_signup("e1", "late", signup_body(7))  # the integration retries
    world.drain()
    assert len(world.inbox("ann7@people.example")) == 1


def test_cancelled_late_signup_gets_nothing(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10))
    world.put_signup("e1", "late", signup_body(8, "cancelled"))
    world.drain()
    assert world.inbox("ann8@people.example") == []


def test_sweeper_opens_a_chat_whose_schedule_never_fired(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=50))
    _signups(world, ["registered"])
    from chalicelib.services.chats import ChatService

    world.advance(3)  # past the opening; the schedule never fired
    assert ChatService().sweep() == 1
    world.drain()
    assert world.chat("e1", "t1")["state"] == "open"
    assert sorted(s.to for s in world.sent()) == ["ann0@people.example", "olive0@org.example"]


def test_close_schedule_closes_the_chat(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10, close_after_hours=1))
    (schedule,) = world.schedules()
    assert schedule["Target"]["Arn"].endswith("close_chat")
    world.advance(14)  # past ends_at + 1 h
    world.fire_schedule(schedule)
    assert world.chat("e1", "t1")["state"] == "closed"
    assert world.schedules() == []


def test_eventbridge_event_creates_the_same_chat(world: World) -> None:
    body = event_body(start_in_hours=50)
    event = world.client.events.generate_cw_event(
        source="muster.integration",
        detail_type="EventCreated",
        detail={"integration": "acme", "event_id": "e2", "event": body},
        resources=[],
    )
    assert world.client.lambda_.invoke("integration_events", event).payload == "applied"
    assert world.chat("e2", "t1")["state"] == "scheduled"


@pytest.mark.parametrize(
    "detail_type, detail",
    [
        ("EventCreated", {"integration": "acme", "event_id": "e3"}),
        ("EventCreated", {"integration": "acme", "event_id": "e3", "event": {"title": "x", "timezone": "Mars/Base"}}),
        ("SignupCreated", {"integration": "acme", "event_id": "nope", "signup_id": "s", "signup": signup_body(1)}),
        ("Exploded", {}),
    ],
)
def test_invalid_eventbridge_events_are_recorded_not_lost(world: World, detail_type: str, detail: dict) -> None:
    event = world.client.events.generate_cw_event(
        source="muster.integration", detail_type=detail_type, detail=detail, resources=[]
    )
    assert world.client.lambda_.invoke("integration_events", event).payload == "rejected"
    from chalicelib.models import Rejection

    rejections = [r for r in Rejection.scan() if r.pk.startswith("REJ#")]
    assert len(rejections) == 1
    assert rejections[0].kind == detail_type and rejections[0].reason


def test_schedule_targets_exist_as_lambda_functions(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=50))
    (schedule,) = world.schedules()
    world.advance(2)
    response = world.fire_schedule(schedule)
    assert response.payload["state"] == "open"
    assert (
        boto3.client("scheduler")
        .list_schedules(GroupName=world.settings.schedule_group)["Schedules"][0]["Name"]
        .startswith("muster-test-close-")
    )


def test_organizer_added_to_an_open_chat_gets_a_kickoff_once(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10, organizers=1))
    world.drain()
    world.put_event("e1", event_body(start_in_hours=10, organizers=2))
    world.put_event("e1", event_body(start_in_hours=10, organizers=2))  # the integration retries
    world.drain()
    assert sorted(s.to for s in world.sent()) == ["olive0@org.example", "olive1@org.example"]
