"""Issue 10 (R15): organizers steward their chats from their inbox and the API.

Everything goes through the public doors: mail in through the SES receipt
event, copies out of moto's SES, control links taken from the copies and
followed through the Chalice test client (GET and HEAD confirm, POST acts),
and the integration API.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import urlsplit

import pytest

from chalicelib.models import ActionRecord, Block, Chat, HeldMessage, MessageLog, Participant
from chalicelib.relay.controltokens import read_control, sign_control
from chalicelib.relay.tokens import sign_token
from chalicelib.services.roster import chat_id_from_local
from chalicelib.settings import get_settings
from tests.integration.test_relay import mail
from tests.integration.world import Sent, World, event_body, signup_body

ORG = "olive0@org.example"
TICK = {
    "version": "0",
    "id": "tick",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}
URL = re.compile(r"https?://[^\s\"'<>]+/c/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def addr(n: int) -> str:
    return f"ann{n}@people.example"


def text_of(sent: Sent) -> str:
    message = BytesParser(policy=policy.default).parsebytes(sent.raw)
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


def chat_id_of(chat: dict[str, Any]) -> str:
    return chat_id_from_local(chat["address"].split("@")[0])


def control_links(sent: Sent) -> dict[str, str]:
    """action -> path of every control link in a copy (text part)."""
    settings = get_settings()
    out: dict[str, str] = {}
    for url in URL.findall(text_of(sent)):
        token = url.rsplit("/", 1)[1]
        claims = read_control(settings.secret, token, deployment=settings.deployment, now=0)
        assert claims is not None, url
        out[claims.action] = urlsplit(url).path
    return out


def post(world: World, chat: dict[str, Any], n: int, subject: str = "Carpool?", body: str = "Who drives?") -> Any:
    out = world.receive(mail(addr(n), chat["address"], subject, body), sender=addr(n), to=[chat["address"]])
    world.drain()
    return out


def post_as_organizer(world: World, chat: dict[str, Any], subject: str) -> Any:
    out = world.receive(mail(ORG, chat["address"], subject), sender=ORG, to=[chat["address"]])
    world.drain()
    return out


def copies(world: World, subject: str) -> list[Sent]:
    return [s for s in world.sent() if subject in str(s.message["Subject"])]


def click(world: World, path: str, method: str = "POST", form: bytes = b"") -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else {}
    return world.client.http.request(method, path, headers=headers, body=form)


def state(world: World, chat_view: dict[str, Any]) -> dict[str, Any]:
    """Everything a control could change, to compare before and after."""
    chat = Chat.get(f"CH#{chat_id_of(chat_view)}", "META", consistent_read=True)
    people = {
        p.participant_key: (p.removed, p.blocked, p.held, p.muted)
        for p in Participant.query(chat.pk, Participant.sk.startswith("P#"))
    }
    return {
        "chat": (chat.state, chat.closed_reason, chat.moderation_hold),
        "people": people,
        "actions": len(list(ActionRecord.scan(ActionRecord.pk.startswith("ACT#")))),
        "blocks": len(list(Block.scan(Block.pk.startswith("BLK#")))),
        "held": [(h.sk, h.state) for h in HeldMessage.scan(HeldMessage.sk.startswith("HELD#"))],
        "sent": len(world.sent()),
    }


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    return world.open_chat(["registered"] * 4)


# -- controls in copies --------------------------------------------------------


def test_organizer_copies_carry_controls_and_attendee_copies_a_report_link(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Hello all")
    (org_copy,) = [s for s in copies(world, "Hello all") if s.to == ORG]
    attendee_copies = [s for s in copies(world, "Hello all") if s.to != ORG]

    assert set(control_links(org_copy)) == {"remove", "block", "private", "hold", "close"}
    text = text_of(org_copy)
    assert "Remove Ann0 A. from this chat" in text and "Organizer controls" in text
    assert len(attendee_copies) == 3
    for copy in attendee_copies:
        assert set(control_links(copy)) == {"report"}
        assert "Organizer controls" not in text_of(copy)
    # each reader's links are their own
    reports = {control_links(c)["report"] for c in attendee_copies}
    assert len(reports) == 3
    # the HTML footer carries the controls too
    html_org = BytesParser(policy=policy.default).parsebytes(org_copy.raw)
    assert html_org.get_body(preferencelist=("plain",)) is not None


def test_an_organizers_own_message_offers_no_remove_or_block_of_an_organizer(world: World) -> None:
    chat = world.open_chat(["registered"] * 2, organizers=2)
    post_as_organizer(world, chat, "Plan")
    (other_org,) = [s for s in copies(world, "Plan") if s.to == "olive1@org.example"]
    assert set(control_links(other_org)) == {"hold", "close"}


ANY_LINK = re.compile(r"https?://[^\s\"'<>]+")


def test_a_link_scanner_following_every_link_changes_nothing(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Scan me")
    scanned = copies(world, "Scan me")
    links = [p for s in scanned for p in control_links(s).values()]
    assert len(links) == 5 + 3
    # what a scanner sees: every link in every part of every copy, the mute links too
    every = {
        urlsplit(u).path
        for s in scanned
        for part in BytesParser(policy=policy.default).parsebytes(s.raw).walk()
        if part.get_content_maintype() == "text"
        for u in ANY_LINK.findall(str(part.get_content()))
        if u.startswith(world.settings.public_url)
    }
    assert set(links) <= every and any(p.startswith("/mute/") for p in every)
    before = state(world, chat)
    for path in sorted(every):
        assert click(world, path, "HEAD").status_code == 200
        page = click(world, path, "GET")
        assert page.status_code == 200
        assert b'<form method="post">' in page.body and b"<script" not in page.body
    assert state(world, chat) == before


# -- tokens ------------------------------------------------------------------------


def _forge(world: World, chat_id: str, **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "deployment": world.settings.deployment,
        "action": "close",
        "chat_id": chat_id,
        "actor": "o-org0",
        "target": "-",
        "expires_at": 4_000_000_000,
    }
    secret = overrides.pop("secret", world.settings.secret)
    fields.update(overrides)
    return "/c/" + sign_control(secret, **fields)


def test_bad_tokens_are_refused_and_change_nothing(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Token test")
    org_links = control_links(next(s for s in copies(world, "Token test") if s.to == ORG))
    chat_id = chat_id_of(chat)
    good = org_links["close"]
    token = good.rsplit("/", 1)[1]
    body, sig = token.split(".")
    # a character in the middle: the last one may only carry base64's padding bits
    flipped = body[:5] + ("A" if body[5] != "A" else "B") + body[6:]
    mute = sign_token(
        world.settings.secret, chat_id=chat_id, participant_key="o-org0", purpose="mute", expires_at=4_000_000_000
    )
    cases = {
        "tampered payload": f"/c/{flipped}.{sig}",
        "tampered signature": f"/c/{body}.{sig[:-2]}xx",
        "no signature": f"/c/{body}",
        "expired": _forge(world, chat_id, expires_at=1_000),
        "another deployment": _forge(world, chat_id, deployment="prod:chat.example.org"),
        "another secret": _forge(world, chat_id, secret=b"another-deployment-secret-of-32-bytes!"),
        "another chat": _forge(world, "0000000000000000"),
        "an actor who is not an organizer": _forge(world, chat_id, actor="s-s1"),
        "a mute token": f"/c/{mute}",
        "garbage": "/c/%00%ff.._",
        "too long": "/c/" + "A" * 700 + ".B",
    }
    before = state(world, chat)
    for name, path in cases.items():
        for method in ("GET", "POST", "HEAD"):
            response = click(world, path, method)
            assert response.status_code in (403, 404), (name, method, response.status_code)
    assert state(world, chat) == before
    # a control token does not open the mute page either
    assert click(world, "/mute/" + token, "POST", b"List-Unsubscribe=One-Click").status_code == 403
    assert state(world, chat) == before


def test_a_genuine_token_acts_once_and_again_changes_nothing(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Close me")
    close = control_links(next(s for s in copies(world, "Close me") if s.to == ORG))["close"]
    first = click(world, close)
    assert first.status_code == 200 and b"The chat is closed" in first.body
    assert world.chat("e1", "t1")["state"] == "closed"
    again = click(world, close)
    assert again.status_code == 200 and b"already closed" in again.body
    actions = [a.action for a in ActionRecord.scan(ActionRecord.pk.startswith("ACT#"))]
    assert actions == ["close"]
    # the result page offers the way back: a reopen form, signed for the same organizer
    reopen = re.search(rb'<form method="post" action="([^"]+)"><button type="submit">Reopen the chat', first.body)
    assert reopen, first.body
    reopened = click(world, urlsplit(reopen.group(1).decode()).path)
    assert reopened.status_code == 200 and b"open again" in reopened.body
    assert world.chat("e1", "t1")["state"] == "open"


# -- remove and block ----------------------------------------------------------------


def test_removed_author_is_refused_politely_once_a_day_and_gets_nothing(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Rude")
    remove = control_links(next(s for s in copies(world, "Rude") if s.to == ORG))["remove"]
    assert b"Remove Ann0 A.?" in click(world, remove, "GET").body
    result = click(world, remove)
    assert result.status_code == 200 and b"removed from this chat" in result.body

    sent_before = len(world.sent())
    assert post(world, chat, 0, "Again") == {"outcomes": ["sender_removed"]}
    assert post(world, chat, 0, "And again") == {"outcomes": ["sender_removed"]}
    notices = world.inbox(addr(0))[-1:]
    assert len(world.sent()) == sent_before + 1  # one notice, nothing relayed
    assert "was not shared" in str(notices[0].message["Subject"])
    assert "removed you" in text_of(notices[0])

    post(world, chat, 1, "Still here")
    assert {s.to for s in copies(world, "Still here")} == {ORG, addr(2), addr(3)}  # not ann0

    # the event platform re-sending the signup does not bring them back
    assert world.put_signup("e1", "s0", signup_body(0, "confirmed")).status_code == 200
    post(world, chat, 1, "After resync")
    assert addr(0) not in {s.to for s in copies(world, "After resync")}

    # the API restores
    restored = world.call("DELETE", "/events/e1/signups/s0/removal")
    assert restored.status_code == 200 and json.loads(restored.body)["changed"] is True
    post(world, chat, 1, "Welcome back")
    assert addr(0) in {s.to for s in copies(world, "Welcome back")}


def test_block_holds_across_every_chat_and_new_signups_until_the_api_unblocks(
    world: World, chat: dict[str, Any]
) -> None:
    # ann0 is also in a second event's chat
    world.put_event("e2", event_body(start_in_hours=10))
    world.put_signup("e2", "x0", signup_body(0))
    world.put_signup("e2", "x1", signup_body(1))
    world.drain()
    other = world.chat("e2", "t1")

    post(world, chat, 0, "Spam")
    block = control_links(next(s for s in copies(world, "Spam") if s.to == ORG))["block"]
    assert click(world, block).status_code == 200

    assert post(world, other, 0, "Elsewhere") == {"outcomes": ["sender_removed"]}
    post(world, other, 1, "Hi e2")
    assert addr(0) not in {s.to for s in copies(world, "Hi e2")}

    # a brand-new event and signup: born blocked
    world.put_event("e3", event_body(start_in_hours=10))
    world.put_signup("e3", "y0", signup_body(0))
    world.drain()
    third = world.chat("e3", "t1")
    assert not [s for s in world.inbox(addr(0)) if third["address"] in str(s.message["Reply-To"])]  # no kickoff
    assert post(world, third, 0, "New event") == {"outcomes": ["sender_removed"]}

    listed = json.loads(world.call("GET", "/blocks").body)["blocks"]
    assert len(listed) == 1 and listed[0]["signup_id"] == "s0" and "email" not in listed[0]
    assert "ann0" not in world.call("GET", "/blocks").body.decode()
    assert world.call("DELETE", f"/blocks/{listed[0]['block_id']}").status_code == 200
    assert post(world, third, 0, "Unblocked") == {"outcomes": ["relayed"]}


# -- moderation ----------------------------------------------------------------------


@pytest.fixture
def moderated(world: World) -> dict[str, Any]:
    world.put_event("e1", event_body(start_in_hours=10, organizers=2, moderation="all"))
    for n in range(3):
        world.put_signup("e1", f"s{n}", signup_body(n))
    world.drain()
    world.kickoffs = len(world.sent())
    return world.chat("e1", "t1")


def _held_notice(world: World, organizer: str = ORG) -> Sent:
    (notice,) = [s for s in world.inbox(organizer) if "Waiting for your approval" in str(s.message["Subject"])]
    return notice


def test_held_message_goes_to_organizers_only_then_approval_relays_it_once(
    world: World, moderated: dict[str, Any]
) -> None:
    assert post(world, moderated, 0, "Please hold") == {"outcomes": ["held"]}
    assert copies(world, "Please hold") == []  # nobody got the message itself
    notice = _held_notice(world)
    assert _held_notice(world, "olive1@org.example")
    text = text_of(notice)
    assert "Who drives?" in text and addr(0) not in notice.raw.decode("latin-1")
    links = control_links(notice)
    assert set(links) == {"approve", "reject", "remove", "block"}

    assert click(world, links["approve"], "GET").status_code == 200
    assert copies(world, "Please hold") == []  # GET did nothing
    first = click(world, links["approve"])
    assert first.status_code == 200 and b"shared with the chat" in first.body
    world.drain()
    second = click(world, links["approve"])
    assert second.status_code == 200 and b"already approved" in second.body
    world.drain()
    got = Counter(s.to for s in copies(world, "Please hold"))
    assert got == Counter({ORG: 1, "olive1@org.example": 1, addr(1): 1, addr(2): 1})
    log = next(m for m in MessageLog.scan(MessageLog.sk.startswith("M#")) if m.author_key == "s-s0")
    assert log.outcome == "relayed" and log.state == "done"


def test_concurrent_approvals_relay_once(world: World, moderated: dict[str, Any]) -> None:
    post(world, moderated, 0, "Race")
    approve_a = control_links(_held_notice(world))["approve"]
    approve_b = control_links(_held_notice(world, "olive1@org.example"))["approve"]
    results: list[int] = []

    def run(path: str) -> None:
        results.append(click(world, path).status_code)

    threads = [threading.Thread(target=run, args=(p,)) for p in (approve_a, approve_b, approve_a)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.drain()
    assert results and all(code == 200 for code in results)
    got = Counter(s.to for s in copies(world, "Race"))
    assert got == Counter({ORG: 1, "olive1@org.example": 1, addr(1): 1, addr(2): 1})


def test_reject_tells_the_author_once_and_records_why(world: World, moderated: dict[str, Any]) -> None:
    post(world, moderated, 0, "Nope")
    links = control_links(_held_notice(world))
    assert b"declined" in click(world, links["reject"]).body
    assert click(world, links["reject"]).status_code == 200
    assert click(world, links["approve"]).status_code == 409  # decided already
    world.drain()
    assert copies(world, "Nope") == []
    told = [s for s in world.inbox(addr(0)) if "not shared" in str(s.message["Subject"])]
    assert len(told) == 1 and "declined" in text_of(told[0]) and "Who drives?" not in text_of(told[0])
    log = next(m for m in MessageLog.scan(MessageLog.sk.startswith("M#")) if m.author_key == "s-s0")
    assert log.outcome == "moderation_rejected"


def test_an_undecided_message_expires_with_a_recorded_reason(world: World, moderated: dict[str, Any]) -> None:
    post(world, moderated, 0, "Forgotten")
    world.client.lambda_.invoke("sweeper", TICK)
    assert next(iter(HeldMessage.scan(HeldMessage.sk.startswith("HELD#")))).state == "held"  # not yet due
    world.advance(world.settings.hold_hours + 1)
    world.client.lambda_.invoke("sweeper", TICK)
    world.client.lambda_.invoke("sweeper", TICK)
    assert next(iter(HeldMessage.scan(HeldMessage.sk.startswith("HELD#")))).state == "expired"
    log = next(m for m in MessageLog.scan(MessageLog.sk.startswith("M#")) if m.author_key == "s-s0")
    assert log.outcome == "moderation_expired"
    told = [s for s in world.inbox(addr(0)) if "not shared" in str(s.message["Subject"])]
    assert len(told) == 1 and "Nobody approved it" in text_of(told[0])
    # the approve link expired with the hold
    assert click(world, control_links(_held_notice(world))["approve"]).status_code == 403
    assert world.call("POST", f"/events/e1/timeslots/t1/chat/held/{_held_id('expired')}/approve").status_code == 409


def test_first_post_moderation_holds_only_each_persons_first_message(world: World) -> None:
    world.put_event("e1", event_body(start_in_hours=10, moderation="first_post"))
    for n in range(2):
        world.put_signup("e1", f"s{n}", signup_body(n))
    world.drain()
    chat = world.chat("e1", "t1")
    assert post(world, chat, 0, "First ever") == {"outcomes": ["held"]}
    assert world.call("POST", f"/events/e1/timeslots/t1/chat/held/{_held_id()}/approve").status_code == 200
    world.drain()
    assert post(world, chat, 0, "Second") == {"outcomes": ["relayed"]}
    assert post(world, chat, 1, "Newcomer") == {"outcomes": ["held"]}
    assert post_as_organizer(world, chat, "Organizer speaks") == {"outcomes": ["relayed"]}


def _held_id(state: str = "held") -> str:
    return next(h.message_id for h in HeldMessage.scan(HeldMessage.sk.startswith("HELD#")) if h.state == state)


def test_hold_and_release_from_a_copy(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Before hold")
    hold = control_links(next(s for s in copies(world, "Before hold") if s.to == ORG))["hold"]
    assert click(world, hold).status_code == 200
    assert post(world, chat, 1, "During hold") == {"outcomes": ["held"]}
    (notice,) = [s for s in world.inbox(ORG) if "Waiting for your approval" in str(s.message["Subject"])]
    assert "holding this chat" in text_of(notice)
    released = world.call("PUT", "/events/e1/timeslots/t1/chat/hold", {"hold": False})
    assert released.status_code == 200 and json.loads(released.body)["changed"] is True
    assert post(world, chat, 1, "After release") == {"outcomes": ["relayed"]}


# -- reports -------------------------------------------------------------------------


def test_reports_notify_organizers_privately_and_hold_the_author_at_the_threshold(world: World) -> None:
    chat = world.open_chat(["registered"] * 5)
    post(world, chat, 0, "Offensive")
    reports = {s.to: control_links(s)["report"] for s in copies(world, "Offensive") if s.to != ORG}
    assert set(reports) == {addr(n) for n in range(1, 5)}

    page = click(world, reports[addr(1)], "GET")
    assert page.status_code == 200 and b'name="reason"' in page.body
    assert b"Thank you" in click(world, reports[addr(1)], "POST", b"reason=harassment&details=rude+words").body
    assert b"already reported" in click(world, reports[addr(1)], "POST", b"reason=spam").body
    notices = [s for s in world.inbox(ORG) if "was reported" in str(s.message["Subject"])]
    assert len(notices) == 1
    text = text_of(notices[0])
    assert "harassment: rude words" in text and "Who drives?" in text
    for n in range(1, 5):  # no reporter is named or addressed
        assert f"Ann{n}" not in text and addr(n) not in notices[0].raw.decode("latin-1")
    assert set(control_links(notices[0])) == {"remove", "block"}

    click(world, reports[addr(2)])
    assert post(world, chat, 0, "Not yet held") == {"outcomes": ["relayed"]}
    click(world, reports[addr(3)])  # the third distinct reporter
    assert post(world, chat, 0, "Now held") == {"outcomes": ["held"]}
    listed = json.loads(world.call("GET", "/events/e1/timeslots/t1/chat/reports").body)["reports"]
    assert listed == [
        {"message_id": listed[0]["message_id"], "author": "s0", "reports": 3, "reasons": ["harassment: rude words"]}
    ]
    assert "s1" not in json.dumps(listed) and "s2" not in json.dumps(listed)


def test_an_author_cannot_report_their_own_message(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Mine")
    post(world, chat, 1, "Reply")
    (own_copy,) = [s for s in copies(world, "Reply") if s.to == addr(0)]
    # ann0's link for ann1's message works; forge one for ann0's own message instead
    assert control_links(own_copy)["report"]
    mine = next(m for m in MessageLog.scan(MessageLog.sk.startswith("M#")) if m.author_key == "s-s0").message_id
    path = _forge(world, chat_id_of(chat), action="report", actor="s-s0", target=mine)
    assert b"your own message" in click(world, path).body


# -- the API -----------------------------------------------------------------------------


def test_api_actions_are_recorded_and_listed(world: World, chat: dict[str, Any]) -> None:
    assert world.call("POST", "/events/e1/timeslots/t1/chat/close").status_code == 200
    assert world.chat("e1", "t1")["state"] == "closed"
    reopened = world.call("POST", "/events/e1/timeslots/t1/chat/reopen")
    assert reopened.status_code == 200 and world.chat("e1", "t1")["state"] == "open"
    assert world.call("PUT", "/events/e1/signups/s1/removal").status_code == 200
    blocked = world.call("POST", "/blocks", {"email": addr(2)})
    assert blocked.status_code == 201
    assert world.call("POST", "/blocks", {"email": addr(2)}).status_code == 200
    actions = json.loads(world.call("GET", "/actions?event_id=e1").body)["actions"]
    assert [a["action"] for a in actions] == ["remove", "reopen", "close"]
    everything = json.loads(world.call("GET", "/actions").body)["actions"]
    assert {a["action"] for a in everything} == {"close", "reopen", "remove", "block"}
    assert all(a["actor"] == "api:acme" and a["via"] == "api" for a in everything)
    assert "people.example" not in world.call("GET", "/actions").body.decode()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("POST", "/events/nope/timeslots/t1/chat/close", None, 404, "not_found", "chat"),
        ("PUT", "/events/e1/timeslots/t1/chat/hold", {"hold": "yes"}, 422, "validation_error", "hold"),
        ("PUT", "/events/e1/timeslots/t1/chat/hold", {}, 422, "missing_field", "hold"),
        ("POST", "/events/e1/timeslots/t1/chat/held/abc123/approve", None, 404, "not_found", "message_id"),
        ("PUT", "/events/e1/signups/zzz/removal", None, 404, "not_found", "signup_id"),
        ("POST", "/blocks", {"event_id": "e1"}, 422, "validation_error", None),
        ("POST", "/blocks", {"email": "not-an-address"}, 422, "validation_error", "email"),
        ("DELETE", "/blocks/abcdef", None, 404, "not_found", "block_id"),
        ("GET", "/actions?event_id=%00", None, 400, "invalid_id", "event_id"),
    ],
)
def test_api_errors_keep_r13s_shape(
    world: World, chat: dict[str, Any], method: str, path: str, body: Any, status: int, code: str, field: str | None
) -> None:
    response = world.call(method, path, body)
    assert response.status_code == status, response.body
    error = json.loads(response.body)["error"]
    assert error["code"] == code and error["field"] == field


def test_another_integration_cannot_steward_this_chat(world: World, chat: dict[str, Any]) -> None:
    from chalicelib.services import keys

    other = keys.create_key("rival")
    assert world.call("POST", "/events/e1/timeslots/t1/chat/close", key=other).status_code == 404
    assert world.call("PUT", "/events/e1/signups/s0/removal", key=other).status_code == 404
    assert json.loads(world.call("GET", "/actions", key=other).body)["actions"] == []
    assert world.chat("e1", "t1")["state"] == "open"


# -- private replies from a copy ----------------------------------------------------


def test_reply_privately_from_a_copy_opens_a_pair_only_the_two_receive(world: World, chat: dict[str, Any]) -> None:
    post(world, chat, 0, "Can someone help me?")
    private = control_links(next(s for s in copies(world, "Can someone help me?") if s.to == ORG))["private"]
    assert b"Reply privately to Ann0 A.?" in click(world, private, "GET").body
    done = click(world, private)
    assert done.status_code == 200
    pair_address = re.search(rb"Write to ([\w.+-]+@[\w.-]+)", done.body).group(1).decode()  # type: ignore[union-attr]
    assert pair_address != chat["address"] and "ann0" not in pair_address
    world.drain()
    assert b"Write to" in click(world, private).body  # again: the same pair, no second intro
    world.drain()
    intros = [s for s in world.sent() if pair_address in str(s.message["Reply-To"])]
    assert sorted(s.to for s in intros) == sorted([ORG, addr(0)])

    out = world.receive(mail(addr(0), pair_address, "Just us", "Thanks for asking"), sender=addr(0), to=[pair_address])
    world.drain()
    assert out == {"outcomes": ["relayed"]}
    got = [s for s in world.sent() if "Just us" in str(s.message["Subject"])]
    assert [s.to for s in got] == [ORG]
    assert addr(0) not in got[0].raw.decode("latin-1")
    assert set(control_links(got[0])) == {"remove", "block", "hold", "close"}  # replying is already private
    actions = [a.action for a in ActionRecord.scan(ActionRecord.pk.startswith("ACT#"))]
    assert actions == ["private"]


def test_a_private_conversation_is_never_held_by_the_chats_moderation(world: World, moderated: dict[str, Any]) -> None:
    opened = world.call("POST", "/events/e1/timeslots/t1/chat/private", {"organizer_id": "org0", "signup_id": "s1"})
    assert opened.status_code == 201, opened.body
    pair = json.loads(opened.body)["relay_address"]
    world.drain()
    out = world.receive(mail(addr(1), pair, "Between us", "Can I come late?"), sender=addr(1), to=[pair])
    world.drain()
    assert out == {"outcomes": ["relayed"]}
    assert [s.to for s in world.sent() if "Between us" in str(s.message["Subject"])] == [ORG]
    assert post(world, moderated, 1, "In the group") == {"outcomes": ["held"]}  # the chat itself still is


# -- crashes and retries around each side effect ---------------------------------------


def test_a_crash_after_holding_then_the_lambda_retry_notifies_each_organizer_once(
    world: World, moderated: dict[str, Any]
) -> None:
    from tests.integration.faults import lapse_in_progress
    from tests.integration.test_exactly_once import Killed, fail_first

    fail_first(
        world, "chalicelib.services.moderation.Moderation.hold", partly=lambda real, *a, **k: real(*a, **k), crash=True
    )
    with pytest.raises(Killed):
        world.receive(mail(addr(0), moderated["address"], "Crashy"), sender=addr(0), to=[moderated["address"]])
    lapse_in_progress(world)
    assert world.retry() == {"outcomes": ["held"]}
    world.drain()
    notices = Counter(s.to for s in world.sent() if "Waiting for your approval" in str(s.message["Subject"]))
    assert notices == Counter({ORG: 1, "olive1@org.example": 1})
    assert len(list(HeldMessage.scan(HeldMessage.sk.startswith("HELD#")))) == 1


@pytest.mark.parametrize("done_before_crash", [False, True])
def test_an_approval_that_failed_midway_is_finished_by_the_next_click(
    world: World, moderated: dict[str, Any], done_before_crash: bool
) -> None:
    from tests.integration.test_exactly_once import fail_first

    post(world, moderated, 0, "Approve me")
    approve = control_links(_held_notice(world))["approve"]
    partly = (lambda real, *a, **k: real(*a, **k)) if done_before_crash else None
    fail_first(world, "chalicelib.services.relay.RelayService.relay_approved", partly=partly)
    assert click(world, approve).status_code == 503  # the state says approved; nothing or everything relayed
    world.drain()
    assert click(world, approve).status_code == 200
    world.drain()
    got = Counter(s.to for s in copies(world, "Approve me"))
    assert got == Counter({ORG: 1, "olive1@org.example": 1, addr(1): 1, addr(2): 1})


def test_a_report_that_failed_before_telling_the_organizers_is_finished_by_the_next_click(
    world: World, chat: dict[str, Any]
) -> None:
    from tests.integration.test_exactly_once import fail_first

    post(world, chat, 0, "Reported once")
    report = control_links(next(s for s in copies(world, "Reported once") if s.to == addr(1)))["report"]
    fail_first(world, "chalicelib.services.reports.Reports._notify_report")
    assert click(world, report, "POST", b"reason=spam").status_code == 503
    assert [s for s in world.inbox(ORG) if "was reported" in str(s.message["Subject"])] == []
    again = click(world, report, "POST", b"reason=other")
    assert again.status_code == 200 and b"already reported" in again.body
    notices = [s for s in world.inbox(ORG) if "was reported" in str(s.message["Subject"])]
    assert len(notices) == 1 and "Their reason: spam" in text_of(notices[0])  # the first report's reason
    assert click(world, report, "POST", b"reason=spam").status_code == 200
    assert len([s for s in world.inbox(ORG) if "was reported" in str(s.message["Subject"])]) == 1
    listed = json.loads(world.call("GET", "/events/e1/timeslots/t1/chat/reports").body)["reports"]
    assert [r["reports"] for r in listed] == [1]
