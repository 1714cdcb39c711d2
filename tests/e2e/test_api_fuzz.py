"""Schemathesis against the running twin's published /openapi.json (R13).

Bounded, so it fits in ``make test`` (``MUSTER_FUZZ_EXAMPLES`` raises the fuzzing
phase's examples per operation for a longer run). Every generated request, valid
or not, over real HTTP to Chalice's local server, must get a response that

1. is never a 5xx (``not_a_server_error``);
2. has a documented status, content type and body (``status_code_conformance``,
   ``content_type_conformance``, ``response_schema_conformance``, ...);
3. shows the spec is exactly as strict as the server: what the spec allows is
   accepted (``positive_data_acceptance``), what it forbids is refused
   (``negative_data_rejection``); undeclared methods get 405 with ``Allow``.

JSON Schema cannot state five of the API's rules, so the spec states them in
words (unique ids in a list, a shift ending after it starts, a domain with an
IDNA form, a phone number valid for its country, a signup's shift existing in its event, an event's keywords being
none of the reserved words and each once whatever its case). A schema-valid request the
server refuses for one of those is excused from ``positive_data_acceptance`` only
(every other check still runs) and only when this test confirms, on its own,
that the request breaks that very rule: see :func:`documented_refusal`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis

from chalicelib.relay.addresses import idna_domain
from tests.e2e.conftest import Twin, start_twin, stop_twin

pytestmark = pytest.mark.e2e

# Fuzzing-phase examples per operation and mode; the coverage and examples phases
# add their own deterministic cases (boundaries, each constraint broken once).
MAX_EXAMPLES = int(os.environ.get("MUSTER_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzz_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    # Its own twin: fuzzed events open chats and send kickoffs that the shared
    # twin's tests would otherwise count.
    handle = start_twin(tmp_path_factory.mktemp("fuzz-twin"))
    try:
        yield handle
    finally:
        code = stop_twin(handle)
        assert code == 0, f"the twin did not stop cleanly ({code}):\n{handle.log()[-4000:]}"


def fuzz_config(api_key: str) -> dict[str, Any]:
    return {
        "seed": 20261201,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        "auth": {"openapi": {"bearer": {"bearer": api_key}}},
        "phases": {"stateful": {"enabled": False}},
        # A loaded CI machine generates slowly; the run is bounded by examples, not time.
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
        "checks": {"enabled": True},
    }


@pytest.fixture(scope="module")
def api_schema(fuzz_twin: Twin) -> Any:
    config = schemathesis.Config.from_dict(fuzz_config(fuzz_twin.client.api_key))
    return schemathesis.openapi.from_url(f"{fuzz_twin.config.api_url}/openapi.json", config=config)


@pytest.fixture(autouse=True)
def _legacy_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy loader renames the item through ``Node._nodeid``, which
    # pytest 9.2 no longer has (node ids are structured): give it one to read.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


# -- the rules JSON Schema cannot state, checked here on their own ---------------------


def _duplicate_ids(items: Any) -> bool:
    if not isinstance(items, list):
        return False
    ids = [item.get("id") if isinstance(item, dict) else item for item in items]
    return len(ids) != len(set(map(str, ids)))


def _event(case: schemathesis.Case, twin: Twin) -> dict[str, Any] | None:
    event_id = quote(str(case.path_parameters["event_id"]), safe="")
    response = requests.get(
        f"{twin.config.api_url}/events/{event_id}",
        headers={"Authorization": f"Bearer {twin.client.api_key}"},
        timeout=15,
    )
    return response.json() if response.status_code == 200 else None


def _announcement_refusal(case: schemathesis.Case, twin: Twin, code: str) -> str | None:
    """An announcement's organizer and next steps must be the event's (issue 11)."""
    event = _event(case, twin)
    if event is None:
        return None
    if code == "unknown_organizer" and case.body["organizer_id"] not in {o["id"] for o in event["organizers"]}:
        return "the organizer is one of the event's"
    steps = {s["id"] for s in event.get("next_steps", [])}
    if code == "unknown_next_step" and set(case.body.get("next_steps") or []) - steps:
        return "the next steps are the event's"
    if code == "not_an_organizer":
        return "the organizer is active in the chat"
    return None


def _ends_not_after_start(slot: Any) -> bool:
    try:
        return datetime.fromisoformat(slot["ends_at"]) <= datetime.fromisoformat(slot["starts_at"])
    except (KeyError, TypeError, ValueError):
        return False


def _at(body: Any, dotted: str) -> Any:
    value = body
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _keywords_refused(keywords: Any) -> bool:
    """Issue 12: no reserved word, each keyword once whatever its case."""
    from chalicelib.relay.bot import RESERVED

    if not isinstance(keywords, dict):
        return False
    upper = [str(k).upper() for k in keywords]
    return len(set(upper)) != len(upper) or any(k in RESERVED for k in upper)


def _shift_missing(case: schemathesis.Case, twin: Twin) -> bool:
    event_id = quote(str(case.path_parameters["event_id"]), safe="")
    response = requests.get(
        f"{twin.config.api_url}/events/{event_id}",
        headers={"Authorization": f"Bearer {twin.client.api_key}"},
        timeout=15,
    )
    if response.status_code != 200:
        return False
    return case.body["timeslot_id"] not in {slot["id"] for slot in response.json()["timeslots"]}


def _documented_query_refusal(case: schemathesis.Case, error: dict[str, Any]) -> str | None:
    """The query rules the document states in words: an address's domain has an
    IDNA form; a cursor is one the API gave out (this run gave out none)."""
    value = (case.query or {}).get(error.get("field") or "")
    if error.get("code") == "invalid_email" and isinstance(value, str):
        return "the address's domain has an IDNA form" if idna_domain(value.rpartition("@")[2]) is None else None
    if error.get("code") == "invalid_cursor" and isinstance(value, str):
        return "a cursor the API gave out"
    if error.get("code") == "invalid_date_range":  # /kpis (issue 11)
        return _bad_kpi_range(case.query or {})
    return None


def _bad_kpi_range(query: dict[str, Any]) -> str | None:
    """A real calendar day; 'from' not after 'to'; at most 366 days (defaults: today, 29 days before)."""
    from datetime import UTC, date, timedelta

    try:
        end = date.fromisoformat(query["to"]) if "to" in query else datetime.now(UTC).date()
        start = date.fromisoformat(query["from"]) if "from" in query else end - timedelta(days=29)
    except (TypeError, ValueError):
        return "a real calendar day"
    if start > end:
        return "'from' is not after 'to'"
    if (end - start).days + 1 > 366:
        return "a range of at most 366 days"
    return None


def _valid_phone(number: str) -> bool:
    import phonenumbers

    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, None)))
    except phonenumbers.NumberParseException:
        return False


def documented_refusal(case: schemathesis.Case, response: Any, twin: Twin) -> str | None:
    """Which documented, JSON-Schema-inexpressible rule this 422 enforces, if the
    request really breaks it; else None (and the refusal counts as a failure)."""
    if response.status_code == 400 and case.query:
        return _documented_query_refusal(case, response.json()["error"])
    if response.status_code != 422 or not isinstance(case.body, dict):
        return None
    error = response.json()["error"]
    field, code = error["field"] or "", error["code"]
    body = case.body
    try:
        if code in {"unknown_organizer", "unknown_next_step", "not_an_organizer"}:
            return _announcement_refusal(case, twin, code)
        if (
            code == "validation_error"
            and field in {"organizers", "timeslots", "next_steps"}
            and _duplicate_ids(body.get(field))
        ):
            return f"{field}: each id once"
        is_slot = field.startswith("timeslots.") and field.count(".") == 1
        if code == "validation_error" and is_slot and _ends_not_after_start(_at(body, field)):
            return "a shift ends after it starts"
        if code == "validation_error" and (field == "email" or field.endswith(".email")):
            address = _at(body, field)
            if isinstance(address, str) and idna_domain(address.rpartition("@")[2]) is None:
                return "the address's domain has an IDNA form"
        if code == "validation_error" and field == "keywords" and _keywords_refused(body.get("keywords")):
            return "keywords: none reserved, each once whatever its case"
        if code == "validation_error" and (field == "phone" or field.endswith(".phone")):
            number = _at(body, field)
            if isinstance(number, str) and not _valid_phone(number):
                return "the number is valid for its country (libphonenumber)"
        if code == "unknown_timeslot" and field == "timeslot_id" and _shift_missing(case, twin):
            return "a signup's shift exists in its event"
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None


schema = schemathesis.pytest.from_fixture("api_schema")
STATS: dict[str, list[float]] = defaultdict(list)


@pytest.fixture(scope="module", autouse=True)
def _report_requests() -> Iterator[None]:
    yield
    if STATS:
        lines = [f"{op}: {len(t)} requests, {sum(t):.1f}s, slowest {max(t):.2f}s" for op, t in sorted(STATS.items())]
        total = sum(len(t) for t in STATS.values())
        sys.stderr.write(f"\napi fuzz: {total} requests\n  " + "\n  ".join(lines) + "\n")


ZONE_SAMPLE = 40


def redundant(case: schemathesis.Case) -> bool:
    """The coverage phase makes one case per enum value, so ~600 that differ only
    in the time-zone name (two minutes of requests on a loaded machine). Each name
    is checked by the same membership test: send one in ZONE_SAMPLE, chosen by a
    stable hash of the name."""
    data = case.meta.phase.data if case.meta is not None else None
    if "'timezone' value: Enum value" not in str(getattr(data, "description", "")):
        return False
    zone = case.body.get("timezone") if isinstance(case.body, dict) else None
    return isinstance(zone, str) and zlib.crc32(zone.encode()) % ZONE_SAMPLE != 0


@schema.parametrize()
def test_api_matches_its_spec(case: schemathesis.Case, fuzz_twin: Twin) -> None:
    if redundant(case):
        return
    started = time.monotonic()
    response = case.call()
    STATS[f"{case.method} {case.operation.path}"].append(time.monotonic() - started)
    excused = documented_refusal(case, response, fuzz_twin)
    # Built-in checks are attributes of schemathesis.checks once loaded (they are, in here).
    excluded = [schemathesis.checks.positive_data_acceptance] if excused else None  # type: ignore[attr-defined]
    case.validate_response(response, excluded_checks=excluded)


# -- what the fuzzer cannot ask: paths and methods outside the document ----------------


@pytest.mark.parametrize(
    "method, path, auth, status, code",
    [
        ("GET", "/nope", True, 404, "not_found"),
        ("GET", "/nope", False, 404, "not_found"),
        ("PUT", "/events/e1/signups/s1/delivery/extra", True, 404, "not_found"),
        ("TRACE", "/events/e1", True, 405, "method_not_allowed"),
        ("QUERY", "/events/e1", True, 405, "method_not_allowed"),
        ("PATCH", "/openapi.json", False, 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_and_methods_answer_in_r13_shape(
    twin: Twin, method: str, path: str, auth: bool, status: int, code: str
) -> None:
    # The shared twin (these requests change nothing), so that on two xdist workers
    # only the fuzzing item starts a twin of its own.
    response = twin.client.request(method, path, auth=auth)

    assert response.status == status, response.body
    assert response.headers["Content-Type"] == "application/json"
    error = json.loads(response.body)
    assert set(error) == {"error"} and set(error["error"]) == {"code", "message", "field"}
    assert error["error"]["code"] == code
    assert error["error"]["field"] is None
    assert error["error"]["message"]
    if status == 405:
        assert response.headers["Allow"]
    twin.assert_alive()
