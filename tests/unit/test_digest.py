"""Daily digests, the pure parts: who gets one, when it goes, what it looks like."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.models import Chat, Participant
from chalicelib.relay.anonymize import Person, anonymize
from chalicelib.relay.digest import DigestMessage, render_digest, summarize
from chalicelib.relay.parse import parse_inbound
from chalicelib.relay.placeholders import TEXT_SLOT_LEAD
from chalicelib.services.digest import effective_delivery, next_digest_at, wants_digest
from chalicelib.settings import ConfigurationError, Settings
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, RELAY_DOMAIN

ANN = Person("p-ann", "Ann A.", ("ann@people.example",))
OLIVE = Person("o-olive", "Olive O. (organizer)", ("olive@org.example",))
PEOPLE = [ANN, OLIVE]


def settings(**env: str) -> Settings:
    return Settings.from_env({"AWS_REGION": "us-east-1", **env})


def person(delivery: str | None = None) -> Participant:
    return Participant("CH#c", "P#s-1", participant_key="s-1", delivery=delivery)


def chat(default: str | None = None) -> Chat:
    return Chat("CH#c", "META", chat_id="c", timezone="America/New_York", default_delivery=default)


# -- who gets a digest -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mine", "chats", "size", "above", "expected"),
    [
        (None, None, 3, "200", "each"),
        (None, None, 201, "200", "digest"),  # big chats default to digests
        (None, None, 200, "200", "each"),  # "more than"
        (None, None, 5000, "0", "each"),  # 0 turns the size rule off
        (None, "digest", 3, "200", "digest"),  # the event's default
        (None, "each", 5000, "200", "each"),
        ("each", "digest", 5000, "200", "each"),  # the person's own choice wins
        ("digest", "each", 3, "0", "digest"),
    ],
)
def test_delivery_is_the_persons_choice_then_the_chats_default_then_the_size_rule(
    mine: str | None, chats: str | None, size: int, above: str, expected: str
) -> None:
    s = settings(MUSTER_DIGEST_ABOVE=above)
    assert effective_delivery(person(mine), chat(chats), size, s) == expected
    assert wants_digest(person(mine), chat(chats), size, s) is (expected == "digest")


def test_settings_read_the_digest_threshold_and_hour() -> None:
    s = settings()
    assert (s.digest_above, s.digest_hour) == (200, 18)
    s = settings(MUSTER_DIGEST_ABOVE="50", MUSTER_DIGEST_HOUR="7")
    assert (s.digest_above, s.digest_hour) == (50, 7)
    with pytest.raises(ConfigurationError, match="MUSTER_DIGEST_HOUR"):
        settings(MUSTER_DIGEST_HOUR="24")
    with pytest.raises(ConfigurationError, match="MUSTER_DIGEST_ABOVE"):
        settings(MUSTER_DIGEST_ABOVE="-1")


# -- when it goes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2030, 5, 4, 12, 0, tzinfo=UTC), datetime(2030, 5, 4, 22, 0, tzinfo=UTC)),  # 08:00 EDT -> 18:00 today
        (datetime(2030, 5, 4, 21, 59, tzinfo=UTC), datetime(2030, 5, 4, 22, 0, tzinfo=UTC)),
        (datetime(2030, 5, 4, 22, 0, tzinfo=UTC), datetime(2030, 5, 5, 22, 0, tzinfo=UTC)),  # at 18:00: tomorrow's
        (datetime(2030, 5, 5, 3, 0, tzinfo=UTC), datetime(2030, 5, 5, 22, 0, tzinfo=UTC)),  # 23:00 EDT the day before
        (datetime(2030, 3, 9, 23, 30, tzinfo=UTC), datetime(2030, 3, 10, 22, 0, tzinfo=UTC)),  # DST starts: EST -> EDT
        (datetime(2030, 11, 2, 23, 0, tzinfo=UTC), datetime(2030, 11, 3, 23, 0, tzinfo=UTC)),  # DST ends: EDT -> EST
    ],
)
def test_the_next_digest_is_the_first_digest_hour_in_the_chats_zone(now: datetime, expected: datetime) -> None:
    assert next_digest_at(now, "America/New_York", 18) == expected


def test_half_hour_zones_get_their_own_local_hour() -> None:
    now = datetime(2030, 5, 4, 6, 0, tzinfo=UTC)  # 11:30 in Kolkata
    assert next_digest_at(now, "Asia/Kolkata", 18) == datetime(2030, 5, 4, 12, 30, tzinfo=UTC)


# -- what it looks like ----------------------------------------------------------------


def _stored(n: int, *, body: str = "See you there", author: Person = ANN, subject: str | None = None) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = f"Someone <{author.addresses[0]}>"
    msg["To"] = CHAT.relay_address
    msg["Subject"] = subject or f"Topic {n} for olive@org.example"
    msg["Message-ID"] = f"<client{n}@people.example>"
    msg.set_content(body)
    return anonymize(
        parse_inbound(msg.as_bytes()),
        author=author,
        people=PEOPLE,
        chat=CHAT,
        message_id=f"<18f00000{n:04x}abcd@{RELAY_DOMAIN}>",
        in_reply_to=None,
        references=(),
        date=datetime(2024, 12, 13, 14 + n, 5, tzinfo=UTC),
    )


def _digest(messages: list[DigestMessage], **kw: object) -> bytes:
    args: dict[str, object] = {
        "chat": CHAT,
        "messages": messages,
        "timezone": "America/New_York",
        "day": date(2024, 12, 13),
        "mute_url": MUTE_URL,
        "message_id": f"<digest-1@{RELAY_DOMAIN}>",
        "sent_at": datetime(2024, 12, 13, 23, 1, tzinfo=UTC),
        "digest_hour": 18,
        **kw,
    }
    return render_digest(**args)  # type: ignore[arg-type]


def _parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def test_a_digest_lists_each_message_and_embeds_each_copy_with_its_muster_id() -> None:
    stored = [_stored(n) for n in range(3)]
    out = _digest([DigestMessage(s) for s in stored])
    message = _parse(out)

    assert message["Subject"] == "[Canvass Sat 10:00] Daily digest, Fri 13 Dec: 3 messages"
    assert message["From"].addresses[0].addr_spec == CHAT.relay_address
    assert message["Message-ID"] == f"<digest-1@{RELAY_DOMAIN}>"
    assert message["List-Unsubscribe"] == f"<{MUTE_URL}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    listing, digest = message.get_payload()
    text = listing.get_content()
    # Times in the chat's zone (14:05 UTC is 09:05 EST), authors by display name,
    # subjects without the chat's prefix.
    assert "1. Fri 09:05  Ann A.: Topic 0 for Olive O. (organizer)" in text
    assert "3. Fri 11:05  Ann A.: Topic 2" in text
    assert "America/New_York" in text and text.rstrip().endswith(MUTE_URL)
    assert digest.get_content_type() == "multipart/digest"
    copies = [part.get_payload()[0] for part in digest.get_payload()]
    assert [c["Message-ID"] for c in copies] == [f"<18f00000{n:04x}abcd@{RELAY_DOMAIN}>" for n in range(3)]
    assert find_leaks(out, ["ann@people.example", "olive@org.example"]) == []


def test_each_embedded_copy_carries_this_readers_link_and_is_otherwise_the_stored_copy() -> None:
    stored = _stored(0)
    out = _digest([DigestMessage(stored)])

    assert b"MUSTERMUTEURL" not in out
    (part,) = _parse(out).get_payload()[1].get_payload()
    copy = part.get_payload()[0]
    assert f"{TEXT_SLOT_LEAD}{MUTE_URL}\n" in copy.get_content().replace("\r\n", "\n")
    # The bytes are the stored copy's, only the footer slot filled: no re-encoding.
    head, _, body = stored.partition(b"\r\n\r\n")
    assert head + b"\r\n\r\n" in out
    assert body.split(b"MUSTERMUTEURL")[0] in out


def test_an_answer_gets_in_reply_to_and_references_unless_the_copy_has_them() -> None:
    out = _digest([DigestMessage(_stored(0)), DigestMessage(_stored(1), ancestors=("18f000000000abcd",))])
    first, second = (p.get_payload()[0] for p in _parse(out).get_payload()[1].get_payload())
    assert first["In-Reply-To"] is None
    assert second["In-Reply-To"] == f"<18f000000000abcd@{RELAY_DOMAIN}>"
    assert second["References"] == f"<18f000000000abcd@{RELAY_DOMAIN}>"

    already = b"In-Reply-To: <x@y>\r\n" + _stored(2)
    out = _digest([DigestMessage(already, ancestors=("18f000000000abcd",))])
    (copy,) = (p.get_payload()[0] for p in _parse(out).get_payload()[1].get_payload())
    assert copy["In-Reply-To"] == "<x@y>" and copy["References"] is None


def test_later_parts_say_so_and_one_message_is_singular() -> None:
    message = _parse(_digest([DigestMessage(_stored(0))], part=2))
    assert message["Subject"] == "[Canvass Sat 10:00] Daily digest, Fri 13 Dec: 1 message (part 2)"
    assert "1 message (Fri 13 Dec 2024, part 2)" in message.get_payload()[0].get_content()


def test_a_body_that_spells_the_boundary_cannot_break_the_digest() -> None:
    first = _digest([DigestMessage(_stored(0))])
    boundary = _parse(first).get_payload()[1].get_boundary()
    assert boundary
    sneaky = _stored(0, body=f"--{boundary}\n--{boundary}--\nafter")
    message = _parse(_digest([DigestMessage(sneaky), DigestMessage(_stored(1))]))
    copies = message.get_payload()[1].get_payload()
    assert len(copies) == 2 and "after" in copies[0].get_payload()[0].get_content()


def test_summaries_of_hostile_headers_stay_one_clean_line() -> None:
    raw = (
        b"From: =?utf-8?q?Evil=0D=0ABcc=3A_x=40y=2Ez?= <chat@relay.example.org>\r\n"
        b"Subject: =?utf-8?q?hi=0Athere_write_to_eve=40evil=2Eexample?= MUSTERMUTEURLTEXTPLACEHOLDERXXXX\r\n"
        b"Date: not a date\r\n\r\nbody\r\n"
    )
    s = summarize(raw)
    assert "\n" not in s.author + s.subject and "@" not in s.author + s.subject
    assert "MUSTERMUTEURL" not in s.subject and "[address hidden]" in s.subject
    assert s.when is None
    assert summarize(b"").author == "Participant" and summarize(b"").subject == "(no subject)"


def test_a_digest_needs_a_message() -> None:
    with pytest.raises(ValueError):
        _digest([])
