"""Integration events out (issue 11): the outbox, EventBridge (moto), the schemas.

What a CRM would notice: every event it receives validates against the published
schema in events_schema/out/, carries no address or name, comes once per fact
(one MessageRelayed for a message to 50 people), and a bus that refuses entries
delays them without touching the relay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from jsonschema import Draft202012Validator

from tests.integration.test_relay import addr, mail
from tests.integration.world import World, event_body

SCHEMAS = Path(__file__).resolve().parents[2] / "events_schema" / "out"


def capture(world: World) -> str:
    """A rule on the default bus sending every 'muster' event to a queue we read."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="crm")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    events.put_rule(Name="crm", EventPattern=json.dumps({"source": ["muster"]}), State="ENABLED")
    events.put_targets(Rule="crm", Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def received(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


TICK = {
    "version": "0",
    "id": "t",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "1",
    "time": "2026-12-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}


def sweep(world: World) -> Any:
    """The sweeper, as its EventBridge rule fires it: chats, expiries, then the outbox."""
    return world.client.lambda_.invoke("sweeper", TICK).payload


def validate(event: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{event['detail-type']}.json").read_text())
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(event["detail"])


def test_a_message_to_fifty_people_is_one_message_relayed(world: World) -> None:
    url = capture(world)
    chat = world.open_chat(["registered"] * 50)
    assert world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]]) == {
        "outcomes": ["relayed"]
    }
    world.drain()
    assert len(world.relayed()) == 50  # 49 signups and the organizer
    sweep(world)

    events = received(url)
    relayed = [e for e in events if e["detail-type"] == "MessageRelayed"]
    assert len(relayed) == 1
    detail = relayed[0]["detail"]
    assert (detail["recipients"], detail["author_kind"], detail["author_id"]) == (50, "signup", "s0")
    assert (detail["event_id"], detail["timeslot_id"], detail["integration"]) == ("e1", "t1", "acme")
    assert detail["size"] > 0 and detail["rendered_size"] > 0 and detail["after_event"] is False
    assert [e["detail-type"] for e in events].count("ChatOpened") == 1
    for event in events:
        assert event["source"] == "muster"
        validate(event)
    assert sweep(world) == 0 and received(url) == []  # nothing owed twice


def test_every_kind_validates_and_carries_no_address_or_name(world: World) -> None:
    from chalicelib.services import referrals
    from chalicelib.services.links import mute_url

    url = capture(world)
    body = event_body(start_in_hours=10)
    body["invite_url"] = "https://signup.example/join?ref={ref}"
    body["next_steps"] = [{"id": "petition", "label": "Sign the petition", "url": "https://act.example.org/p"}]
    world.put_event("e1", body)
    people = {}
    for n in range(3):
        signup = {
            "timeslot_id": "t1",
            "status": "registered",
            "person": {"first_name": f"Zelda{n}", "last_name": "Quux", "email": f"zelda{n}@people.example"},
        }
        if n == 2:
            signup["referred_by"] = referrals.ref_for(world.settings, "acme", "e1", "s0")
        assert world.put_signup("e1", f"s{n}", signup).status_code == 201
        people[n] = signup["person"]
    chat = world.chat("e1", "t1")
    chat_id = chat["address"].split("@")[0].rsplit("-", 1)[-1]
    world.receive(mail("zelda1@people.example", chat["address"]), sender="zelda1@people.example", to=[chat["address"]])

    def settings_link(key: str, form: bytes) -> None:
        path = mute_url(world.settings, chat_id, key).removeprefix(world.settings.public_url)
        response = world.client.http.post(
            path, body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 200

    settings_link("s-s0", b"List-Unsubscribe=One-Click")
    settings_link("s-s0", b"action=unmute")
    settings_link("s-s1", b"action=leave")
    from chalicelib.services import nextsteps

    ((_, link),) = nextsteps.step_lines(world.settings, chat_id, body["next_steps"], "s-s0")
    assert world.client.http.get(link.removeprefix(world.settings.public_url)).status_code == 302
    assert world.call("PUT", "/events/e1/signups/s2/removal").status_code == 200
    assert world.call("POST", "/events/e1/timeslots/t1/chat/close").status_code == 200
    sweep(world)

    events = received(url)
    kinds = sorted({e["detail-type"] for e in events})
    assert kinds == sorted(
        [
            "ChatClosed",
            "ChatOpened",
            "MessageRelayed",
            "ModerationAction",
            "NextStepClicked",
            "ParticipantLeft",
            "ParticipantMuted",
            "ParticipantUnmuted",
            "ReferralAttributed",
        ]
    )
    secrets = [p["email"] for p in people.values()] + ["Zelda", "Quux", "olive0@org.example", "Olive0"]
    for event in events:
        validate(event)
        raw = json.dumps(event["detail"])
        assert not [s for s in secrets if s.lower() in raw.lower()], raw
        assert event["detail"]["idempotency"] and event["detail"]["version"] == 1
    moderation = sorted(
        (e["detail"]["action"], e["detail"]["target_kind"]) for e in events if e["detail-type"] == "ModerationAction"
    )
    assert moderation == [("closed", "chat"), ("removed", "signup")]
    referral = next(e["detail"] for e in events if e["detail-type"] == "ReferralAttributed")
    assert (referral["signup_id"], referral["referrer_signup_id"]) == ("s2", "s0")
    closed = next(e["detail"] for e in events if e["detail-type"] == "ChatClosed")
    assert closed["reason"] == "organizer"


class RefusingEvents:
    """An EventBridge client that refuses the entries whose detail-type is in ``refuse``."""

    def __init__(self, refuse: set[str], *, fail_call: bool = False) -> None:
        self.refuse = refuse
        self.fail_call = fail_call
        self.calls: list[int] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(len(Entries))
        if self.fail_call:
            raise RuntimeError("ThrottlingException")
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}
            if e["DetailType"] in self.refuse
            else {"EventId": "1"}
            for e in Entries
        ]
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


def test_refused_entries_stay_owed_and_are_retried_and_never_touch_the_relay(world: World) -> None:
    from datetime import timedelta

    from chalicelib import clock
    from chalicelib.adapters.bus import EventBus
    from chalicelib.services import signals

    chat = world.open_chat(["registered"] * 12)
    for n in range(3):
        out = world.receive(mail(addr(f"ann{n}"), chat["address"]), sender=addr(f"ann{n}"), to=[chat["address"]])
        assert out == {"outcomes": ["relayed"]}
    owed = signals.owed()
    assert sorted(s.detail_type for s in owed) == ["ChatOpened", "MessageRelayed", "MessageRelayed", "MessageRelayed"]

    # EventBridge refuses MessageRelayed: the rest is put, those stay owed, later
    bus = EventBus(client=RefusingEvents({"MessageRelayed"}))
    result = signals.drain(bus)
    assert (result.put, result.refused, result.dead) == (1, 3, 0)
    assert sorted(s.detail_type for s in signals.owed()) == ["MessageRelayed"] * 3
    assert signals.drain(bus).as_dict() == {"put": 0, "refused": 0, "dead": 0}  # backing off: not due yet

    # A whole call failing (throttled) changes nothing but the attempt count
    world.advance(1)
    thrown = RefusingEvents(set(), fail_call=True)
    assert signals.drain(EventBus(client=thrown)).refused == 3 and thrown.calls == [3]

    # Later EventBridge takes them: each once, in batches of at most ten
    world.advance(1)
    ok = RefusingEvents(set())
    assert signals.drain(EventBus(client=ok)).put == 3 and ok.calls == [3]
    assert signals.owed() == []

    # A bus that never takes an entry: it ends in the dead bucket (alarmed), not lost
    world.receive(mail(addr("ann4"), chat["address"]), sender=addr("ann4"), to=[chat["address"]])
    never = EventBus(client=RefusingEvents({"MessageRelayed"}))
    for n in range(signals.MAX_ATTEMPTS):
        signals.drain(never, now=clock.now() + timedelta(days=n + 1))
    assert signals.owed() == [] and [s.detail_type for s in signals.owed(signals.DEAD)] == ["MessageRelayed"]


def test_batches_of_ten(world: World) -> None:
    from chalicelib.adapters.bus import Entry, EventBus

    client = RefusingEvents({"B"})
    entries = [Entry(detail_type="B" if i in (3, 17) else "A", detail="{}", ref=f"r{i}") for i in range(23)]
    assert EventBus(client=client).put(entries) == ["r3", "r17"]
    assert client.calls == [10, 10, 3]


def test_a_failing_outbox_never_fails_the_work(world: World) -> None:
    from unittest import mock

    from chalicelib.models import Signal
    from chalicelib.services import signals

    url = capture(world)
    with mock.patch.object(Signal, "batch_write", side_effect=RuntimeError("DynamoDB is down")):
        response = world.put_event("e1", event_body(start_in_hours=10))  # opens the chat: ChatOpened is emitted
    assert response.status_code == 201
    assert signals.pending() == 0 and signals.owed() == []  # logged and counted (SignalsFlushFailed)
    sweep(world)
    assert received(url) == []


@pytest.mark.parametrize("detail_type", sorted(p.stem for p in SCHEMAS.glob("*.json")))
def test_out_schemas_are_valid_json_schemas(detail_type: str) -> None:
    Draft202012Validator.check_schema(json.loads((SCHEMAS / f"{detail_type}.json").read_text()))
