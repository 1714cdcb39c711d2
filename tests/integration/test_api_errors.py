"""R13: every malformed or unauthorized request gets its documented 4xx and the
error body {"error": {"code", "message", "field"}} -- never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.world import World, at, event_body, signup_body


def _event(**changes: Any) -> dict[str, Any]:
    body = event_body(start_in_hours=50)
    body.update(changes)
    return body


def _slot(**changes: Any) -> dict[str, Any]:
    slot = {"id": "t1", "starts_at": at(50), "ends_at": at(52)}
    slot.update(changes)
    return _event(timeslots=[slot])


def _org(**changes: Any) -> dict[str, Any]:
    org = {"id": "o1", "first_name": "Olive", "last_name": "O", "email": "olive@org.example"}
    org.update(changes)
    return _event(organizers=[org])


def _signup(**changes: Any) -> dict[str, Any]:
    body = signup_body(1)
    body.update(changes)
    return body


E = "/events/e1"
S = "/events/e1/signups/s1"
# (case, method, path, body, key, headers, status, code, field)
CASES: list[tuple[str, str, str, Any, str | None, dict[str, str], int, str, str | None]] = [
    ("no key", "GET", E, None, None, {}, 401, "unauthorized", "Authorization"),
    ("wrong key", "GET", E, None, "mk_not-a-real-key", {}, 401, "unauthorized", "Authorization"),
    (
        "not a bearer scheme",
        "GET",
        E,
        None,
        "",
        {"Authorization": "Basic dXNlcjpwYXNz"},
        401,
        "unauthorized",
        "Authorization",
    ),
    ("key without prefix", "GET", E, None, "abc", {}, 401, "unauthorized", "Authorization"),
    ("malformed json", "PUT", E, "{not json", "default", {}, 400, "invalid_json", None),
    ("json array body", "PUT", E, "[]", "default", {}, 400, "invalid_json", None),
    ("empty body", "PUT", E, "", "default", {}, 400, "invalid_json", None),
    ("not utf-8", "PUT", E, b"\xff\xfe{", "default", {}, 400, "invalid_json", None),
    (
        "wrong content type",
        "PUT",
        E,
        json.dumps(_event()),
        "default",
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        "Content-Type",
    ),
    (
        "body too large",
        "PUT",
        E,
        json.dumps(_event(title="x" * 300_000)),
        "default",
        {},
        413,
        "payload_too_large",
        None,
    ),
    (
        "missing title",
        "PUT",
        E,
        {k: v for k, v in _event().items() if k != "title"},
        "default",
        {},
        422,
        "missing_field",
        "title",
    ),
    ("title wrong type", "PUT", E, _event(title=42), "default", {}, 422, "validation_error", "title"),
    ("empty title", "PUT", E, _event(title="  "), "default", {}, 422, "validation_error", "title"),
    ("unknown top-level field", "PUT", E, _event(colour="red"), "default", {}, 422, "unknown_field", "colour"),
    ("unknown chat field", "PUT", E, _event(chat={"enabld": True}), "default", {}, 422, "unknown_field", "chat.enabld"),
    (
        "bad time zone",
        "PUT",
        E,
        _event(timezone="Mars/Olympus_Mons"),
        "default",
        {},
        422,
        "validation_error",
        "timezone",
    ),
    (
        "shift ends before it starts",
        "PUT",
        E,
        _slot(ends_at=at(49)),
        "default",
        {},
        422,
        "validation_error",
        "timeslots.0",
    ),
    (
        "naive datetime",
        "PUT",
        E,
        _slot(starts_at="2030-01-01T10:00:00"),
        "default",
        {},
        422,
        "validation_error",
        "timeslots.0.starts_at",
    ),
    (
        "not a datetime",
        "PUT",
        E,
        _slot(starts_at="next tuesday"),
        "default",
        {},
        422,
        "validation_error",
        "timeslots.0.starts_at",
    ),
    (
        "duplicate timeslot ids",
        "PUT",
        E,
        _event(timeslots=[_slot()["timeslots"][0]] * 2),
        "default",
        {},
        422,
        "validation_error",
        "timeslots",
    ),
    (
        "bad organizer address",
        "PUT",
        E,
        _org(email="olive-at-org"),
        "default",
        {},
        422,
        "validation_error",
        "organizers.0.email",
    ),
    (
        "header injection in address",
        "PUT",
        E,
        _org(email="olive@org.example\r\nBcc: x@y.z"),
        "default",
        {},
        422,
        "validation_error",
        "organizers.0.email",
    ),
    (
        "negative open_before",
        "PUT",
        E,
        _event(chat={"open_before_hours": -1}),
        "default",
        {},
        422,
        "validation_error",
        "chat.open_before_hours",
    ),
    (
        "chat enabled not a bool",
        "PUT",
        E,
        _event(chat={"enabled": "sometimes"}),
        "default",
        {},
        422,
        "validation_error",
        "chat.enabled",
    ),
    ("invalid event id in path", "PUT", "/events/bad%20id!", _event(), "default", {}, 400, "invalid_id", "event_id"),
    ("unknown event", "GET", "/events/nope", None, "default", {}, 404, "not_found", "event_id"),
    ("cancel unknown event", "DELETE", "/events/nope", None, "default", {}, 404, "not_found", "event_id"),
    (
        "signup for unknown event",
        "PUT",
        "/events/nope/signups/s1",
        _signup(),
        "default",
        {},
        404,
        "not_found",
        "event_id",
    ),
    (
        "signup for unknown shift",
        "PUT",
        S,
        _signup(timeslot_id="t9"),
        "default",
        {},
        422,
        "unknown_timeslot",
        "timeslot_id",
    ),
    ("signup bad status", "PUT", S, _signup(status="maybe"), "default", {}, 422, "validation_error", "status"),
    (
        "signup missing person",
        "PUT",
        S,
        {"timeslot_id": "t1", "status": "registered"},
        "default",
        {},
        422,
        "missing_field",
        "person",
    ),
    (
        "signup bad address",
        "PUT",
        S,
        _signup(person={"first_name": "A", "email": "a@b"}),
        "default",
        {},
        422,
        "validation_error",
        "person.email",
    ),
    ("unknown signup", "GET", "/events/e1/signups/nobody", None, "default", {}, 404, "not_found", "signup_id"),
    (
        "chat of unknown shift",
        "GET",
        "/events/e1/timeslots/t9/chat",
        None,
        "default",
        {},
        404,
        "not_found",
        "timeslot_id",
    ),
    ("method not allowed", "POST", E, _event(), "default", {}, 405, "method_not_allowed", None),
    # Found by schemathesis (tests/e2e/test_api_fuzz.py): numbers DynamoDB cannot store were a 500.
    (
        "open_before underflows DynamoDB",
        "PUT",
        E,
        _event(chat={"open_before_hours": 1e-200}),
        "default",
        {},
        422,
        "validation_error",
        "chat.open_before_hours",
    ),
    (
        "close_after underflows DynamoDB",
        "PUT",
        E,
        _event(chat={"close_after_hours": 1e-131}),
        "default",
        {},
        422,
        "validation_error",
        "chat.close_after_hours",
    ),
    (
        "hours below the resolution",
        "PUT",
        E,
        _event(chat={"open_before_hours": 0.001}),
        "default",
        {},
        422,
        "validation_error",
        "chat.open_before_hours",
    ),
    (
        "hours overflow to infinity",
        "PUT",
        E,
        json.dumps(_event()).replace('"chat": {}', '"chat": {"close_after_hours": 1e400}'),
        "default",
        {},
        422,
        "validation_error",
        "chat.close_after_hours",
    ),
    (
        "hours over the limit",
        "PUT",
        E,
        _event(chat={"open_before_hours": 1441}),
        "default",
        {},
        422,
        "validation_error",
        "chat.open_before_hours",
    ),
    # Types are never coerced.
    ("number as a time", "PUT", E, _slot(starts_at=0), "default", {}, 422, "validation_error", "timeslots.0.starts_at"),
    ("number as a bool", "PUT", E, _event(chat={"enabled": 0}), "default", {}, 422, "validation_error", "chat.enabled"),
    (
        "bool as a number",
        "PUT",
        E,
        _event(chat={"open_before_hours": False}),
        "default",
        {},
        422,
        "validation_error",
        "chat.open_before_hours",
    ),
    (
        "string as a number",
        "PUT",
        E,
        _event(chat={"open_before_hours": "48"}),
        "default",
        {},
        422,
        "validation_error",
        "chat.open_before_hours",
    ),
    ("number as an id", "PUT", E, _slot(id=1), "default", {}, 422, "validation_error", "timeslots.0.id"),
    (
        "bool as a shift switch string",
        "PUT",
        E,
        _slot(chat_enabled="true"),
        "default",
        {},
        422,
        "validation_error",
        "timeslots.0.chat_enabled",
    ),
    (
        "number as a name",
        "PUT",
        S,
        _signup(person={"first_name": 5, "email": "a@b.example"}),
        "default",
        {},
        422,
        "validation_error",
        "person.first_name",
    ),
    (
        "number as a delivery",
        "PUT",
        S + "/delivery",
        {"delivery": 0},
        "default",
        {},
        422,
        "validation_error",
        "delivery",
    ),
    # Rules the spec states (patterns, enums, descriptions), refused in R13's shape.
    ("empty time zone", "PUT", E, _event(timezone=""), "default", {}, 422, "validation_error", "timezone"),
    ("empty address", "PUT", E, _org(email=""), "default", {}, 422, "validation_error", "organizers.0.email"),
    (
        "address with spaces around",
        "PUT",
        E,
        _org(email=" olive@org.example "),
        "default",
        {},
        422,
        "validation_error",
        "organizers.0.email",
    ),
    (
        "domain without an IDNA form",
        "PUT",
        E,
        _org(email="olive@org\u00b7x.example"),
        "default",
        {},
        422,
        "validation_error",
        "organizers.0.email",
    ),
    (
        "duplicate organizer ids",
        "PUT",
        E,
        _event(organizers=[_org()["organizers"][0]] * 2),
        "default",
        {},
        422,
        "validation_error",
        "organizers",
    ),
    (
        "name of control characters only",
        "PUT",
        E,
        _org(first_name="\x1f\x00\u200b"),
        "default",
        {},
        422,
        "validation_error",
        "organizers.0.first_name",
    ),
    (
        "title of invisible characters only",
        "PUT",
        E,
        _event(title="\u00a0\ufeff"),
        "default",
        {},
        422,
        "validation_error",
        "title",
    ),
    (
        "name too long",
        "PUT",
        E,
        _org(first_name="x" * 101),
        "default",
        {},
        422,
        "validation_error",
        "organizers.0.first_name",
    ),
    (
        "time without the T",
        "PUT",
        E,
        _slot(starts_at="2030-01-01 10:00:00Z"),
        "default",
        {},
        422,
        "validation_error",
        "timeslots.0.starts_at",
    ),
    (
        "time before 1970",
        "PUT",
        E,
        _slot(starts_at="1969-12-31T23:00:00Z"),
        "default",
        {},
        422,
        "validation_error",
        "timeslots.0.starts_at",
    ),
    (
        "impossible date",
        "PUT",
        E,
        _slot(starts_at="2030-02-30T10:00:00Z"),
        "default",
        {},
        422,
        "validation_error",
        "timeslots.0.starts_at",
    ),
    # Path ids are percent-decoded once, then checked.
    ("double-encoded id", "GET", "/events/e%253A1", None, "default", {}, 400, "invalid_id", "event_id"),
    ("id not UTF-8", "GET", "/events/e%FF", None, "default", {}, 400, "invalid_id", "event_id"),
    ("encoded newline after an id", "GET", "/events/e1%0A", None, "default", {}, 400, "invalid_id", "event_id"),
    # Unknown routes and methods (Chalice's gateway would answer with API Gateway's 403s).
    ("unknown route with a key", "GET", "/nope", None, "default", {}, 404, "not_found", None),
    ("unknown route without a key", "GET", "/nope", None, None, {}, 404, "not_found", None),
    ("route one level too deep", "GET", E + "/signups/s1/delivery/x", None, "default", {}, 404, "not_found", None),
    ("method no route has", "TRACE", E, None, "default", {}, 405, "method_not_allowed", None),
    ("method the document lacks", "DELETE", "/openapi.json", None, None, {}, 405, "method_not_allowed", None),
]


@pytest.mark.parametrize(
    "case, method, path, body, key, headers, status, code, field", CASES, ids=[c[0] for c in CASES]
)
def test_bad_request_gets_documented_error(
    world: World,
    case: str,
    method: str,
    path: str,
    body: Any,
    key: str | None,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    # Given an existing event, so only the request's own mistake matters
    assert world.put_event("e1", event_body(start_in_hours=50)).status_code == 201

    response = world.call(method, path, body, key=key, headers=headers)

    assert response.status_code == status, response.body
    payload = json.loads(response.body)
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message", "field"}
    assert payload["error"]["code"] == code
    assert payload["error"]["field"] == field
    assert payload["error"]["message"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if status == 405:
        assert response.headers["Allow"]


@pytest.mark.parametrize("encoded", ["rw%3Acolon", "rw%3acolon", "rw%2Ecolon", "rw%2Dcolon", "rw:colon"])
def test_percent_encoded_ids_name_the_same_event(world: World, encoded: str) -> None:
    from urllib.parse import unquote

    plain = unquote(encoded)
    assert world.put_event(encoded, event_body(start_in_hours=50)).status_code == 201

    response = world.call("GET", f"/events/{plain}")

    assert response.status_code == 200, response.body
    assert json.loads(response.body)["id"] == plain


def test_values_are_stored_as_sent_not_coerced(world: World) -> None:
    body = event_body(start_in_hours=50, open_before_hours=0, close_after_hours=0.01, enabled=True)
    body["title"] = "  Food bank  "
    assert world.put_event("e1", body).status_code == 201

    view = json.loads(world.call("GET", E).body)

    assert view["title"] == "Food bank"
    assert view["chat"]["open_before_hours"] == 0
    assert view["chat"]["close_after_hours"] == 0.01
    assert view["chat"]["enabled"] is True


def test_integration_events_are_as_strict_as_the_api(world: World) -> None:
    from chalicelib.services.integration import handle_integration_event

    good = {"integration": "acme", "event_id": "eb1", "event": event_body(start_in_hours=50)}
    coerced = {"integration": "acme", "event_id": "eb2", "event": _event(chat={"enabled": 0})}

    assert handle_integration_event({"detail-type": "EventCreated", "detail": good}) == "applied"
    assert handle_integration_event({"detail-type": "EventCreated", "detail": coerced}) == "rejected"
    assert world.call("GET", "/events/eb2").status_code == 404


def test_another_integrations_key_cannot_see_the_event(world: World) -> None:
    from chalicelib.services import keys

    world.put_event("e1", event_body(start_in_hours=50))
    other = keys.create_key("someone-else")
    response = world.call("GET", E, key=other)
    assert response.status_code == 404
    assert "olive0@org.example" not in response.body.decode()


def test_revoked_key_is_refused(world: World) -> None:
    from chalicelib.services import keys

    keys.revoke_key(world.api_key)
    assert world.call("GET", E).status_code == 401


def test_operator_cli_creates_and_revokes_keys(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from chalicelib import cli

    assert cli.main(["create-key", "crm", "--stage", "test"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert world.call("GET", "/events/nope", key=key).status_code == 404  # authenticated
    assert cli.main(["revoke-key", key, "--stage", "test"]) == 0
    assert world.call("GET", "/events/nope", key=key).status_code == 401
