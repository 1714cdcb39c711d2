"""Organizer announcements (issue 11): the API posts an organizer's message into a
chat (or every chat of an event) through the relay's path: anonymized, with each
reader's mute link and controls, the next steps as signed links, exactly once."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from chalicelib.models import ChatStats, MessageLog
from chalicelib.services.chats import chat_id_for
from tests.integration.steps_helpers import STEPS, TARGETS, click, open_with_steps, reply, step_links, texts
from tests.integration.world import World, at, event_body, signup_body

PATH = "/events/e1/timeslots/t1/chat/messages"
EVENT_PATH = "/events/e1/chat/messages"
REAL = ["olive0@org.example", "olive1@org.example", *(f"ann{n}@people.example" for n in range(4))]
BODY = {
    "organizer_id": "org0",
    "text": "Parking is behind the library.\nBring water!",
    "subject": "Parking",
    "next_steps": ["petition"],
}


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    """An open chat with next steps: organizers org0, org1; signups s0-s2 active, s3 cancelled."""
    return open_with_steps(world, ("registered", "confirmed", "attended", "cancelled"), organizers=2)


def post(world: World, body: dict[str, Any] = BODY, path: str = PATH, **headers: str) -> Any:
    return world.call("POST", path, body, headers=headers or None)


def chat_id(world: World, timeslot: str = "t1") -> str:
    return chat_id_for("acme", "e1", timeslot, world.settings.secret)


def no_real_address(raw: bytes, but: str) -> None:
    for real in REAL:
        if real != but:
            assert real.encode() not in raw.lower(), real


def test_an_announcement_goes_to_everyone_else_as_the_organizers_message(world: World, chat: dict) -> None:
    response = post(world)
    assert response.status_code == 202, response.body
    body = json.loads(response.body)
    (message,) = body["messages"]
    assert message["timeslot_id"] == "t1" and message["created"] is True and message["recipients"] == 4
    assert body["skipped"] == []
    world.drain()

    copies = world.relayed()
    # Everyone active but its author; nobody twice; not the cancelled signup.
    assert sorted(c.to for c in copies) == sorted(REAL[1:5])
    for copy in copies:
        msg = copy.message
        assert msg["From"].addresses[0].display_name == "Olive0 O. (organizer)"
        assert msg["From"].addresses[0].addr_spec == chat["address"]
        assert msg["Reply-To"].addresses[0].addr_spec == chat["address"]
        assert msg["Subject"].endswith("Parking") and msg["List-Unsubscribe"].startswith("<https://")
        assert msg["Message-ID"] == f"<{message['message_id']}@{world.settings.relay_domain}>"
        plain = texts(copy.raw)["plain"]
        assert "Parking is behind the library." in plain and "Bring water!" in plain
        assert "Sign the petition" in plain and "Pick your next shift" not in plain  # only the chosen step
        (link,) = step_links(world, copy.raw)
        assert click(world, link).headers["Location"] == TARGETS["petition"]
        assert b"act.example.org" not in copy.raw
        no_real_address(copy.raw, copy.to)
        controls = "Organizer controls" in plain
        assert controls == (copy.to == "olive1@org.example")  # organizers' controls, attendees' report link
        assert ("Report this message" in plain) == (copy.to != "olive1@org.example")
    no_real_address(response.body.encode() if isinstance(response.body, str) else response.body, "")
    logs = list(MessageLog.query(f"CH#{chat_id(world)}", MessageLog.sk.startswith("M#")))
    assert [(m.outcome, m.state, m.author_key) for m in logs] == [("relayed", "done", "o-org0")]
    assert ChatStats.get(f"CH#{chat_id(world)}", "STATS").messages == 1


def test_a_retried_post_sends_once(world: World, chat: dict) -> None:
    first = json.loads(post(world).body)["messages"][0]
    world.drain()
    again = post(world)
    assert again.status_code == 202
    second = json.loads(again.body)["messages"][0]
    assert second == {**first, "created": False, "recipients": 0}
    world.drain()
    assert len(world.relayed()) == 4
    assert ChatStats.get(f"CH#{chat_id(world)}", "STATS").messages == 1


def test_the_idempotency_key_names_the_announcement(world: World, chat: dict) -> None:
    a = json.loads(post(world, **{"Idempotency-Key": "k-1"}).body)["messages"][0]
    b = json.loads(post(world, **{"Idempotency-Key": "k-2"}).body)["messages"][0]  # the same text on purpose
    c = json.loads(post(world, {**BODY, "text": "changed"}, **{"Idempotency-Key": "k-1"}).body)["messages"][0]
    assert a["message_id"] != b["message_id"] and c == {**a, "created": False, "recipients": 0}
    world.drain()
    assert len(world.relayed()) == 8
    bad = post(world, **{"Idempotency-Key": "x" * 201})
    assert bad.status_code == 400 and json.loads(bad.body)["error"]["field"] == "Idempotency-Key"


def test_concurrent_retries_send_one_copy_each(world: World, chat: dict) -> None:
    from chalicelib.schemas import AnnouncementBody
    from chalicelib.services.announcements import Announcements

    start = threading.Barrier(4)
    results: list[Any] = []

    def one() -> None:
        start.wait()
        results.append(Announcements(world.settings).post("acme", "e1", "t1", AnnouncementBody.from_data(BODY)))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.drain()
    assert len(results) == 4 and len({r[0][0].message_id for r in results}) == 1
    assert sorted(c.to for c in world.relayed()) == sorted(REAL[1:5])


def test_a_crash_mid_fan_out_is_finished_by_the_retry(world: World, chat: dict) -> None:
    from chalicelib.services.fanout import FanOut

    real = FanOut.relay
    calls = {"n": 0}

    def crash_once(self: FanOut, *args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("SQS went away")
        return real(self, *args, **kwargs)

    world.patch("chalicelib.services.fanout.FanOut.relay", crash_once)
    assert post(world).status_code == 500
    assert post(world).status_code == 202  # the integration retries
    world.drain()
    assert sorted(c.to for c in world.relayed()) == sorted(REAL[1:5])
    assert ChatStats.get(f"CH#{chat_id(world)}", "STATS").messages == 1


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"organizer_id": "nobody"}, 422, "unknown_organizer", "organizer_id"),
        ({"next_steps": ["phishing"]}, 422, "unknown_next_step", "next_steps"),
        ({"next_steps": ["petition", "petition"]}, 422, "validation_error", "next_steps"),
        ({"text": ""}, 422, "validation_error", "text"),
        ({"text": "x" * 5001}, 422, "validation_error", "text"),
        ({"bcc": "x"}, 422, "unknown_field", "bcc"),
    ],
)
def test_bad_announcements_are_refused_and_send_nothing(
    world: World, chat: dict, change: dict, status: int, code: str, field: str
) -> None:
    response = post(world, {**BODY, **change})
    assert response.status_code == status, response.body
    assert json.loads(response.body)["error"] == {**json.loads(response.body)["error"], "code": code, "field": field}
    world.drain()
    assert world.relayed() == []


def test_unknown_event_or_shift_is_404(world: World, chat: dict) -> None:
    assert post(world, path="/events/nope/chat/messages").status_code == 404
    assert post(world, path="/events/e1/timeslots/nope/chat/messages").status_code == 404


def test_closed_or_disabled_chats_refuse_with_409(world: World, chat: dict) -> None:
    assert world.call("POST", "/events/e1/timeslots/t1/chat/close").status_code == 200
    response = post(world)
    assert response.status_code == 409 and json.loads(response.body)["error"]["code"] == "chat_not_open"
    assert post(world, path=EVENT_PATH).status_code == 409
    world.drain()
    assert world.relayed() == []

    world.put_event("e2", event_body(start_in_hours=10, enabled=False))
    disabled = post(world, {**BODY, "next_steps": []}, path="/events/e2/timeslots/t1/chat/messages")
    assert disabled.status_code == 409, disabled.body


def test_a_removed_organizer_cannot_announce(world: World, chat: dict) -> None:
    body = event_body(start_in_hours=10, organizers=2)
    body["next_steps"] = STEPS
    body["organizers"] = body["organizers"][1:]  # org0 is no longer an organizer
    world.put_event("e1", body)
    response = post(world)
    assert response.status_code == 422 and json.loads(response.body)["error"]["code"] == "unknown_organizer"


def test_event_wide_posts_into_every_open_chat_and_lists_the_others(world: World) -> None:
    body = event_body(start_in_hours=10)
    body["next_steps"] = STEPS
    body["timeslots"].append({"id": "t2", "starts_at": at(12), "ends_at": at(14)})
    body["timeslots"].append({"id": "t3", "starts_at": at(100), "ends_at": at(102)})
    world.put_event("e1", body)
    world.put_signup("e1", "s0", signup_body(0))
    world.put_signup("e1", "s1", signup_body(1, timeslot="t2"))
    world.put_signup("e1", "s2", signup_body(2, timeslot="t3"))
    world.drain()
    world.kickoffs = len(world.sent())
    response = post(world, path=EVENT_PATH)
    assert response.status_code == 202, response.body
    body = json.loads(response.body)
    assert sorted(m["timeslot_id"] for m in body["messages"]) == ["t1", "t2"]
    assert body["skipped"] == [{"timeslot_id": "t3", "reason": "chat_not_open"}]
    assert len({m["message_id"] for m in body["messages"]}) == 2
    world.drain()
    assert sorted(c.to for c in world.relayed()) == ["ann0@people.example", "ann1@people.example"]
    # A retry of the event-wide post sends nothing again.
    assert all(not m["created"] for m in json.loads(post(world, path=EVENT_PATH).body)["messages"])
    world.drain()
    assert len(world.relayed()) == 2


def test_replies_thread_under_the_announcement(world: World, chat: dict) -> None:
    message_id = json.loads(post(world).body)["messages"][0]["message_id"]
    world.drain()
    own = f"<{message_id}@{world.settings.relay_domain}>"
    raw = reply("ann0@people.example", chat["address"], "See you there", In_Reply_To=own, References=own)
    world.receive(raw, sender="ann0@people.example", to=[chat["address"]])
    world.drain()
    to_olive = [c for c in world.inbox("olive0@org.example") if "See you there" in texts(c.raw)["plain"]]
    assert len(to_olive) == 1
    assert message_id in to_olive[0].message["References"]


def test_digest_readers_get_announcements_at_once(world: World, chat: dict) -> None:
    assert world.call("PUT", "/events/e1/signups/s0/delivery", {"delivery": "digest"}).status_code == 200
    post(world)
    world.drain()
    assert len(world.inbox("ann0@people.example")) == 2  # the kickoff and the announcement
