"""Issue 9: how attendees follow a chat, through the public paths.

Daily digests (SES in -> fan-out defers digest readers -> the scheduled ``digest``
function -> SES out), exactly once however the job is triggered; the settings
page behind every footer link (GET shows, POST acts); leaving; the API.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib import clock
from chalicelib.models import Chat, DigestClaim, DigestEntry, MessageLog, Participant
from chalicelib.services.digest import next_digest_at
from tests.fixtures.emails.leakcheck import find_leaks
from tests.integration.test_relay import mail
from tests.integration.world import Sent, World, event_body, signup_body

ORGANIZER = "olive0@org.example"
TICK = {
    "version": "0",
    "id": "digest-tick",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "1",
    "time": "2030-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def addr(n: int) -> str:
    return f"ann{n}@people.example"


EVERYONE = [ORGANIZER, *(addr(n) for n in range(5))]


class Killed(BaseException):
    """The process dies here (not an Exception: nothing under test catches it)."""


def post(world: World, chat: dict[str, Any], frm: str, subject: str, **headers: str) -> None:
    body = f"{subject}: who can drive? Write to {ORGANIZER} or {addr(1)}."
    outcome = world.receive(mail(frm, chat["address"], subject, body, **headers), sender=frm, to=[chat["address"]])
    assert outcome == {"outcomes": ["relayed"]}, outcome
    world.drain()


def chat_id(chat: dict[str, Any]) -> str:
    return str(chat["address"]).split("@")[0].rsplit("-", 1)[-1]


def message_ids(chat: dict[str, Any]) -> list[str]:
    return [m.message_id for m in MessageLog.query(f"CH#{chat_id(chat)}", MessageLog.sk.startswith("M#"))]


def digests(world: World, to: str) -> list[Sent]:
    return [s for s in world.inbox(to) if "Daily digest" in str(s.message["Subject"])]


def embedded(copy: Sent) -> list[EmailMessage]:
    _, digest = copy.message.get_payload()  # type: ignore[misc]
    return [part.get_payload()[0] for part in digest.get_payload()]


def run_digest(world: World) -> dict[str, Any]:
    """What EventBridge does every 15 minutes."""
    return world.client.lambda_.invoke("digest", TICK).payload  # type: ignore[no-any-return]


def until_digest_time(world: World, timezone: str = "America/New_York") -> None:
    now = clock.now()
    due = next_digest_at(now, timezone, world.settings.digest_hour)
    world.advance((due - now).total_seconds() / 3600 + 0.05)


def link_of(copy: Sent, world: World) -> str:
    """The signed settings path from a copy's List-Unsubscribe header."""
    url = str(copy.message["List-Unsubscribe"]).strip().strip("<>")
    assert url.startswith(world.settings.public_url + "/mute/")
    return url.removeprefix(world.settings.public_url)


def person(world: World, chat: dict[str, Any], key: str) -> Participant:
    return Participant.get(f"CH#{chat_id(chat)}", f"P#{key}", consistent_read=True)


def claims_of(chat: dict[str, Any], key: str) -> list[DigestClaim]:
    return list(DigestClaim.query(f"DIG#{chat_id(chat)}#{key}", DigestClaim.sk.startswith("D#")))


def entries_of(chat: dict[str, Any], key: str) -> list[DigestEntry]:
    return list(DigestEntry.query(f"DIG#{chat_id(chat)}#{key}", DigestEntry.sk.startswith("M#")))


def set_delivery(world: World, signup: str, delivery: Any) -> Any:
    return world.call("PUT", f"/events/e1/signups/{signup}/delivery", {"delivery": delivery})


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    """An open chat: one organizer, five registered signups, kickoffs delivered."""
    opened = world.open_chat(["registered"] * 5)
    assert world.kickoffs == 6
    return opened


def defer(world: World, chat: dict[str, Any], key: str, ids: list[str]) -> None:
    """What fan-out does for a digest reader (kept apart from fan-out's choice)."""
    from chalicelib.services.digest import DigestService

    item = Chat.get(f"CH#{chat_id(chat)}", "META")
    for message_id in ids:
        DigestService(world.settings).defer(item, message_id, [person(world, chat, key)])


# -- digests through the whole path ------------------------------------------------------


def test_a_day_of_five_messages_gives_each_digest_reader_one_digest_and_no_single_copies(
    world: World, chat: dict
) -> None:
    for signup in ("s1", "s2"):
        assert set_delivery(world, signup, "digest").status_code == 200
    before = len(world.sent())
    post(world, chat, addr(0), "Carpool?")
    first = message_ids(chat)[0]
    post(world, chat, ORGANIZER, "Re: Carpool?", In_Reply_To=f"<{first}@{world.settings.relay_domain}>")
    post(world, chat, addr(3), "Parking")
    post(world, chat, addr(0), "Gloves")
    post(world, chat, addr(4), "Running late")

    copies = Counter(s.to for s in world.sent()[before:])
    assert copies == Counter({ORGANIZER: 4, addr(0): 3, addr(3): 4, addr(4): 4})  # none to ann1, ann2
    assert not digests(world, addr(1))

    until_digest_time(world)
    result = run_digest(world)
    assert (result["sent"], result["messages"]) == (2, 10)

    for reader in (addr(1), addr(2)):
        (digest,) = digests(world, reader)
        inner = embedded(digest)
        assert [m["Message-ID"] for m in inner] == [f"<{m}@{world.settings.relay_domain}>" for m in message_ids(chat)]
        subjects = [str(m["Subject"]) for m in inner]
        assert [s.rsplit("] ", 1)[1] for s in subjects] == ["Carpool?", "Carpool?", "Parking", "Gloves", "Running late"]
        assert subjects[1].startswith("Re: ")
        assert inner[1]["In-Reply-To"] == f"<{first}@{world.settings.relay_domain}>"
        listing = digest.message.get_payload()[0].get_content()  # type: ignore[index]
        assert "Ann0 A.: Carpool?" in listing and "Olive0 O. (organizer): Re: Carpool?" in listing
        assert find_leaks(digest.raw, EVERYONE) == []
        # The digest and every copy in it carry this reader's own settings link.
        link = link_of(digest, world)
        for m in inner:
            assert link in m.get_body(preferencelist=("plain",)).get_content().replace("\n", "")  # type: ignore[union-attr]

    # A duplicate trigger (EventBridge delivers at least once) sends nothing.
    assert run_digest(world)["sent"] == 0
    assert len(digests(world, addr(1))) == len(digests(world, addr(2))) == 1
    assert len(world.sent()) == before + 15 + 2

    # Replying to a message inside the digest answers that message (R10).
    (digest,) = digests(world, addr(1))
    parent = embedded(digest)[2]["Message-ID"]
    post(world, chat, addr(1), "Re: Parking", In_Reply_To=parent, References=parent)
    reply = [m for m in MessageLog.query(f"CH#{chat_id(chat)}", MessageLog.sk.startswith("M#"))][-1]
    assert reply.parent_id == message_ids(chat)[2]


def test_a_chat_above_the_threshold_defaults_to_digests_unless_someone_chose_each(world: World) -> None:
    with world.settings_override(MUSTER_DIGEST_ABOVE="3"):
        world.put_event("e1", event_body(start_in_hours=10))
        for n in range(5):
            world.put_signup("e1", f"s{n}", signup_body(n))
        world.drain()
        chat = world.chat("e1", "t1")
        assert set_delivery(world, "s3", "each").status_code == 200
        before = len(world.sent())
        post(world, chat, addr(0), "Big chat")  # 5 recipients > 3
        assert [s.to for s in world.sent()[before:]] == [addr(3)]

        until_digest_time(world)
        assert run_digest(world)["sent"] == 4
        assert {s.to for s in world.sent()[before + 1 :]} == {ORGANIZER, addr(1), addr(2), addr(4)}


def test_an_events_default_delivery_reaches_its_chats(world: World) -> None:
    body = event_body(start_in_hours=10, default_delivery="digest")
    assert world.put_event("e1", body).status_code == 201
    view = json.loads(world.call("GET", "/events/e1").body)
    assert view["chat"]["default_delivery"] == "digest"
    assert view["timeslots"][0]["chat"]["state"] == "open"
    for n in range(2):
        world.put_signup("e1", f"s{n}", signup_body(n))
    world.drain()
    chat = world.chat("e1", "t1")
    assert Chat.get(f"CH#{chat_id(chat)}", "META").default_delivery == "digest"
    before = len(world.sent())
    post(world, chat, addr(0), "Hello")
    assert world.sent()[before:] == []  # everyone else reads the digest

    body["chat"]["default_delivery"] = None  # the event goes back to the deployment's rule
    assert world.put_event("e1", body).status_code == 200
    assert Chat.get(f"CH#{chat_id(chat)}", "META").default_delivery is None


# -- exactly once, nothing lost (independent of fan-out's choice) ------------------------


def test_a_duplicate_or_concurrent_digest_trigger_sends_nothing_twice(world: World, chat: dict) -> None:
    from chalicelib.adapters.mail import Mailer

    for n in range(3):
        post(world, chat, addr(0), f"Note {n}")
    ids = message_ids(chat)
    defer(world, chat, "s-s1", ids)
    defer(world, chat, "s-s1", ids)  # a retried fan-out owes nothing twice
    until_digest_time(world)

    real = Mailer.send_raw
    nested: list[dict[str, Any]] = []

    def send_while_another_run_starts(self: Mailer, **kwargs: Any) -> str:
        if not nested:  # a concurrent invocation starts while this digest is in flight
            nested.append(run_digest(world))
        return real(self, **kwargs)

    world.patch("chalicelib.adapters.mail.Mailer.send_raw", send_while_another_run_starts)
    assert run_digest(world)["sent"] == 1
    assert nested[0]["sent"] == 0 and nested[0]["busy"] == 1
    assert run_digest(world)["sent"] == 0

    (digest,) = digests(world, addr(1))
    assert len(embedded(digest)) == 3
    claims = claims_of(chat, "s-s1")
    assert [(c.state, len(c.messages)) for c in claims] == [("sent", 3)]

    # A fan-out retried after the digest went out owes nothing again, not even tomorrow.
    defer(world, chat, "s-s1", ids[:1])
    world.advance(24)
    assert run_digest(world)["sent"] == 0
    assert len(digests(world, addr(1))) == 1


def test_a_run_that_dies_before_sending_is_taken_over_after_its_lease(world: World, chat: dict) -> None:
    from chalicelib.adapters.mail import Mailer

    post(world, chat, addr(0), "Only one")
    defer(world, chat, "s-s1", message_ids(chat))
    until_digest_time(world)

    real = Mailer.send_raw
    killed: list[int] = []

    def die_once(self: Mailer, **kwargs: Any) -> str:
        if not killed:
            killed.append(1)
            raise Killed
        return real(self, **kwargs)

    world.patch("chalicelib.adapters.mail.Mailer.send_raw", die_once)
    with pytest.raises(Killed):
        run_digest(world)
    again = run_digest(world)  # within the lease the dead run's claim holds
    assert (again["sent"], again["busy"]) == (0, 1)
    assert not digests(world, addr(1))

    world.advance(0.2)  # the lease (10 minutes) lapses
    taken = run_digest(world)
    assert taken["sent"] == 1, taken
    assert run_digest(world)["sent"] == 0
    assert len(digests(world, addr(1))) == 1


def test_a_run_that_dies_after_sending_but_before_marking_is_finished_without_a_resend(
    world: World, chat: dict
) -> None:
    from chalicelib.services.digest import DigestService

    post(world, chat, addr(0), "Sent once")
    defer(world, chat, "s-s1", message_ids(chat))
    until_digest_time(world)

    real = DigestService._mark
    killed: list[int] = []

    def die_once(pk: str, message_ids: Any, tag: str) -> None:
        if not killed:
            killed.append(1)
            raise Killed
        real(pk, message_ids, tag)

    world.patch("chalicelib.services.digest.DigestService._mark", staticmethod(die_once))
    with pytest.raises(Killed):
        run_digest(world)  # the claim already records the send
    assert len(digests(world, addr(1))) == 1
    assert [e.digest for e in entries_of(chat, "s-s1")] == [None]

    again = run_digest(world)  # finds the finished claim: only the marking is left
    assert again["sent"] == 0, again
    assert len(digests(world, addr(1))) == 1
    assert [e.digest for e in entries_of(chat, "s-s1")] != [None]
    world.advance(24)
    assert run_digest(world)["sent"] == 0
    assert len(digests(world, addr(1))) == 1


class _FailingSes:
    def __init__(self, real: Any, code: str, message: str) -> None:
        self.real, self.code, self.message, self.on = real, code, message, True

    def send_email(self, **kwargs: Any) -> Any:
        if self.on:
            raise ClientError({"Error": {"Code": self.code, "Message": self.message}}, "SendEmail")
        return self.real.send_email(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _failing_ses(world: World, code: str, message: str) -> _FailingSes:
    from chalicelib.adapters import aws

    fake = _FailingSes(aws.client("sesv2"), code, message)
    world.patch("chalicelib.adapters.mail.Mailer.client", property(lambda self: fake))
    return fake


def test_a_deployment_wide_ses_error_parks_digests_until_it_is_fixed(world: World, chat: dict) -> None:
    from chalicelib.services.digest import DigestsParked

    post(world, chat, addr(0), "Held back")
    for key in ("s-s1", "s-s2"):
        defer(world, chat, key, message_ids(chat))
    until_digest_time(world)
    fake = _failing_ses(world, "AccessDeniedException", "User is not authorized to perform ses:SendEmail")

    with pytest.raises(DigestsParked):
        run_digest(world)  # the invocation fails (alarm); Lambda and the next tick retry
    assert not digests(world, addr(1)) and not digests(world, addr(2))
    assert [e.digest for key in ("s-s1", "s-s2") for e in entries_of(chat, key)] == [None, None]

    fake.on = False
    assert run_digest(world)["sent"] == 2
    assert len(digests(world, addr(1))) == len(digests(world, addr(2))) == 1


def test_a_refusal_of_one_reader_is_recorded_and_not_retried(world: World, chat: dict) -> None:
    post(world, chat, addr(0), "Refused")
    defer(world, chat, "s-s1", message_ids(chat))
    until_digest_time(world)
    fake = _failing_ses(world, "MessageRejected", "Address blacklisted.")

    assert run_digest(world)["failed"] == 1
    fake.on = False
    assert run_digest(world)["sent"] == 0
    (claim,) = claims_of(chat, "s-s1")
    assert (claim.state, claim.reason) == ("failed", "MessageRejected")


def test_a_reader_who_leaves_before_the_digest_gets_none(world: World, chat: dict) -> None:
    post(world, chat, addr(0), "Bye")
    (copy,) = [s for s in world.inbox(addr(1)) if "Bye" in str(s.message["Subject"])]
    defer(world, chat, "s-s1", message_ids(chat))
    assert world.client.http.post(link_of(copy, world), body=b"action=leave", headers=URLENCODED).status_code == 200
    until_digest_time(world)

    result = run_digest(world)
    assert (result["sent"], result["skipped"]) == (0, 1)
    assert run_digest(world)["due"] == 0  # off the index


# -- the settings page ------------------------------------------------------------------


def test_the_settings_page_shows_the_state_get_changes_nothing_and_post_acts(world: World, chat: dict) -> None:
    (kickoff,) = world.inbox(addr(1))
    path = link_of(kickoff, world)

    def state() -> tuple[bool, bool, str | None]:
        p = person(world, chat, "s-s1")
        return p.muted, p.left, p.delivery

    def act(body: bytes, content_type: str = URLENCODED["Content-Type"]) -> Any:
        return world.client.http.post(path, body=body, headers={"Content-Type": content_type})

    page = world.client.http.get(path)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert '<html lang="en">' in html and "<script" not in html
    assert "You get every message as it is sent." in html
    assert html.count('<form method="post">') == 3  # daily digest, mute, leave
    assert 'name="action" value="digest"' in html and 'name="action" value="leave"' in html
    assert 'name="List-Unsubscribe" value="One-Click"' in html
    assert state() == (False, False, None)  # a GET (a link scanner) changes nothing

    response = act(b"action=digest")
    assert response.status_code == 200 and "You get a daily digest" in response.body.decode()
    assert state() == (False, False, "digest")
    signup = json.loads(world.call("GET", "/events/e1/signups/s1").body)
    assert (signup["delivery"], signup["muted"], signup["left"]) == ("digest", False, False)

    boundary = "----form7MA4YWxk"
    multipart = f'--{boundary}\r\nContent-Disposition: form-data; name="action"\r\n\r\neach\r\n--{boundary}--\r\n'
    assert act(multipart.encode(), f"multipart/form-data; boundary={boundary}").status_code == 200
    assert state() == (False, False, "each")

    assert b"Unmute this chat" in act(b"List-Unsubscribe=One-Click").body  # the one-click mute, as before
    assert state() == (True, False, "each")
    assert act(b"action=unmute").status_code == 200
    assert state() == (False, False, "each")

    left = act(b"action=leave").body.decode()
    assert state() == (True, True, "each")
    assert "You left this chat" in left and "Rejoin this chat" in left and 'value="leave"' not in left
    assert "Rejoin this chat" in world.client.http.get(path).body.decode()
    assert act(b"action=unmute").status_code == 200  # rejoin
    assert state() == (False, False, "each")

    for bad in (b"action=explode", b"action=leave&action=each", b"", b"List-Unsubscribe=Nope&action=leave"):
        assert act(bad).status_code == 400
    assert state() == (False, False, "each")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_tampered_or_expired_link_is_refused_and_changes_nothing(world: World, chat: dict, method: str) -> None:
    from chalicelib.relay.tokens import sign_token

    (kickoff,) = world.inbox(addr(1))
    prefix, token = link_of(kickoff, world).rsplit("/", 1)
    expired = sign_token(world.settings.secret, chat_id=chat_id(chat), participant_key="s-s1", expires_at=1)
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), token[:20], expired):
        if method == "GET":
            response = world.client.http.get(f"{prefix}/{bad}")
        else:
            response = world.client.http.post(f"{prefix}/{bad}", body=b"action=leave", headers=URLENCODED)
        assert response.status_code == 403
    p = person(world, chat, "s-s1")
    assert (p.muted, p.left, p.delivery) == (False, False, None)


def test_leaving_survives_a_new_signup_put_and_blocks_the_late_kickoff(world: World, chat: dict) -> None:
    (kickoff,) = world.inbox(addr(1))
    path = link_of(kickoff, world)
    assert world.client.http.post(path, body=b"action=digest", headers=URLENCODED).status_code == 200
    assert world.client.http.post(path, body=b"action=leave", headers=URLENCODED).status_code == 200

    # The integration re-sends the signup, then cancels and re-registers it.
    for status in ("registered", "cancelled", "registered"):
        assert world.put_signup("e1", "s1", signup_body(1, status)).status_code == 200
    assert world.drain() == 0  # no late kickoff queued
    assert len(world.inbox(addr(1))) == 1
    p = person(world, chat, "s-s1")
    assert (p.muted, p.left, p.delivery) == (True, True, "digest")
    (row,) = [r for r in world.chat("e1", "t1")["participants"] if r["id"] == "s1"]
    assert (row["muted"], row["left"], row["delivery"]) == (True, True, "digest")

    before = len(world.sent())
    post(world, chat, addr(0), "Without ann1")
    assert addr(1) not in [s.to for s in world.sent()[before:]]

    # Rejoining (the same link) brings mail back; a new signup after that may kick off again.
    assert world.client.http.post(path, body=b"action=unmute", headers=URLENCODED).status_code == 200
    assert world.client.http.post(path, body=b"action=each", headers=URLENCODED).status_code == 200
    post(world, chat, addr(0), "With ann1")
    assert [s.to for s in world.sent()[before:] if s.to == addr(1)] == [addr(1)]


# -- the API ----------------------------------------------------------------------------


def test_the_api_sets_one_signups_delivery(world: World, chat: dict) -> None:
    response = set_delivery(world, "s2", "digest")
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    assert (body["id"], body["delivery"], body["muted"], body["left"]) == ("s2", "digest", False, False)
    assert "email" in body["person"]  # the integration's own record, as GET returns it
    assert json.loads(world.call("GET", "/events/e1/signups/s2").body)["delivery"] == "digest"
    assert person(world, chat, "s-s2").delivery == "digest"

    assert json.loads(set_delivery(world, "s2", None).body)["delivery"] is None  # back to the chat's default
    assert person(world, chat, "s-s2").delivery is None
    # Re-sending the signup keeps the choice.
    set_delivery(world, "s2", "each")
    world.put_signup("e1", "s2", signup_body(2))
    assert person(world, chat, "s-s2").delivery == "each"


DELIVERY = "/events/e1/signups/s1/delivery"


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code", "field"),
    [
        (DELIVERY, {"delivery": "weekly"}, {}, 422, "validation_error", "delivery"),
        (DELIVERY, {"delivery": 1}, {}, 422, "validation_error", "delivery"),
        (DELIVERY, {}, {}, 422, "missing_field", "delivery"),
        (DELIVERY, {"delivery": "each", "mode": "x"}, {}, 422, "unknown_field", "mode"),
        (DELIVERY, "{nope", {}, 400, "invalid_json", None),
        (DELIVERY, {"delivery": "each"}, {"Content-Type": "text/plain"}, 415, "unsupported_media_type", "Content-Type"),
        ("/events/e1/signups/nobody/delivery", {"delivery": "each"}, {}, 404, "not_found", "signup_id"),
        ("/events/nope/signups/s1/delivery", {"delivery": "each"}, {}, 404, "not_found", "event_id"),
        ("/events/e1/signups/bad%20id!/delivery", {"delivery": "each"}, {}, 400, "invalid_id", "signup_id"),
    ],
    ids=[
        "unknown-mode",
        "not-a-string",
        "missing",
        "unknown-field",
        "bad-json",
        "not-json",
        "no-signup",
        "no-event",
        "bad-id",
    ],
)
def test_the_delivery_api_rejects_bad_requests_with_r13s_shape(
    world: World, path: str, body: Any, headers: dict[str, str], status: int, code: str, field: str | None
) -> None:
    world.put_event("e1", event_body(start_in_hours=50))
    world.put_signup("e1", "s1", signup_body(1))

    response = world.call("PUT", path, body, headers=headers)

    assert response.status_code == status, response.body
    payload = json.loads(response.body)
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message", "field"}
    assert (payload["error"]["code"], payload["error"]["field"]) == (code, field) and payload["error"]["message"]
    assert Participant.get(f"CH#{chat_id(world.chat('e1', 't1'))}", "P#s-s1").delivery is None
    assert world.call("PUT", DELIVERY, {"delivery": "each"}, key=None).status_code == 401


def test_a_late_signup_after_a_digest_reader_left_an_earlier_shift_still_gets_its_kickoff(world: World) -> None:
    """Leaving is per chat: the same person in another shift is not affected."""
    body = event_body(start_in_hours=10)
    body["timeslots"].append({**body["timeslots"][0], "id": "t2"})
    world.put_event("e1", body)
    world.put_signup("e1", "s1", signup_body(1))
    world.drain()
    (kickoff,) = world.inbox(addr(1))
    world.client.http.post(link_of(kickoff, world), body=b"action=leave", headers=URLENCODED)
    world.put_signup("e1", "s9", {**signup_body(1), "timeslot_id": "t2"})
    world.drain()
    assert len(world.inbox(addr(1))) == 2


def test_digest_entries_expire_and_carry_no_addresses(world: World, chat: dict) -> None:
    post(world, chat, addr(0), "Private")
    defer(world, chat, "s-s1", message_ids(chat))
    (entry,) = entries_of(chat, "s-s1")
    assert entry.expires is not None and entry.expires - clock.now() > timedelta(days=29)
    raw = json.dumps(entry.serialize())
    assert all(a not in raw for a in EVERYONE)
