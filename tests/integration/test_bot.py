"""The keyword bot and the ride board (issue 12, item 5) in process: SES receipt ->
inbound_email -> (bot) -> SES, and the ride pairs' intros through SQS -> deliver,
against moto. What a user would notice: who gets which mail, what it says, what
is not relayed, what is recorded."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest

from chalicelib.models import MessageLog, PrivateThread, RideEntry
from tests.integration.world import Sent, World, event_body, signup_body

ORGANIZER = "olive0@org.example"
KEYWORDS = {
    "where": "Meet at the library steps, 5 Main St.",
    "PARKING": "Lot B behind the gym. Ask olive0@org.example.",
}


def addr(n: int) -> str:
    return f"ann{n}@people.example"


REAL = [ORGANIZER, *(addr(n) for n in range(5))]


def mail(frm: str, to: str, subject: str = "A word", body: str = "Can you bring the clipboards?") -> bytes:
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    msg["From"] = f"Someone <{frm}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=frm.split("@")[1])
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    """An open chat with keywords: organizer org0, signups s0-s3 active, s4 cancelled."""
    assert world.put_event("e1", {**event_body(start_in_hours=10), "keywords": KEYWORDS}).status_code in (200, 201)
    for n, status in enumerate(["registered", "confirmed", "attended", "registered", "cancelled"]):
        assert world.put_signup("e1", f"s{n}", signup_body(n, status)).status_code == 201
    world.drain()
    world.kickoffs = len(world.sent())
    return world.chat("e1", "t1")


def text_of(sent: Sent) -> str:
    return sent.message.get_body(("plain",)).get_content()  # type: ignore[union-attr,no-any-return]


def no_real_address(raw: bytes, *, but: str | None = None) -> None:
    lowered = raw.lower()
    for real in REAL:
        if real != but:
            assert real.encode() not in lowered, real


def outcomes(chat_id: str) -> list[str]:
    return [m.outcome for m in MessageLog.query(f"CH#{chat_id}", MessageLog.sk.startswith("M#"))]


def ask(world: World, chat: dict, n: int, subject: str, body: str = "", **kw: Any) -> Any:
    return world.receive(mail(addr(n), chat["address"], subject, body), sender=addr(n), to=[chat["address"]], **kw)


def chat_id(world: World) -> str:
    from chalicelib.services.chats import chat_id_for

    return chat_id_for("acme", "e1", "t1", world.settings.secret)


# -- keywords ---------------------------------------------------------------------


def test_event_keeps_its_keywords_upper_case(world: World, chat: dict) -> None:
    view = json.loads(world.call("GET", "/events/e1").body)
    assert view["keywords"] == {"WHERE": KEYWORDS["where"], "PARKING": KEYWORDS["PARKING"]}


@pytest.mark.parametrize(
    ("keywords", "fragment"),
    [
        ({"stop": "x"}, "reserved keyword: STOP"),
        ({"Ride": "x"}, "reserved keyword: RIDE"),
        ({"unsubscribe": "x"}, "reserved keyword: UNSUBSCRIBE"),
        ({"where": "x", "WHERE": "y"}, "each keyword once"),
        ({"W": "x"}, ""),
        ({"WHERE": ""}, ""),
        ({"WHERE": "x" * 321}, ""),
        ({f"K{i}": "x" for i in range(21)}, ""),
    ],
)
def test_bad_keywords_are_refused_in_r13_shape(world: World, keywords: dict, fragment: str) -> None:
    response = world.put_event("e1", {**event_body(), "keywords": keywords})
    assert response.status_code == 422, response.body
    error = json.loads(response.body)["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["field"].startswith("keywords")
    assert fragment in error["message"]


def test_keyword_is_answered_privately_once_and_not_relayed(world: World, chat: dict) -> None:
    raw = mail(addr(1), chat["address"], "Re: [Canvass Mon 10:00] where?", "sent from my phone")
    when = datetime.now(UTC)
    result = world.receive(raw, sender=addr(1), to=[chat["address"]], ses_message_id="ses-where-1", when=when)
    assert result == {"outcomes": ["bot_answered"]}
    world.drain()

    (answer,) = world.relayed()
    assert answer.to == addr(1)
    message = answer.message
    asked_id = (
        next(line for line in raw.decode().splitlines() if line.startswith("Message-ID:")).split(":", 1)[1].strip()
    )
    assert message["From"].addresses[0].addr_spec == chat["address"]
    assert message["From"].addresses[0].display_name == "Muster"
    assert message["In-Reply-To"] == asked_id and asked_id in message["References"]
    assert message["Subject"].startswith("Re: [Canvass") and message["Subject"].endswith("WHERE")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-replied"
    assert KEYWORDS["where"] in text_of(answer)
    assert "Only you received this answer" in text_of(answer)
    no_real_address(answer.raw, but=addr(1))
    assert addr(1).encode() not in answer.raw.lower()  # the envelope has it, the bytes do not

    # SES redelivers the message, and Lambda retries the invocation: nothing more.
    world.receive(raw, sender=addr(1), to=[chat["address"]], ses_message_id="ses-where-1", when=when)
    world.retry()
    world.drain()
    assert len(world.relayed()) == 1
    assert outcomes(chat_id(world)) == ["bot_answered"]


def test_keyword_on_the_first_body_line_and_answers_scrubbed(world: World, chat: dict) -> None:
    assert ask(world, chat, 2, "question", "\n\n  Parking \n\nthanks, Ann") == {"outcomes": ["bot_answered"]}
    world.drain()
    (answer,) = world.relayed()
    assert answer.to == addr(2)
    text = text_of(answer)
    assert "Lot B behind the gym. Ask Olive0 O. (organizer)." in text  # the organizer's address became their name
    no_real_address(answer.raw, but=addr(2))


def test_ordinary_messages_still_reach_the_chat(world: World, chat: dict) -> None:
    assert ask(world, chat, 0, "Where do we park?", "Ride home tonight, anyone?") == {"outcomes": ["relayed"]}
    assert ask(world, chat, 0, "Rides", "Who can drive from the station?") == {"outcomes": ["relayed"]}
    assert ask(world, chat, 0, "WHERE", "Is it the library or the gym?\nThe kickoff did not say.") == {
        "outcomes": ["relayed"]
    }
    world.drain()
    assert sorted(s.to for s in world.relayed()) == sorted([ORGANIZER, addr(1), addr(2), addr(3)] * 3)


def test_a_cancelled_signup_gets_no_answer(world: World, chat: dict) -> None:
    assert ask(world, chat, 4, "WHERE") == {"outcomes": ["sender_inactive"]}
    world.drain()
    assert all(KEYWORDS["where"] not in text_of(s) for s in world.relayed())


# -- the ride board ---------------------------------------------------------------


def test_rides_are_matched_and_each_pair_introduced_privately(world: World, chat: dict) -> None:
    cid = chat_id(world)
    assert ask(world, chat, 0, "RIDE OFFER 2 from Downtown") == {"outcomes": ["bot_answered"]}
    assert ask(world, chat, 1, "Re: ride need from  downtown!") == {"outcomes": ["bot_answered"]}
    assert ask(world, chat, 2, "hello", "RIDE NEED DOWNTOWN") == {"outcomes": ["bot_answered"]}
    assert ask(world, chat, 3, "RIDE NEED from Downtown") == {"outcomes": ["bot_answered"]}  # no seat left
    world.drain()
    sent = world.relayed()

    offer = RideEntry.get(f"CH#{cid}", "RIDE#s-s0")
    assert int(offer.seats_left) == 0 and offer.matched == {"s-s1", "s-s2"}
    assert RideEntry.get(f"CH#{cid}", "RIDE#s-s3").matched is None

    threads = list(PrivateThread.scan(PrivateThread.pk.startswith("PT#")))
    assert sorted((t.organizer_key, t.participant_key, t.about) for t in threads) == [
        ("s-s0", "s-s1", "ride"),
        ("s-s0", "s-s2", "ride"),
    ]
    pair = {t.participant_key: f"{t.relay_local}@{world.settings.relay_domain}" for t in threads}

    answers = {s.to: text_of(s) for s in sent if s.message["From"].addresses[0].addr_spec == chat["address"]}
    assert set(answers) == {addr(0), addr(1), addr(2), addr(3)}
    assert "2 seats from Downtown, 2 seats still free" in answers[addr(0)]
    assert "Matched: Ann0 A. (offers a ride)" in answers[addr(1)] and pair["s-s1"] in answers[addr(1)]
    assert "Matched: Ann0 A. (offers a ride)" in answers[addr(2)] and pair["s-s2"] in answers[addr(2)]
    assert "Nobody offers a ride from there yet" in answers[addr(3)]

    intros = [s for s in sent if s.message["From"].addresses[0].addr_spec in pair.values()]
    assert sorted((s.to, s.message["From"].addresses[0].addr_spec) for s in intros) == sorted(
        [(addr(0), pair["s-s1"]), (addr(1), pair["s-s1"]), (addr(0), pair["s-s2"]), (addr(2), pair["s-s2"])]
    )
    for intro in intros:
        assert intro.message["Subject"].startswith("[Ride: Canvass")
        assert "ride board matched you" in text_of(intro)
        no_real_address(intro.raw, but=intro.to)
    to_offerer = next(s for s in intros if s.to == addr(0) and s.message["From"].addresses[0].addr_spec == pair["s-s1"])
    assert "matched you with Ann1 A., who needs a ride from downtown" in text_of(to_offerer)
    for answer in sent:
        no_real_address(answer.raw, but=answer.to)
    # Nothing reached the chat: every command was answered privately.
    assert outcomes(cid) == ["bot_answered"] * 4

    # The pair's address works: Ann1 writes, only Ann0 gets it.
    before = len(world.sent())
    assert world.receive(mail(addr(1), pair["s-s1"]), sender=addr(1), to=[pair["s-s1"]]) == {"outcomes": ["relayed"]}
    world.drain()
    (copy,) = world.sent()[before:]
    assert copy.to == addr(0) and copy.message["From"].addresses[0].display_name == "Ann1 A."

    # The board lists what is open, no identities.
    assert ask(world, chat, 3, "rides") == {"outcomes": ["bot_answered"]}
    board = text_of(world.sent()[-1])
    assert "Needed: 1 from Downtown." in board and "Offered" not in board and "Ann" not in board


def test_asking_again_changes_nothing_and_cancel_withdraws(world: World, chat: dict) -> None:
    cid = chat_id(world)
    ask(world, chat, 0, "RIDE OFFER 1 from Eastside")
    ask(world, chat, 1, "RIDE NEED from Eastside")
    ask(world, chat, 1, "RIDE NEED from Eastside")  # the same again: one entry, one match
    ask(world, chat, 1, "RIDE NEED from Westside")  # another one needs a cancel first
    world.drain()
    assert int(RideEntry.get(f"CH#{cid}", "RIDE#s-s0").seats_left) == 0
    assert len(list(PrivateThread.scan(PrivateThread.pk.startswith("PT#")))) == 1
    texts = [
        text_of(s)
        for s in world.relayed()
        if s.to == addr(1) and s.message["From"].addresses[0].addr_spec == chat["address"]
    ]
    assert len(texts) == 3
    assert "Matched: Ann0 A." in texts[0] and "Matched: Ann0 A." in texts[1]
    assert "already have a ride need from Eastside" in texts[2]

    ask(world, chat, 2, "RIDE NEED from Northgate")
    ask(world, chat, 2, "ride cancel")
    world.drain()
    assert "withdrawn" in text_of(world.sent()[-1])
    with pytest.raises(RideEntry.DoesNotExist):
        RideEntry.get(f"CH#{cid}", "RIDE#s-s2")


def test_a_place_with_an_address_or_a_phone_is_refused(world: World, chat: dict) -> None:
    cid = chat_id(world)
    ask(world, chat, 0, "RIDE OFFER 2 from ann3@people.example")
    ask(world, chat, 0, "RIDE OFFER 2 from 555 123 4567")
    world.drain()
    texts = [text_of(s) for s in world.relayed()]
    assert "without an address" in texts[0] and "without a phone number" in texts[1]
    assert list(RideEntry.query(f"CH#{cid}", RideEntry.sk.startswith("RIDE#"))) == []
    for s in world.relayed():
        no_real_address(s.raw, but=s.to)


def test_two_needs_racing_for_the_last_seat_make_one_match(world: World, chat: dict) -> None:
    from chalicelib.services.bot import answer

    cid = chat_id(world)
    assert "1 seat from Uptown" in (
        answer(cid, "s-s0", "RIDE OFFER 1 from Uptown", "sms", settings=world.settings) or ""
    )
    start = threading.Barrier(3)
    replies: dict[str, str | None] = {}

    def need(key: str) -> None:
        start.wait()
        replies[key] = answer(cid, key, "RIDE NEED from uptown", "sms", settings=world.settings)

    racers = [threading.Thread(target=need, args=(k,)) for k in ("s-s1", "s-s2", "s-s3")]
    for t in racers:
        t.start()
    for t in racers:
        t.join()

    offer = RideEntry.get(f"CH#{cid}", "RIDE#s-s0", consistent_read=True)
    assert int(offer.seats_left) == 0 and len(offer.matched or ()) == 1
    (winner,) = offer.matched or ()
    assert sum("Matched: Ann0 A." in (r or "") for r in replies.values()) == 1
    assert "Matched" in (replies[winner] or "")
    threads = list(PrivateThread.scan(PrivateThread.pk.startswith("PT#")))
    assert [(t.organizer_key, t.participant_key) for t in threads] == [("s-s0", winner)]
    world.drain()
    intros = world.relayed()
    assert sorted(s.to for s in intros) == sorted([addr(0), addr(int(winner[-1]))])


def test_answer_is_none_for_ordinary_text(world: World, chat: dict) -> None:
    from chalicelib.services.bot import answer

    cid = chat_id(world)
    assert answer(cid, "s-s0", "See you all there", "sms", settings=world.settings) is None
    assert answer(cid, "s-s0", "where", "sms", settings=world.settings) == KEYWORDS["where"]
    assert answer("nochat", "s-s0", "where", "sms", settings=world.settings) is None


# -- faults: retried work is done once ----------------------------------------------


def test_a_throttled_answer_is_retried_and_sent_once(world: World, chat: dict) -> None:
    from tests.integration.faults import aws_fault, client_error

    hits = aws_fault(world, "SendEmail", client_error("Throttling", "Maximum sending rate exceeded.", "SendEmail"))
    with pytest.raises(Exception):  # noqa: B017 - the invocation fails: Lambda retries it
        ask(world, chat, 1, "WHERE")
    assert len(hits) == 1 and world.relayed() == []
    assert world.retry() == {"outcomes": ["bot_answered"]}
    assert world.retry() == {"outcomes": ["bot_answered"]}  # a late duplicate changes nothing
    world.drain()
    (answer,) = world.relayed()
    assert answer.to == addr(1) and KEYWORDS["where"] in text_of(answer)
    assert outcomes(chat_id(world)) == ["bot_answered"]


def test_a_crash_between_a_match_and_its_intro_is_repaired_by_the_retry(world: World, chat: dict) -> None:
    from tests.integration.faults import Killed, lapse_in_progress, restart
    from tests.integration.test_fault_matrix import crash_at

    cid = chat_id(world)
    ask(world, chat, 0, "RIDE OFFER 1 from Eastside")
    world.drain()
    crash_at(world, "chalicelib.services.rides.open_pair")  # the match is written, the pair not yet opened
    with pytest.raises(Killed):
        ask(world, chat, 1, "RIDE NEED from Eastside")
    restart(world)
    lapse_in_progress(world)
    assert int(RideEntry.get(f"CH#{cid}", "RIDE#s-s0").seats_left) == 0  # the match happened
    assert list(PrivateThread.scan(PrivateThread.pk.startswith("PT#"))) == []
    assert world.retry() == {"outcomes": ["bot_answered"]}
    assert world.retry() == {"outcomes": ["bot_answered"]}
    world.drain()

    (thread,) = PrivateThread.scan(PrivateThread.pk.startswith("PT#"))
    pair = f"{thread.relay_local}@{world.settings.relay_domain}"
    sent = world.relayed()
    intros = sorted(s.to for s in sent if s.message["From"].addresses[0].addr_spec == pair)
    assert intros == sorted([addr(0), addr(1)])
    answers = [s for s in sent if s.to == addr(1) and s.message["From"].addresses[0].addr_spec == chat["address"]]
    assert len(answers) == 1 and pair in text_of(answers[0])
