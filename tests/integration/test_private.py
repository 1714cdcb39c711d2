"""Private two-person threads (issue 10) end to end in process: the API opens a
thread, SES receipt -> inbound_email -> SQS -> deliver -> SES for the pair's
address, against moto. What a user would notice: who gets which mail, and what
it shows."""

from __future__ import annotations

import json
import re
import threading
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest

from chalicelib.models import Delivery, MessageLog
from tests.integration.world import World, signup_body

ORGANIZER = "olive0@org.example"
PATH = "/events/e1/timeslots/t1/chat/private"


def addr(n: int) -> str:
    return f"ann{n}@people.example"


REAL = [ORGANIZER, "olive1@org.example", *(addr(n) for n in range(4))]


def mail(
    frm: str, to: str, subject: str = "A word", body: str = "Can you bring the clipboards?", **headers: str
) -> bytes:
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    msg["From"] = f"Someone <{frm}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=frm.split("@")[1])
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    """An open chat: organizers org0 and org1, signups s0-s2 active, s3 cancelled."""
    return world.open_chat(["registered", "confirmed", "attended", "cancelled"], organizers=2)


def open_thread(world: World, organizer: str = "org0", signup: str = "s0") -> Any:
    return world.call("POST", PATH, {"organizer_id": organizer, "signup_id": signup})


def opened(world: World, organizer: str = "org0", signup: str = "s0") -> dict[str, Any]:
    response = open_thread(world, organizer, signup)
    assert response.status_code in (200, 201), response.body
    world.drain()
    return dict(json.loads(response.body))


def no_real_address(raw: bytes, *, but: str | None = None) -> None:
    lowered = raw.lower()
    for real in REAL:
        if real != but:
            assert real.encode() not in lowered, real


def outcomes(world: World, chat_id: str) -> list[str]:
    return [m.outcome for m in MessageLog.query(f"CH#{chat_id}", MessageLog.sk.startswith("M#"))]


# -- opening -------------------------------------------------------------------


def test_organizer_opens_a_thread_and_each_side_gets_one_intro(world: World, chat: dict) -> None:
    response = open_thread(world)
    assert response.status_code == 201, response.body
    body = json.loads(response.body)
    assert set(body) == {"thread_id", "relay_address", "organizer_id", "signup_id", "created"}
    assert body["created"] is True and body["organizer_id"] == "org0" and body["signup_id"] == "s0"
    pair = body["relay_address"]
    assert pair.endswith("@" + world.settings.relay_domain) and pair != chat["address"]
    assert body["thread_id"] in pair and chat["address"].split("@")[0].rsplit("-", 1)[1] not in pair
    no_real_address(response.body.encode() if isinstance(response.body, str) else response.body)
    world.drain()

    again = open_thread(world)
    assert again.status_code == 200
    assert json.loads(again.body) == {**body, "created": False}
    world.drain()

    intros = world.relayed()
    assert sorted(s.to for s in intros) == sorted([ORGANIZER, addr(0)])
    for copy in intros:
        message = copy.message
        assert message["From"].addresses[0].addr_spec == pair
        assert message["Reply-To"].addresses[0].addr_spec == pair
        assert message["List-Post"] == f"<mailto:{pair}>"
        assert message["Subject"].startswith("[Private: Canvass")
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "Only the two of you receive messages sent to this address." in text
        no_real_address(copy.raw, but=copy.to)
    to_ann = next(s for s in intros if s.to == addr(0)).message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Olive0 O. (organizer) opened a private conversation with you about Canvass" in to_ann
    to_olive = next(s for s in intros if s.to == ORGANIZER).message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "You opened a private conversation with Ann0 A." in to_olive


def test_concurrent_opens_make_one_thread_and_one_intro_each(world: World, chat: dict) -> None:
    from chalicelib.services.chats import chat_id_for
    from chalicelib.services.private import open_private_thread

    chat_id = chat_id_for("acme", "e1", "t1", world.settings.secret)
    start = threading.Barrier(4)
    results: list[Any] = []

    def one() -> None:
        start.wait()
        results.append(open_private_thread(chat_id, "o-org0", "s-s1", settings=world.settings))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.drain()

    assert len({r.thread_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert sorted(s.to for s in world.relayed()) == sorted([ORGANIZER, addr(1)])


def test_a_participant_cannot_open_a_thread(world: World, chat: dict) -> None:
    # A signup id given as the organizer: not an organizer of this chat.
    response = world.call("POST", PATH, {"organizer_id": "s1", "signup_id": "s0"})
    assert response.status_code == 422
    assert json.loads(response.body)["error"] == {
        "code": "not_an_organizer",
        "message": "only an organizer of this chat can open a private conversation",
        "field": "organizer_id",
    }
    world.drain()
    assert world.relayed() == []


REFUSALS = [
    ({"organizer_id": "org0", "signup_id": "s3"}, 422, "inactive_signup", "signup_id"),  # cancelled
    ({"organizer_id": "org0", "signup_id": "nobody"}, 404, "not_found", "signup_id"),
    ({"organizer_id": "ghost", "signup_id": "s0"}, 422, "not_an_organizer", "organizer_id"),
    ({"organizer_id": "org0"}, 422, "missing_field", "signup_id"),
    ({"organizer_id": "org0", "signup_id": "s0", "x": 1}, 422, "unknown_field", "x"),
    ({"organizer_id": "org 0", "signup_id": "s0"}, 422, "validation_error", "organizer_id"),
]


def test_refusals_have_r13s_shape_and_send_nothing(world: World, chat: dict) -> None:
    for body, status, code, field in REFUSALS:
        response = world.call("POST", PATH, body)
        assert response.status_code == status, (body, response.body)
        error = json.loads(response.body)["error"]
        assert (error["code"], error["field"]) == (code, field), body
    ok = {"organizer_id": "org0", "signup_id": "s0"}
    assert world.call("POST", "/events/e1/timeslots/t9/chat/private", ok).status_code == 404
    assert world.call("POST", "/events/e9/timeslots/t1/chat/private", ok).status_code == 404
    assert world.call("POST", PATH, ok, key=None).status_code == 401
    assert world.call("POST", PATH, "{not json").status_code == 400
    world.drain()
    assert world.relayed() == []


def test_a_thread_needs_an_open_chat(world: World) -> None:
    from tests.integration.world import event_body

    world.put_event("e1", event_body(start_in_hours=100))  # opens in 52 h
    assert world.put_signup("e1", "s0", signup_body(0)).status_code == 201
    response = open_thread(world)
    assert response.status_code == 409
    assert json.loads(response.body)["error"]["code"] == "chat_not_open"


# -- mail in the pair ------------------------------------------------------------


def test_participants_reply_reaches_only_the_organizer_anonymized(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    before = len(world.sent())
    assert world.receive(mail(addr(0), pair), sender=addr(0), to=[pair]) == {"outcomes": ["relayed"]}
    world.drain()

    (copy,) = world.sent()[before:]
    assert copy.to == ORGANIZER
    message = copy.message
    assert message["From"].addresses[0].display_name == "Ann0 A."
    assert message["From"].addresses[0].addr_spec == pair
    assert message["Reply-To"].addresses[0].addr_spec == pair
    assert message["List-Post"] == f"<mailto:{pair}>"
    assert message["Subject"].startswith("[Private: Canvass") and message["Subject"].endswith("A word")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    no_real_address(copy.raw, but=ORGANIZER)  # only in the envelope's To, which is theirs
    assert addr(0).encode() not in copy.raw.lower()


def test_organizers_message_reaches_only_the_participant(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    before = len(world.sent())
    body = f"Ann, could you call me? Or mail {ORGANIZER} or ask ann1@people.example."
    assert world.receive(mail(ORGANIZER, pair, body=body), sender=ORGANIZER, to=[pair]) == {"outcomes": ["relayed"]}
    world.drain()

    (copy,) = world.sent()[before:]
    assert copy.to == addr(0)
    assert copy.message["From"].addresses[0].display_name == "Olive0 O. (organizer)"
    text = copy.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Olive0 O. (organizer)" in text and "Ann1 A." in text  # addresses became names
    no_real_address(copy.raw, but=addr(0))
    assert ORGANIZER.encode() not in copy.raw.lower()


def test_someone_else_in_the_chat_writing_to_the_pair_is_refused(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    before = len(world.sent())
    # Another attendee and the other organizer of the same chat.
    assert world.receive(mail(addr(1), pair), sender=addr(1), to=[pair]) == {"outcomes": ["not_a_participant"]}
    outsider = "olive1@org.example"
    assert world.receive(mail(outsider, pair), sender=outsider, to=[pair]) == {"outcomes": ["not_a_participant"]}
    world.drain()
    new = world.sent()[before:]
    # Nobody got the message; only the senders got R6's notice (once a day each).
    assert sorted(s.to for s in new) == sorted([addr(1), outsider])
    for notice in new:
        assert notice.message["Auto-Submitted"] == "auto-replied"
        assert b"clipboards" not in notice.raw
    assert outcomes(world, chat_id_of(world)).count("not_a_participant") == 2


def chat_id_of(world: World) -> str:
    from chalicelib.services.chats import chat_id_for

    return chat_id_for("acme", "e1", "t1", world.settings.secret)


def test_a_cancelled_participant_can_no_longer_post_or_receive(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    assert world.put_signup("e1", "s0", signup_body(0, "cancelled")).status_code == 200
    world.drain()
    before = len(world.sent())

    assert world.receive(mail(addr(0), pair), sender=addr(0), to=[pair]) == {"outcomes": ["sender_inactive"]}
    world.receive(mail(ORGANIZER, pair), sender=ORGANIZER, to=[pair])
    world.drain()
    assert [s.to for s in world.sent()[before:]] == [addr(0)]  # the notice only
    assert world.sent()[-1].message["Auto-Submitted"] == "auto-replied"


def test_a_participant_who_left_the_chat_can_no_longer_post(world: World, chat: dict) -> None:
    from chalicelib.models import Participant

    pair = opened(world)["relay_address"]
    Participant(f"CH#{chat_id_of(world)}", "P#s-s0").update(
        actions=[Participant.left.set(True), Participant.muted.set(True)]
    )
    before = len(world.sent())
    assert world.receive(mail(addr(0), pair), sender=addr(0), to=[pair]) == {"outcomes": ["sender_inactive"]}
    world.receive(mail(ORGANIZER, pair), sender=ORGANIZER, to=[pair])
    world.drain()
    assert ORGANIZER not in [s.to for s in world.sent()[before:]]
    assert addr(0) in [s.to for s in world.sent()[before:]]  # the notice, nothing else
    assert len(world.sent()[before:]) == 1


def test_a_removed_organizer_can_no_longer_post(world: World, chat: dict) -> None:
    from tests.integration.world import event_body

    pair = opened(world)["relay_address"]
    # org0 is no longer an organizer of the event: their record leaves the chat.
    body = event_body(start_in_hours=10, organizers=2)
    body["organizers"] = body["organizers"][1:]
    assert world.put_event("e1", body).status_code == 200
    world.drain()
    before = len(world.sent())
    assert world.receive(mail(ORGANIZER, pair), sender=ORGANIZER, to=[pair]) == {"outcomes": ["not_a_participant"]}
    # The participant's message has nobody left to go to.
    assert world.receive(mail(addr(0), pair), sender=addr(0), to=[pair]) == {"outcomes": ["relayed"]}
    world.drain()
    new = world.sent()[before:]
    assert [s.to for s in new] == [ORGANIZER]  # R6's notice, nothing else
    assert new[0].message["Auto-Submitted"] == "auto-replied"


def test_a_digest_reader_gets_private_mail_at_once(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    response = world.call("PUT", "/events/e1/signups/s0/delivery", {"delivery": "digest"})
    assert response.status_code == 200, response.body
    before = len(world.sent())
    world.receive(mail(ORGANIZER, pair), sender=ORGANIZER, to=[pair])
    world.drain()
    assert [s.to for s in world.sent()[before:]] == [addr(0)]


def test_retries_and_the_same_mail_to_chat_and_pair_are_each_relayed_once(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    before = len(world.sent())
    raw = mail(addr(0), f"{chat['address']}, {pair}")
    assert world.receive(raw, sender=addr(0), to=[chat["address"], pair]) == {"outcomes": ["relayed", "relayed"]}
    world.retry()
    world.drain()
    world.retry()
    world.drain()
    got = sorted(s.to for s in world.sent()[before:])
    # The chat's copy to everyone else, plus the organizer's private copy.
    assert got == sorted([ORGANIZER, ORGANIZER, "olive1@org.example", addr(1), addr(2)])
    ids = {s.message["Message-ID"] for s in world.sent()[before:] if s.to == ORGANIZER}
    assert len(ids) == 2  # the pair's message has its own id (its key differs from the chat's)
    private = [s for s in world.sent()[before:] if s.to == ORGANIZER and s.message["Subject"].startswith("[Private")]
    assert len(private) == 1


def test_replies_in_the_pair_thread_for_each_side(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    first = mail(ORGANIZER, pair)
    client_id = re.search(rb"Message-ID: (<[^>]+>)", first).group(1).decode()  # type: ignore[union-attr]
    before = len(world.sent())
    world.receive(first, sender=ORGANIZER, to=[pair])
    world.drain()
    (to_ann,) = world.sent()[before:]
    root_id = to_ann.message["Message-ID"]
    root = root_id.strip("<>").split("@")[0]
    (held,) = [d for d in Delivery.scan() if d.pk == f"MSG#{root}" and d.sk.startswith("TO#")]
    ann_holds = f"<{held.ses_message_id}@email.amazonses.com>"

    reply = mail(
        addr(0),
        pair,
        subject=f"Re: {to_ann.message['Subject']}",
        body="Sure.",
        In_Reply_To=ann_holds,
        References=ann_holds,
    )
    world.receive(reply, sender=addr(0), to=[pair])
    world.drain()
    (to_olive,) = world.sent()[before + 1 :]
    assert to_olive.to == ORGANIZER
    # The organizer holds the parent under their own client's Message-ID.
    assert to_olive.message["In-Reply-To"] == client_id
    assert str(to_olive.message["References"]).split()[:2] == [root_id, client_id]
    assert to_olive.message["Subject"].count("[Private:") == 1


def test_a_reply_to_the_intro_threads_under_it_on_both_sides(world: World, chat: dict) -> None:
    pair = opened(world)["relay_address"]
    intros = {
        d.participant_key: f"<{d.ses_message_id}@email.amazonses.com>"
        for d in Delivery.scan()
        if d.pk.startswith("MSG#intro-") and d.sk.startswith("TO#")
    }
    assert set(intros) == {"o-org0", "s-s0"}
    before = len(world.sent())
    reply = mail(addr(0), pair, subject="Re: hello", In_Reply_To=intros["s-s0"], References=intros["s-s0"])
    assert world.receive(reply, sender=addr(0), to=[pair]) == {"outcomes": ["relayed"]}
    world.drain()
    (copy,) = world.sent()[before:]
    assert copy.to == ORGANIZER
    # The organizer holds the intro under their own copy's id: the reply cites it.
    assert copy.message["In-Reply-To"] == intros["o-org0"]
    assert intros["o-org0"] in str(copy.message["References"])


def test_a_lost_intro_queueing_is_redone_by_the_next_open(world: World, chat: dict) -> None:
    from tests.integration.test_exactly_once import fail_first

    fail_first(
        world,
        "chalicelib.adapters.queue.DeliveryQueue.send_all",
        when=lambda queue, bodies: bool(bodies) and bodies[0].get("kind") == "intro",
    )
    first = open_thread(world)
    assert first.status_code == 500 and json.loads(first.body)["error"]["code"] == "internal_error"
    world.drain()
    assert world.relayed() == []  # the thread exists, its intros are still owed

    again = open_thread(world)
    assert again.status_code == 200 and json.loads(again.body)["created"] is False
    open_thread(world)
    world.drain()
    assert sorted(s.to for s in world.relayed()) == sorted([ORGANIZER, addr(0)])


def test_a_failure_while_finishing_resumes_the_private_fan_out_once(world: World, chat: dict) -> None:
    from tests.integration.test_exactly_once import fail_first

    pair = opened(world)["relay_address"]
    before = len(world.sent())
    fail_first(world, "chalicelib.services.relay.RelayService._finish")
    with pytest.raises(RuntimeError):
        world.receive(mail(addr(0), pair), sender=addr(0), to=[pair])
    world.retry()
    world.retry()
    world.drain()
    assert [s.to for s in world.sent()[before:]] == [ORGANIZER]
    assert world.sent()[-1].message["From"].addresses[0].addr_spec == pair
