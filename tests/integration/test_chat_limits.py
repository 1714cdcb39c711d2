"""Per-chat rate limits (R12, issue 10): an event's ``limits`` reach its chats'
relay checks; other chats keep the deployment's; an update changes them."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.test_relay import mail
from tests.integration.world import World, event_body, signup_body

ANN0 = "ann0@people.example"


def two_chats(world: World, limits: dict[str, Any] | None) -> tuple[str, str]:
    """Open chats of events "limited" (with ``limits``) and "plain" (without); ann0 is in both."""
    for event_id, extra in (("limited", {"limits": limits}), ("plain", {})):
        assert world.put_event(event_id, {**event_body(start_in_hours=10), **extra}).status_code == 201
        assert world.put_signup(event_id, "s0", signup_body(0)).status_code == 201
    world.drain()
    world.kickoffs = len(world.sent())
    return world.chat("limited", "t1")["address"], world.chat("plain", "t1")["address"]


def post(world: World, address: str, n: int) -> str:
    outcome = world.receive(mail(ANN0, address, subject=f"m{n}"), sender=ANN0, to=[address])["outcomes"][0]
    return str(outcome)


def test_a_chat_with_its_own_sender_limit_refuses_the_third_message(world: World) -> None:
    limited, plain = two_chats(world, {"sender_messages_per_hour": 2})
    assert [post(world, limited, n) for n in range(3)] == ["relayed", "relayed", "rate_limited"]
    # The same sender in a chat without limits: the deployment's 30 an hour.
    assert [post(world, plain, n) for n in range(4)] == ["relayed"] * 4
    world.drain()
    notices = [s for s in world.relayed() if s.to == ANN0]
    assert len(notices) == 1
    assert "too many messages" in notices[0].message.get_body(("plain",)).get_content()


def test_updating_the_event_updates_its_chats_limit(world: World) -> None:
    limited, _ = two_chats(world, {"sender_messages_per_hour": 2})
    assert [post(world, limited, n) for n in range(3)] == ["relayed", "relayed", "rate_limited"]
    body = {**event_body(start_in_hours=10), "limits": {"sender_messages_per_hour": 5}}
    # The shift's times are those of a fresh body: same event, same shift id.
    response = world.put_event("limited", body)
    assert response.status_code == 200
    assert json.loads(response.body)["limits"] == {"sender_messages_per_hour": 5, "chat_copies_per_hour": None}
    assert [post(world, limited, n) for n in range(3, 6)] == ["relayed", "relayed", "rate_limited"]
    # Dropping the limits goes back to the deployment's.
    response = world.put_event("limited", event_body(start_in_hours=10))
    assert json.loads(response.body)["limits"] is None
    assert post(world, limited, 6) == "relayed"


def test_a_chats_copy_limit(world: World) -> None:
    # One organizer and ann0: each message is one copy (to the organizer).
    limited, _ = two_chats(world, {"chat_copies_per_hour": 1})
    assert [post(world, limited, n) for n in range(2)] == ["relayed", "rate_limited"]


BAD_LIMITS = [
    ({"sender_messages_per_hour": "2"}, "limits.sender_messages_per_hour"),
    ({"sender_messages_per_hour": 2.5}, "limits.sender_messages_per_hour"),
    ({"sender_messages_per_hour": True}, "limits.sender_messages_per_hour"),
    ({"sender_messages_per_hour": 0}, "limits.sender_messages_per_hour"),
    ({"sender_messages_per_hour": 10_001}, "limits.sender_messages_per_hour"),
    ({"chat_copies_per_hour": -1}, "limits.chat_copies_per_hour"),
    ({"chat_copies_per_hour": 10**12}, "limits.chat_copies_per_hour"),
    ({"surprise": 1}, "limits.surprise"),
    ([], "limits"),
]


def test_limits_are_strictly_typed_and_bounded(world: World) -> None:
    wrong = {}
    for limits, field in BAD_LIMITS:
        response = world.put_event("e1", {**event_body(), "limits": limits})
        got = (response.status_code, json.loads(response.body)["error"]["field"])
        if got != (422, field):
            wrong[json.dumps(limits)] = got
    assert wrong == {}
    assert world.call("GET", "/events/e1").status_code == 404  # nothing was stored
    # 2.0 is an integer as JSON Schema (and the OpenAPI document) means it: accepted as 2
    assert world.put_event("e1", {**event_body(), "limits": {"sender_messages_per_hour": 2.0}}).status_code == 201
