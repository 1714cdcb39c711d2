"""Next steps (issue 11): the event's calls to action in the kickoff, each a signed
redirect that counts clicks per chat and link; attendees' own links untouched."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.models import ClickCount
from chalicelib.relay.steptokens import sign_step
from chalicelib.services import nextsteps
from chalicelib.services.chats import chat_id_for
from tests.integration.steps_helpers import STEPS, TARGETS, click, open_with_steps, step_links, texts
from tests.integration.world import World, event_body

# The real-client corpus (../shared/corpus/real-clients), as the repository keeps it.
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "real-clients"


def chat_id(world: World, timeslot: str = "t1") -> str:
    return chat_id_for("acme", "e1", timeslot, world.settings.secret)


def today_clicks(world: World) -> dict[str, dict[str, int]]:
    today = datetime.now().astimezone().date()
    return nextsteps.clicks("acme", today - timedelta(days=1), today + timedelta(days=1))


# -- the event body ---------------------------------------------------------------


def test_event_keeps_next_steps_and_debrief(world: World) -> None:
    body = {**event_body(), "next_steps": STEPS, "debrief": {"after_hours": 2, "text": "How did it go?"}}
    response = world.put_event("e1", body)
    assert response.status_code == 201, response.body
    view = json.loads(world.call("GET", "/events/e1").body)
    assert view["next_steps"] == STEPS
    assert view["debrief"] == {"after_hours": 2.0, "text": "How did it go?"}
    # Backwards compatible: an event without them is as before.
    assert world.put_event("e2", event_body()).status_code == 201
    plain = json.loads(world.call("GET", "/events/e2").body)
    assert plain["next_steps"] == [] and plain["debrief"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"next_steps": [{**STEPS[0], "id": f"s{n}"} for n in range(6)]}, "next_steps"),
        ({"next_steps": [STEPS[0], STEPS[0]]}, "next_steps"),
        ({"next_steps": [{**STEPS[0], "url": "http://act.example.org/"}]}, "next_steps.0.url"),
        ({"next_steps": [{**STEPS[0], "url": "https://user:pw@act.example.org/"}]}, "next_steps.0.url"),
        ({"next_steps": [{**STEPS[0], "url": "javascript:alert(1)"}]}, "next_steps.0.url"),
        ({"next_steps": [{**STEPS[0], "label": "x" * 81}]}, "next_steps.0.label"),
        ({"next_steps": [{**STEPS[0], "label": "Sign\r\nBcc: x"}]}, "next_steps.0.label"),
        ({"next_steps": [{**STEPS[0], "id": "no spaces"}]}, "next_steps.0.id"),
        ({"debrief": {"after_hours": 169, "text": "x"}}, "debrief.after_hours"),
        ({"debrief": {"after_hours": 2, "text": ""}}, "debrief.text"),
        ({"debrief": {"after_hours": "2", "text": "x"}}, "debrief.after_hours"),
    ],
)
def test_bad_next_steps_and_debriefs_are_422(world: World, change: dict, field: str) -> None:
    response = world.put_event("e1", {**event_body(), **change})
    assert response.status_code == 422, response.body
    assert json.loads(response.body)["error"]["field"] == field


# -- the kickoff --------------------------------------------------------------------


def test_kickoff_carries_each_next_step_as_a_signed_link_in_text_and_html(world: World) -> None:
    open_with_steps(world)
    kickoffs = world.sent()
    assert sorted(s.to for s in kickoffs) == ["ann0@people.example", "ann1@people.example", "olive0@org.example"]
    links_seen = set()
    for copy in kickoffs:
        parts = texts(copy.raw)
        assert "Sign the petition" in parts["plain"] and "Pick your next shift" in parts["plain"]
        assert "Sign the petition</a>" in parts["html"]
        text_links, html_links = step_links(world, copy.raw), step_links(world, copy.raw, "html")
        assert len(text_links) == 2 and text_links == html_links
        links_seen.add(tuple(text_links))
        # The target is never in the mail: only the redirect, which looks it up.
        assert b"act.example.org" not in copy.raw and b"events.example.org" not in copy.raw
        assert nextsteps.COUNT_NOTE in parts["plain"]
        # The HTML alternative keeps its own working mute link.
        assert re.search(r'href="https://api\.muster\.test/mute/[^"]+"', parts["html"])
    # Not attributed (the default): every reader's links are the same.
    assert len(links_seen) == 1


def test_a_kickoff_without_next_steps_is_as_before(world: World) -> None:
    world.open_chat(["registered"])
    for copy in world.sent():
        assert "Next steps" not in texts(copy.raw)["plain"] and "html" not in texts(copy.raw)


# -- the redirect ---------------------------------------------------------------------


def test_a_click_counts_once_per_click_and_lands_on_the_steps_url(world: World) -> None:
    open_with_steps(world)
    petition, shift = step_links(world, world.inbox("ann0@people.example")[0].raw)

    first = click(world, petition)
    assert first.status_code == 302 and first.headers["Location"] == TARGETS["petition"]
    assert today_clicks(world) == {chat_id(world): {"petition": 1}}
    assert click(world, petition).headers["Location"] == TARGETS["petition"]
    assert click(world, shift).headers["Location"] == TARGETS["next-shift"]
    assert today_clicks(world) == {chat_id(world): {"petition": 2, "next-shift": 1}}

    # Link scanners' HEAD prefetch answers the same and counts nothing.
    scanned = click(world, petition, "HEAD")
    assert scanned.status_code == 302 and scanned.headers["Location"] == TARGETS["petition"]
    assert today_clicks(world) == {chat_id(world): {"petition": 2, "next-shift": 1}}


def test_the_target_follows_the_event_not_the_link(world: World) -> None:
    chat = open_with_steps(world)
    assert chat["state"] == "open"
    (petition, _) = step_links(world, world.inbox("ann0@people.example")[0].raw)
    moved = [{**STEPS[0], "url": "https://act.example.org/v2"}, STEPS[1]]
    world.put_event("e1", {**event_body(start_in_hours=10), "next_steps": moved})
    assert click(world, petition).headers["Location"] == "https://act.example.org/v2"


def _refused(response: object) -> None:
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert response.headers["Content-Type"].startswith("text/html")  # type: ignore[attr-defined]
    assert "Location" not in response.headers  # type: ignore[attr-defined]
    body = response.body  # type: ignore[attr-defined]
    assert "not valid" in (body.decode() if isinstance(body, bytes) else body)


def test_tampered_foreign_or_removed_links_are_403_and_count_nothing(world: World) -> None:
    open_with_steps(world)
    (petition, _) = step_links(world, world.inbox("ann0@people.example")[0].raw)
    body, sig = petition.rsplit(".", 1)
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    _refused(click(world, f"{body}.{flipped}"))
    _refused(click(world, petition[:-5]))
    _refused(click(world, world.settings.public_url + "/n/not-a-token"))
    # Genuine signatures, but another deployment, or a step the event never had.
    s = world.settings
    foreign = sign_step(s.secret, deployment="prod:other.example", chat_id=chat_id(world), step_id="petition")
    _refused(click(world, f"{s.public_url}/n/{foreign}"))
    unknown = sign_step(s.secret, deployment=s.deployment, chat_id=chat_id(world), step_id="phishing")
    _refused(click(world, f"{s.public_url}/n/{unknown}"))
    # A step the organizers removed: its old links stop working.
    world.put_event("e1", {**event_body(start_in_hours=10), "next_steps": [STEPS[1]]})
    _refused(click(world, petition))
    assert today_clicks(world) == {}


def test_attribution_binds_each_readers_link_and_the_footer_says_so(world: World) -> None:
    with world.settings_override(MUSTER_ATTRIBUTE_CLICKS="true"):
        open_with_steps(world)
        per_reader = {c.to: step_links(world, c.raw) for c in world.sent()}
        assert len({tuple(v) for v in per_reader.values()}) == 3  # one set of links per reader
        for copy in world.sent():
            assert nextsteps.ATTRIBUTION_NOTE in texts(copy.raw)["plain"]
        token = per_reader["ann1@people.example"][0].rsplit("/", 1)[1]
        resolved = nextsteps.resolve(token)
        assert resolved is not None and resolved.reader == "s-s1" and resolved.step.id == "petition"
        assert click(world, per_reader["ann1@people.example"][0]).status_code == 302
        assert today_clicks(world) == {chat_id(world): {"petition": 1}}


def test_without_attribution_links_name_no_reader(world: World) -> None:
    open_with_steps(world)
    token = step_links(world, world.inbox("ann1@people.example")[0].raw)[0].rsplit("/", 1)[1]
    resolved = nextsteps.resolve(token)
    assert resolved is not None and resolved.reader is None
    assert b"s-s1" not in __import__("base64").urlsafe_b64decode(token.split(".")[0] + "==")


# -- clicks(): the KPI read, by Query ---------------------------------------------------------


def test_clicks_reads_a_date_range_and_one_event_by_query(world: World) -> None:
    world.put_event("e1", {**event_body(start_in_hours=10), "next_steps": STEPS})
    world.put_event("e2", {**event_body(start_in_hours=10), "next_steps": STEPS})
    chats = {}
    for event in ("e1", "e2"):
        cid = chat_id_for("acme", event, "t1", world.settings.secret)
        chats[event] = cid
    from chalicelib.models import Chat

    def at_day(day: int, event: str, step: str, times: int = 1) -> None:
        chat = Chat.get(f"CH#{chats[event]}", "META")
        resolved = nextsteps.Resolved(chat, nextsteps.Step(step, step, "https://x.example"), None)
        for _ in range(times):
            nextsteps.count_click(resolved, now=datetime(2030, 5, day, 12, 0).astimezone())

    at_day(1, "e1", "petition", 2)
    at_day(2, "e1", "petition")
    at_day(2, "e2", "next-shift", 3)
    at_day(5, "e1", "next-shift")
    # Another integration's clicks, and another kind of counter in the same partition.
    ClickCount("KPI#other", "D#2030-05-02#CH#zzzz#L#petition", clicks=9, event_id="e1").save()
    ClickCount("KPI#acme", "D#2030-05-02#CHATS", clicks=7, event_id="e1").save()

    e1, e2 = chats["e1"], chats["e2"]
    assert nextsteps.clicks("acme", date(2030, 5, 1), date(2030, 5, 5)) == {
        e1: {"petition": 3, "next-shift": 1},
        e2: {"next-shift": 3},
    }
    assert nextsteps.clicks("acme", date(2030, 5, 2), date(2030, 5, 2)) == {e1: {"petition": 1}, e2: {"next-shift": 3}}
    assert nextsteps.clicks("acme", date(2030, 5, 1), date(2030, 5, 5), "e2") == {e2: {"next-shift": 3}}
    assert nextsteps.clicks("acme", date(2030, 5, 3), date(2030, 5, 4)) == {}
    assert nextsteps.clicks("acme", date(2030, 5, 5), date(2030, 5, 1)) == {}


def test_clicks_never_scans(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("clicks() must not scan")

    monkeypatch.setattr(ClickCount, "scan", no_scan)
    assert nextsteps.clicks("acme", date(2030, 1, 1), date(2030, 12, 31)) == {}


# -- attendees' own links are never wrapped -----------------------------------------------------

URL = re.compile(rb"https?://[^\s<>\"')\]]+")


def _links(raw: bytes) -> list[bytes]:
    found: list[bytes] = []
    for text in texts(raw).values():
        found += [m.group(0) for m in URL.finditer(text.encode()) if b"@" not in m.group(0)]
    return found


@pytest.mark.parametrize("fixture", ["standard_replies-sparrow.eml", "standard_replies-outlook.eml"])
def test_an_attendees_own_links_are_relayed_byte_identical(world: World, fixture: str) -> None:
    chat = open_with_steps(world)
    raw = (CORPUS / fixture).read_bytes()
    head, sep, rest = raw.partition(b"\n\n")
    lines = [ln for ln in head.split(b"\n") if not ln.lower().startswith((b"from:", b"to:"))]
    raw = b"\n".join([b"From: Ann Zero <ann0@people.example>", f"To: {chat['address']}".encode(), *lines]) + sep + rest
    original = [u for u in _links(raw) if b"w3.org" not in u and b"schemas.microsoft" not in u]
    assert original, "the fixture must carry links"
    world.receive(raw, sender="ann0@people.example", to=[chat["address"]])
    world.drain()
    (copy,) = world.inbox("ann1@people.example")[-1:]
    relayed = _links(copy.raw)
    for link in original:
        assert link in relayed, link
    # Nothing the attendee wrote was turned into a next-step link.
    assert step_links(world, copy.raw) == [] and step_links(world, copy.raw, "html") == []
