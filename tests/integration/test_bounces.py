"""Bounce scoring (R11, issue 10): SNS-shaped SES notifications into the real
``feedback`` function, the state read back through ``GET /suppressions``, and
what a suppressed address stops getting."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.services import suppressions
from tests.integration.world import World, event_body, signup_body

ADDRESS = "ann0@people.example"
DAY = 24.0


def notification(kind: str, feedback_id: str, address: str = ADDRESS) -> dict[str, Any]:
    """What SES event publishing puts on the feedback topic."""
    mail = {
        "timestamp": "2026-12-01T10:00:00.000Z",
        "messageId": f"ses-{feedback_id}",
        "source": "x@muster.test",
        "destination": [address],
    }
    if kind == "complaint":
        return {
            "eventType": "Complaint",
            "mail": mail,
            "complaint": {
                "feedbackId": feedback_id,
                "complainedRecipients": [{"emailAddress": address}],
                "timestamp": "2026-12-01T10:00:01.000Z",
                "complaintFeedbackType": "abuse",
            },
        }
    bounce_type = {"soft": "Transient", "undetermined": "Undetermined", "hard": "Permanent"}[kind]
    return {
        "eventType": "Bounce",
        "mail": mail,
        "bounce": {
            "feedbackId": feedback_id,
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "action": "failed", "status": "4.2.2"}],
            "timestamp": "2026-12-01T10:00:01.000Z",
        },
    }


def feed(world: World, kind: str, feedback_id: str, address: str = ADDRESS) -> list[str]:
    event = world.client.events.generate_sns_event(message=json.dumps(notification(kind, feedback_id, address)))
    return world.client.lambda_.invoke("feedback", event).payload  # type: ignore[no-any-return]


def state(world: World, address: str = ADDRESS) -> dict[str, Any]:
    response = world.call("GET", f"/suppressions?email={address}")
    assert response.status_code == 200, response.body
    return json.loads(response.body)  # type: ignore[no-any-return]


def people(world: World) -> None:
    """An organizer and two signups (ann0, ann1) of a shift whose chat is not open yet."""
    assert world.put_event("e1", event_body()).status_code == 201
    for n in range(2):
        assert world.put_signup("e1", f"s{n}", signup_body(n)).status_code == 201


def soft(n: int, *, every_days: float = 0.0, first: int = 0) -> list[tuple[float, str, str]]:
    return [(every_days if i else 0.0, "soft", f"fb-{first + i}") for i in range(n)]


# (days to wait before it, kind, SES feedback id) ... -> (score, suppressed, reason)
CASES: dict[str, tuple[list[tuple[float, str, str]], float, bool, str | None]] = {
    "one soft bounce": (soft(1), 0.5, False, None),
    "undetermined counts as soft": ([(0, "undetermined", "u1")], 0.5, False, None),
    "redelivered notification counts once": (
        [(0, "soft", "a"), (0, "soft", "a"), (0.1, "soft", "a")],
        0.5,
        False,
        None,
    ),
    "nine soft bounces stay under the limit": (soft(9), 4.5, False, None),
    "ten soft bounces suppress": (soft(10), 5.0, True, "soft_bounces"),
    "ten soft bounces six days apart suppress": (soft(10, every_days=6), 5.0, True, "soft_bounces"),
    "a redelivery cannot push over the limit": ([*soft(9), (0, "soft", "fb-8"), (0, "soft", "fb-0")], 4.5, False, None),
    "seven quiet days reset the score": ([*soft(9), (7.01, "soft", "late")], 0.5, False, None),
    "a stale score reads as zero": ([*soft(4), (8, "none", "")], 0.0, False, None),
    "decay then ten more suppress": (
        [*soft(9), *[(8 if i == 0 else 0, "soft", f"b-{i}") for i in range(10)]],
        5.0,
        True,
        "soft_bounces",
    ),
    "redelivery after the decay does not count": ([(0, "soft", "a"), (8, "soft", "a")], 0.0, False, None),
    "hard bounce suppresses at once": ([(0, "hard", "h1")], 0.0, True, "hard_bounce"),
    "complaint suppresses at once": ([(0, "complaint", "c1")], 0.0, True, "complaint"),
    "soft bounces after a hard one keep its reason": ([(0, "hard", "h1"), *soft(10)], 5.0, True, "hard_bounce"),
    "redelivered last soft bounce still suppresses": ([*soft(10), (0, "soft", "fb-9")], 5.0, True, "soft_bounces"),
}


def test_bounce_sequences(world: World) -> None:
    """Every case in one world (a world costs seconds): each case has its own
    address, so the clock moving on for one case changes nothing for another."""
    people(world)
    wrong = {}
    for n, (name, (steps, score, suppressed, reason)) in enumerate(sorted(CASES.items())):
        address = f"case{n}@people.example"
        body = {**signup_body(n), "person": {"first_name": "Case", "email": address}}
        assert world.put_signup("e1", f"case{n}", body).status_code == 201
        for wait, kind, feedback_id in steps:
            if wait:
                world.advance(wait * DAY)
            if kind != "none":
                assert feed(world, kind, feedback_id, address)
        got = state(world, address)
        if (got["score"], got["suppressed"], got["reason"]) != (score, suppressed, reason):
            wrong[name] = {"got": (got["score"], got["suppressed"], got["reason"]), "want": (score, suppressed, reason)}
        assert got["score_limit"] == 5.0
    assert wrong == {}
    # Nobody else was touched.
    for other in (ADDRESS, "ann1@people.example"):
        got = state(world, other)
        assert (got["score"], got["suppressed"]) == (0.0, False)


def test_feedback_reports_duplicates(world: World) -> None:
    people(world)
    assert feed(world, "soft", "x1") == ["soft_bounce"]
    assert feed(world, "soft", "x1") == ["soft_bounce_duplicate"]
    assert feed(world, "hard", "x2") == ["hard_bounce"]


def test_a_suppressed_address_gets_no_more_chat_mail(world: World) -> None:
    from tests.integration.test_relay import mail

    chat = world.open_chat(["registered", "registered"])
    for n in range(10):
        feed(world, "soft", f"s{n}")
    world.receive(mail("ann1@people.example", chat["address"]), sender="ann1@people.example", to=[chat["address"]])
    world.drain()
    got = {s.to for s in world.relayed()}
    assert "olive0@org.example" in got
    assert ADDRESS not in got


def test_concurrent_notifications_across_the_decay_count_both(world: World) -> None:
    """Two different bounces after a quiet week, both read the stale score
    before either writes: the first resets it, the second's reset is refused
    by its condition and it adds instead, so both count (1.0, not 0.5)."""
    world.open_chat(["registered"])
    for n in range(4):
        feed(world, "soft", f"old{n}")
    world.advance(8 * DAY)
    digest = suppressions.address_hash(world.settings.secret, ADDRESS)
    stale = suppressions.score_item(digest)
    real = suppressions.score_item
    calls = {"n": 0}

    def racing_read(d: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            feed(world, "soft", "first")  # lands between the second's read and write
            return stale
        return real(d)

    world.patch("chalicelib.services.suppressions.score_item", racing_read)
    assert feed(world, "soft", "second") == ["soft_bounce"]
    assert state(world)["score"] == 1.0


def test_soft_bounce_settings_are_read_from_the_environment(world: World) -> None:
    people(world)
    with world.settings_override(MUSTER_SOFT_BOUNCE_SCORE="1", MUSTER_BOUNCE_SCORE_LIMIT="2"):
        feed(world, "soft", "one")
        assert state(world)["suppressed"] is False
        feed(world, "soft", "two")
        got = state(world)
    assert (got["score"], got["suppressed"], got["reason"]) == (2.0, True, "soft_bounces")
