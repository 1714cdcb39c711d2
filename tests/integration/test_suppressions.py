"""Suppressions through the integration API (R11, R13, issue 10): an address's
state, the integration's page of suppressed records, lifting; another
integration sees nothing, errors keep R13's shape, and no response carries an
address other than the one its request named."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.services import keys
from tests.integration.test_bounces import feed
from tests.integration.world import World, event_body, signup_body

ADDRESS_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]+")
ANN0, ANN1, ANN2 = (f"ann{n}@people.example" for n in range(3))
OLIVE = "olive0@org.example"


@pytest.fixture
def records(world: World) -> World:
    """Event e1 (organizer org0, signups s0-s2) of integration acme."""
    assert world.put_event("e1", event_body()).status_code == 201
    for n in range(3):
        assert world.put_signup("e1", f"s{n}", signup_body(n)).status_code == 201
    return world


def call(world: World, method: str, path: str, *, key: str = "default", sent: str | None = None) -> tuple[int, Any]:
    """Call the API; assert the body names no address but ``sent``."""
    response = world.call(method, path, key=key)
    text = response.body.decode() if isinstance(response.body, bytes) else str(response.body)
    assert set(ADDRESS_RE.findall(text)) <= ({sent} if sent else set()), text
    return response.status_code, json.loads(text)


def page(world: World, query: str = "", key: str = "default") -> list[dict[str, Any]]:
    status, body = call(world, "GET", f"/suppressions{query}", key=key)
    assert status == 200, body
    return body["items"]  # type: ignore[no-any-return]


def ids(items: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return sorted((i["event_id"], i["kind"], i["id"], i["reason"]) for i in items)


def test_state_of_an_address(records: World) -> None:
    feed(records, "soft", "f1", ANN0)
    status, body = call(records, "GET", f"/suppressions?email={ANN0}", sent=ANN0)
    assert status == 200
    assert body["email"] == ANN0
    assert (body["suppressed"], body["reason"], body["since"], body["score"]) == (False, None, None, 0.5)
    assert body["last_bounce_at"] is not None
    assert body["records"] == [{"event_id": "e1", "kind": "signup", "id": "s0"}]
    feed(records, "hard", "f2", ANN0)
    status, body = call(records, "GET", f"/suppressions?email={ANN0.upper()}", sent=ANN0.upper())
    assert (body["suppressed"], body["reason"]) == (True, "hard_bounce") and body["since"]


def test_the_page_lists_the_integrations_own_records_by_their_ids(records: World) -> None:
    assert page(records) == []
    feed(records, "hard", "h0", ANN0)
    feed(records, "complaint", "c1", ANN1)
    feed(records, "hard", "h2", OLIVE)  # an organizer: one entry, however many chats hold a copy
    assert ids(page(records)) == [
        ("e1", "organizer", "org0", "hard_bounce"),
        ("e1", "signup", "s0", "hard_bounce"),
        ("e1", "signup", "s1", "complaint"),
    ]
    assert all(item["since"] for item in page(records))


def test_the_page_is_paged(records: World) -> None:
    for n, address in enumerate((ANN0, ANN1, ANN2, OLIVE)):
        feed(records, "hard", f"h{n}", address)
    seen: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(10):
        status, body = call(records, "GET", f"/suppressions?limit=3{cursor}")
        assert status == 200 and len(body["items"]) <= 3
        seen += body["items"]
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={quote(body['next_cursor'])}"
    assert len(seen) == 4 and len(ids(seen)) == len(set(ids(seen)))


def test_an_address_suppressed_before_its_signup_is_listed_when_it_arrives(records: World) -> None:
    feed(records, "hard", "early", "dee@people.example")  # no record of it yet
    assert page(records) == []
    body = {**signup_body(9), "person": {"first_name": "Dee", "email": "dee@people.example"}}
    assert records.put_signup("e1", "s9", body).status_code == 201
    assert ids(page(records)) == [("e1", "signup", "s9", "hard_bounce")]


def test_lifting_clears_the_flag_the_score_and_the_page(records: World) -> None:
    for n in range(10):
        feed(records, "soft", f"s{n}", ANN0)
    assert ids(page(records)) == [("e1", "signup", "s0", "soft_bounces")]
    status, body = call(records, "DELETE", f"/suppressions?email={ANN0}", sent=ANN0)
    assert status == 200
    assert (body["suppressed"], body["score"], body["reason"]) == (False, 0.0, None)
    assert body["lifted_at"] is not None
    assert page(records) == []
    # Lifting again changes nothing; a new bounce counts from zero.
    assert call(records, "DELETE", f"/suppressions?email={ANN0}", sent=ANN0)[1]["suppressed"] is False
    feed(records, "soft", "after", ANN0)
    assert call(records, "GET", f"/suppressions?email={ANN0}", sent=ANN0)[1]["score"] == 0.5


def test_a_lifted_address_gets_chat_mail_again(world: World) -> None:
    from tests.integration.test_relay import mail

    chat = world.open_chat(["registered", "registered"])
    feed(world, "hard", "h", ANN0)

    def post(subject: str) -> set[str]:
        before = len(world.relayed())
        world.receive(mail(ANN1, chat["address"], subject=subject), sender=ANN1, to=[chat["address"]])
        world.drain()
        return {s.to for s in world.relayed()[before:]}

    assert ANN0 not in post("while suppressed")
    assert call(world, "DELETE", "/events/e1/signups/s0/suppression")[0] == 200
    assert ANN0 in post("after the lift")


def test_by_signup_the_response_names_no_address(records: World) -> None:
    feed(records, "complaint", "c", ANN2)
    status, body = call(records, "GET", "/events/e1/signups/s2/suppression")
    assert status == 200 and body["email"] is None and (body["suppressed"], body["reason"]) == (True, "complaint")
    status, body = call(records, "DELETE", "/events/e1/signups/s2/suppression")
    assert status == 200 and body["suppressed"] is False
    assert call(records, "GET", f"/suppressions?email={ANN2}", sent=ANN2)[1]["suppressed"] is False


def test_another_integration_sees_and_lifts_nothing(records: World) -> None:
    other = keys.create_key("other")
    feed(records, "hard", "h", ANN0)
    assert page(records, key=other) == []
    for method in ("GET", "DELETE"):
        status, body = call(records, method, f"/suppressions?email={ANN0}", key=other, sent=ANN0)
        assert status == 404 and body["error"]["field"] == "email"
        status, body = call(records, method, "/events/e1/signups/s0/suppression", key=other)
        assert status == 404 and body["error"]["field"] == "signup_id"
    assert call(records, "GET", f"/suppressions?email={ANN0}", sent=ANN0)[1]["suppressed"] is True


def test_an_address_both_integrations_hold_is_listed_for_each_and_lifted_for_both(records: World) -> None:
    other = keys.create_key("other")
    for key in ("default", other):
        assert records.call("PUT", "/events/shared", event_body(), key=key).status_code == 201
    body = signup_body(0)
    assert records.call("PUT", "/events/shared/signups/x", body, key=other).status_code == 201
    feed(records, "hard", "h", ANN0)
    assert ids(page(records)) == [("e1", "signup", "s0", "hard_bounce")]
    assert ids(page(records, key=other)) == [("shared", "signup", "x", "hard_bounce")]
    assert call(records, "DELETE", f"/suppressions?email={ANN0}", key=other, sent=ANN0)[0] == 200
    assert page(records) == [] and page(records, key=other) == []


ERRORS = [
    ("GET", "/suppressions?email=not-an-address", "default", 400, "invalid_email", "email"),
    ("GET", "/suppressions?email=", "default", 400, "missing_parameter", "email"),
    ("DELETE", "/suppressions", "default", 400, "missing_parameter", "email"),
    ("GET", "/suppressions?surprise=1", "default", 400, "unknown_parameter", "surprise"),
    ("DELETE", f"/suppressions?email={ANN0}&limit=2", "default", 400, "unknown_parameter", "limit"),
    ("GET", "/suppressions?limit=0", "default", 400, "invalid_parameter", "limit"),
    ("GET", "/suppressions?limit=101", "default", 400, "invalid_parameter", "limit"),
    ("GET", "/suppressions?limit=ten", "default", 400, "invalid_parameter", "limit"),
    ("GET", "/suppressions?cursor=%%%", "default", 400, "invalid_cursor", "cursor"),
    ("GET", "/suppressions?cursor=bm90LWEtY3Vyc29y", "default", 400, "invalid_cursor", "cursor"),
    ("GET", "/suppressions?email=nobody@people.example", "default", 404, "not_found", "email"),
    ("GET", "/suppressions", "bad", 401, "unauthorized", "Authorization"),
    ("DELETE", "/suppressions?email=x@people.example", "bad", 401, "unauthorized", "Authorization"),
    ("GET", "/events/e1/signups/nope/suppression", "default", 404, "not_found", "signup_id"),
    ("DELETE", "/events/nope/signups/s0/suppression", "default", 404, "not_found", "signup_id"),
    ("GET", "/events/e1/signups/bad%20id/suppression", "default", 400, "invalid_id", "signup_id"),
    ("PUT", "/suppressions", "default", 405, "method_not_allowed", None),
]


def test_errors_keep_r13s_shape(records: World) -> None:
    """All cases in one world (a world costs seconds); every mismatch is reported."""
    wrong = {}
    for method, path, key, status, code, field in ERRORS:
        response = records.call(method, path, key="mk_not-a-key" if key == "bad" else key)
        body = json.loads(response.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
        assert "people.example" not in body["error"]["message"]
        got = (response.status_code, body["error"]["code"], body["error"]["field"])
        if got != (status, code, field):
            wrong[f"{method} {path}"] = got
    assert wrong == {}


def test_feedback_and_the_api_log_no_address(records: World, caplog: pytest.LogCaptureFixture) -> None:
    from chalicelib.observability import logger

    level = logger.log_level
    logger.setLevel("INFO")  # the suite runs at WARNING (tests/offline.py); deployed stages log INFO
    try:
        with caplog.at_level("INFO"):
            for n in range(10):
                feed(records, "soft", f"s{n}", ANN0)
            feed(records, "complaint", "c", ANN1)
            call(records, "GET", f"/suppressions?email={ANN0}", sent=ANN0)
            call(records, "DELETE", f"/suppressions?email={ANN0}", sent=ANN0)
    finally:
        logger.setLevel(level)
    logs = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert "suppression lifted" in logs and "address suppressed" in logs and "address_hash" in logs
    assert not ADDRESS_RE.findall(logs)
