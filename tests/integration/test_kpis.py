"""KPIs kept on write (issue 11): a seeded dataset of 42 chats through the real
write paths (the API, the relay, the settings link), then exact values through
``GET /kpis`` and ``GET /kpis/chats`` for a range and for one event, and the
same figures from ``make kpis`` (chalicelib.cli)."""

from __future__ import annotations

import io
import json
import math
import statistics
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest

from tests.integration.test_relay import mail
from tests.integration.world import World

T0 = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
CHATS = 42
PER_EVENT = 14
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def frozen(world: World) -> Iterator[Clock]:
    c = Clock()
    with mock.patch("chalicelib.clock.now", c):
        yield c


@dataclass
class Plan:
    c: int
    event: str
    slot: str
    opened: datetime
    messages: list[tuple[float, int]] = field(default_factory=list)  # (minutes after opening, poster)
    referred: bool = False  # signup 2 came through signup 0's link
    forged: bool = False  # signup 1 carries a tampered code
    mutes: bool = False  # signup 1 mutes
    leaves: bool = False  # signup 0 leaves

    @property
    def ends(self) -> datetime:
        return self.opened + timedelta(hours=12)


def plans() -> list[Plan]:
    out = []
    for c in range(CHATS):
        day = c // PER_EVENT
        p = Plan(c=c, event=f"e{day + 1}", slot=f"t{c % PER_EVENT}", opened=T0 + timedelta(days=day))
        n = (c * 7) % 4
        for m in range(n):
            minutes = 30.0 + 45 * m + c
            if m == n - 1 and c % 3 == 0:
                minutes = 13 * 60.0 + c  # after the shift ended (it ends 12 h after opening)
            p.messages.append((minutes, (c + m) % 3))
        p.referred = c % 5 == 0
        p.forged = c % 7 == 0
        p.mutes = c % 4 == 1
        p.leaves = c % 6 == 2
        out.append(p)
    return out


def email(c: int, j: int) -> str:
    return f"p{c}x{j}@people.example"


def seed(world: World, clock: Clock, all_plans: list[Plan]) -> None:
    from chalicelib.services import referrals
    from chalicelib.services.links import mute_url

    for day in range(3):
        mine = [p for p in all_plans if p.c // PER_EVENT == day]
        if not mine:
            continue
        clock.now = mine[0].opened
        body = {
            "title": f"Canvass {day}",
            "timezone": "UTC",
            "organizers": [{"id": "org0", "first_name": "Olive", "last_name": "O", "email": "olive@org.example"}],
            "timeslots": [
                {
                    "id": p.slot,
                    "starts_at": (p.opened + timedelta(hours=10)).isoformat(),
                    "ends_at": p.ends.isoformat(),
                }
                for p in mine
            ],
        }
        assert world.put_event(mine[0].event, body).status_code in (200, 201)
        for p in mine:
            for j in range(3):
                signup: dict[str, Any] = {
                    "timeslot_id": p.slot,
                    "status": "registered",
                    "person": {"first_name": f"P{j}", "last_name": "Q", "email": email(p.c, j)},
                }
                if j == 2 and p.referred:
                    signup["referred_by"] = referrals.ref_for(world.settings, "acme", p.event, f"c{p.c}s0")
                if j == 1 and p.forged:
                    good = referrals.ref_for(world.settings, "acme", p.event, f"c{p.c}s0")
                    signup["referred_by"] = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
                assert world.put_signup(p.event, f"c{p.c}s{j}", signup).status_code == 201
    for p in all_plans:
        chat = world.chat(p.event, p.slot)
        for minutes, j in p.messages:
            clock.now = p.opened + timedelta(minutes=minutes)
            out = world.receive(
                mail(email(p.c, j), chat["address"]), sender=email(p.c, j), to=[chat["address"]], when=clock.now
            )
            assert out == {"outcomes": ["relayed"]}, out
        clock.now = p.opened + timedelta(hours=20)
        chat_id = chat["address"].split("@")[0].rsplit("-", 1)[-1]
        for j, wanted, body in ((1, p.mutes, b"List-Unsubscribe=One-Click"), (0, p.leaves, b"action=leave")):
            if wanted:
                path = mute_url(world.settings, chat_id, f"s-c{p.c}s{j}").removeprefix(world.settings.public_url)
                assert world.client.http.post(path, body=body, headers=URLENCODED).status_code == 200


def nearest_rank_p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def expected(chosen: list[Plan], clicks: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The figures, worked out from the plan alone."""
    msgs = [len(p.messages) for p in chosen]
    posters = [len({j for _, j in p.messages}) for p in chosen]
    firsts = [min(m for m, _ in p.messages) * 60 for p in chosen if p.messages]
    members = 4 * len(chosen)  # the organizer and three signups, each sent a kickoff
    muted = sum(int(p.mutes) + int(p.leaves) for p in chosen)
    left = sum(int(p.leaves) for p in chosen)
    referred = [p for p in chosen if p.referred]
    referred_posted = sum(1 for p in referred if any(j == 2 for _, j in p.messages))
    after = sum(1 for p in chosen if any(p.opened + timedelta(minutes=m) > p.ends for m, _ in p.messages))
    with_messages = sum(1 for n in msgs if n)
    steps: dict[str, int] = {}
    for p in chosen:
        for step, n in clicks.get(f"c{p.c}", {}).items():
            steps[step] = steps.get(step, 0) + n
    return {
        "chats_opened": len(chosen),
        "chats_with_messages": with_messages,
        "share_with_messages": with_messages / len(chosen),
        "chats_after_event": after,
        "share_after_event": after / len(chosen),
        "messages_per_chat": {
            "median": float(statistics.median(msgs)),
            "p90": float(nearest_rank_p90([float(n) for n in msgs]) or 0),
        },
        "posters_per_chat": {
            "median": float(statistics.median(posters)),
            "p90": float(nearest_rank_p90([float(n) for n in posters]) or 0),
        },
        "first_message_seconds": {"median": float(statistics.median(firsts)), "p90": nearest_rank_p90(firsts)},
        "members": members,
        "mute_rate": muted / members,
        "leave_rate": left / members,
        "referrals": len(referred),
        "referred_posted": referred_posted,
        "share_referred_posted": referred_posted / len(referred) if referred else 0.0,
        "next_step_clicks": [{"step_id": s, "clicks": n} for s, n in sorted(steps.items())],
    }


def get(world: World, query: str) -> Any:
    response = world.call("GET", f"/kpis{query}")
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def test_seeded_chats_give_exact_kpis_through_the_api_and_make_kpis(world: World, frozen: Clock) -> None:
    from chalicelib import cli
    from chalicelib.services import kpis

    all_plans = plans()
    seed(world, frozen, all_plans)
    frozen.now = T0 + timedelta(days=5)

    # Clicks come through the one seam the next-steps service plugs into.
    chat_ids = {}
    for p in all_plans:
        address = world.chat(p.event, p.slot)["address"]
        chat_ids[address.split("@")[0].rsplit("-", 1)[-1]] = f"c{p.c}"
    clicks_by_plan = {f"c{c}": {"volunteer": c % 3, "donate": 1 if c % 4 == 0 else 0} for c in range(CHATS)}
    by_chat = {cid: clicks_by_plan[label] for cid, label in chat_ids.items()}
    seen: list[tuple[Any, ...]] = []

    def clicks(integration: str, start: Any, end: Any, event_id: str | None) -> dict[str, dict[str, int]]:
        seen.append((integration, start, end, event_id))
        return by_chat

    with mock.patch.object(kpis, "_clicks", clicks):
        # The whole range: every chat
        body = get(world, "?from=2026-12-10&to=2026-12-12")
        assert {k: v for k, v in body.items() if k not in {"from", "to", "event_id"}} == expected(
            all_plans, clicks_by_plan
        )
        assert body["chats_opened"] == 42 and (body["from"], body["to"]) == ("2026-12-10", "2026-12-12")

        # Two of the three days
        body = get(world, "?from=2026-12-11&to=2026-12-12")
        chosen = [p for p in all_plans if p.c >= PER_EVENT]
        assert {k: v for k, v in body.items() if k not in {"from", "to", "event_id"}} == expected(
            chosen, clicks_by_plan
        )

        # One event over the whole range
        body = get(world, "?from=2026-12-01&to=2026-12-31&event_id=e2")
        chosen = [p for p in all_plans if p.event == "e2"]
        assert {k: v for k, v in body.items() if k not in {"from", "to", "event_id"}} == expected(
            chosen, clicks_by_plan
        )
        assert body["event_id"] == "e2"
        assert seen[-1] == ("acme", datetime(2026, 12, 1).date(), datetime(2026, 12, 31).date(), "e2")

        # One row per chat
        rows = json.loads(world.call("GET", "/kpis/chats?from=2026-12-10&to=2026-12-10").body)["chats"]
        assert len(rows) == PER_EVENT
        by_label = {chat_ids[r["chat_id"]]: r for r in rows}
        for p in all_plans[:PER_EVENT]:
            r = by_label[f"c{p.c}"]
            assert (r["event_id"], r["timeslot_id"], r["opened_on"]) == ("e1", p.slot, "2026-12-10")
            assert r["messages"] == len(p.messages)
            assert r["posters"] == len({j for _, j in p.messages})
            assert r["referrals"] == int(p.referred)
            assert r["members"] == 4
            assert r["next_step_clicks"] == sum(clicks_by_plan[f"c{p.c}"].values())

        # make kpis prints the same figures from the same code
        out = io.StringIO()
        with redirect_stdout(out):
            assert cli.main(["kpis", "acme", "--from", "2026-12-11", "--to", "2026-12-12", "--json"]) == 0
        assert json.loads(out.getvalue()) == get(world, "?from=2026-12-11&to=2026-12-12")
        text = io.StringIO()
        with redirect_stdout(text):
            assert cli.main(["kpis", "acme", "--from", "2026-12-10", "--to", "2026-12-12", "--event-id", "e3"]) == 0
        expected_e3 = expected([p for p in all_plans if p.event == "e3"], clicks_by_plan)
        assert f"chats_opened: {expected_e3['chats_opened']}\n" in text.getvalue()
        assert f"share_with_messages: {expected_e3['share_with_messages']}\n" in text.getvalue()

    # Another integration sees none of it
    from chalicelib.services import keys

    other = keys.create_key("other")
    response = world.call("GET", "/kpis?from=2026-12-10&to=2026-12-12", key=other)
    assert json.loads(response.body)["chats_opened"] == 0


def test_a_retried_relay_counts_once(world: World, frozen: Clock) -> None:
    from chalicelib.services import signals

    one = [Plan(c=0, event="e1", slot="t0", opened=T0, messages=[(40.0, 1)])]
    seed(world, frozen, one)
    before = get(world, "?from=2026-12-10&to=2026-12-10")
    owed = [s for s in signals.owed() if s.detail_type == "MessageRelayed"]
    assert before["messages_per_chat"]["median"] == 1.0 and len(owed) == 1

    # Lambda retries the same SES event; then the idempotency record is gone and it comes again
    assert world.retry() == {"outcomes": ["relayed"]}
    import boto3

    table = boto3.resource("dynamodb").Table(world.settings.idempotency_table_name)
    for entry in table.scan()["Items"]:
        table.delete_item(Key={"id": entry["id"]})
    assert world.retry() == {"outcomes": ["relayed"]}

    assert get(world, "?from=2026-12-10&to=2026-12-10") == before
    assert [s.pk for s in signals.owed() if s.detail_type == "MessageRelayed"] == [owed[0].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?from=2026-12-12&to=2026-12-10", "from"),
        ("?from=2026-13-01", "from"),
        ("?from=20261201", "from"),
        ("?to=2026-02-30", "to"),
        ("?from=2025-01-01&to=2026-12-31", "from"),
        ("?event_id=bad%20id", "event_id"),
        ("?since=2026-01-01", "since"),
    ],
)
def test_bad_ranges_are_r13_errors(world: World, query: str, field: str) -> None:
    for path in ("/kpis", "/kpis/chats"):
        response = world.call("GET", path + query)
        assert response.status_code == 400, (path, query, response.body)
        error = json.loads(response.body)["error"]
        assert error["field"] == field and error["code"] and error["message"]


def test_a_full_year_is_allowed(world: World) -> None:
    assert world.call("GET", "/kpis?from=2024-01-01&to=2024-12-31").status_code == 200  # 366 days
    assert world.call("GET", "/kpis?from=2023-01-01&to=2024-01-02").status_code == 400  # 367 days


def test_click_counters_in_the_same_partition_are_not_chats(world: World, frozen: Clock) -> None:
    """The next-steps service counts clicks under ``KPI#<integration>``/``D#<day>#CH#<chat>#L#<step>``."""
    import boto3

    seed(world, frozen, [Plan(c=0, event="e1", slot="t0", opened=T0, messages=[(40.0, 1)])])
    boto3.client("dynamodb").put_item(
        TableName=world.settings.table_name,
        Item={
            "pk": {"S": "KPI#acme"},
            "sk": {"S": "D#2026-12-10#CH#someotherchat#L#volunteer"},
            "clicks": {"N": "3"},
            "event_id": {"S": "e1"},
        },
    )
    body = get(world, "?from=2026-12-10&to=2026-12-10")
    assert body["chats_opened"] == 1 and body["messages_per_chat"]["median"] == 1.0
    rows = json.loads(world.call("GET", "/kpis/chats?from=2026-12-10&to=2026-12-10").body)["chats"]
    assert [r["timeslot_id"] for r in rows] == ["t0"] and rows[0]["opened_on"] == "2026-12-10"
