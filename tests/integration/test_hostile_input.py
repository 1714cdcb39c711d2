"""Hostile and unusual inbound mail through the public SES path (R6, R12).

SES receipt (S3 object + Lambda action) -> inbound_email -> SQS -> deliver -> SES,
against moto: a spoofed From is refused, mail over a complexity cap is refused
before the full parse, and a participant with an internationalized address can post.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.world import Sent, World, signup_body

STATUSES = ("registered", "confirmed", "attended")
ORGANIZER = "olive0@org.example"
JOSE = "jösé@exämple.org"  # as the integration registered him


def addr(name: str) -> str:
    return f"{name}@people.example"


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    """An open chat: one organizer and three active signups (ann0..ann2)."""
    return world.open_chat(STATUSES)


def relayed(world: World) -> list[Sent]:
    return world.relayed()


def raw_mail(from_header: str, to: str, subject: str = "Carpool?", body: str = "Who can drive?") -> bytes:
    """A plain message with the From header exactly as given (UTF-8 allowed, RFC 6532)."""
    return (
        f"From: {from_header}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <hostile-{abs(hash((from_header, subject)))}@client.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()


# --- audit 13: a From that Python and mail clients read differently ----------


@pytest.mark.parametrize(
    "from_header",
    [
        f"{addr('ann1')} <mallory@evil.example>",
        f"<{addr('ann1')}> <mallory@evil.example>",
        f"{addr('ann1')}, mallory@evil.example",
    ],
)
def test_a_from_with_two_readings_is_refused_and_nothing_is_sent(world: World, chat: dict, from_header: str) -> None:
    raw = raw_mail(from_header, chat["address"])

    outcome = world.receive(raw, sender="mallory@evil.example", to=[chat["address"]])
    world.drain()

    assert outcome == {"outcomes": ["from_invalid"]}
    assert relayed(world) == []  # no copy to anybody, and no notice either


def test_a_second_from_field_is_refused(world: World, chat: dict) -> None:
    raw = raw_mail(f"Ann <{addr('ann1')}>\r\nFrom: Mallory <mallory@evil.example>", chat["address"])

    assert world.receive(raw, sender="mallory@evil.example", to=[chat["address"]]) == {"outcomes": ["from_invalid"]}
    world.drain()
    assert relayed(world) == []


# --- audit 18: caps checked before the full parse ----------------------------


def test_a_200kb_encoded_word_subject_is_too_complex(world: World, chat: dict) -> None:
    subject = " ".join(["=?utf-8?q?a?="] * (200_000 // 14))
    raw = raw_mail(f"Ann <{addr('ann0')}>", chat["address"], subject=subject)

    assert world.receive(raw, sender=addr("ann0"), to=[chat["address"]]) == {"outcomes": ["too_complex"]}
    world.drain()
    assert [s.to for s in relayed(world)] == [addr("ann0")]  # only the sender's notice (R12)


def test_a_200kb_subject_listed_raw_in_the_ses_event_is_too_complex(world: World, chat: dict) -> None:
    # As SES lists it: the header value with its encoded words (the twin decodes them).
    subject = " ".join(["=?utf-8?q?a?="] * (200_000 // 14))
    raw = raw_mail(f"Ann <{addr('ann0')}>", chat["address"], subject=subject)

    assert world.receive(raw, sender=addr("ann0"), to=[chat["address"]]) == {"outcomes": ["too_complex"]}
    world.drain()
    assert [s.to for s in relayed(world)] == [addr("ann0")]  # only the sender's notice (R12)


def test_300000_mime_parts_are_too_complex(world: World, chat: dict) -> None:
    head = (
        f"From: Ann <{addr('ann0')}>\r\nTo: {chat['address']}\r\nSubject: parts\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    ).encode()
    raw = head + b"--b\r\n\r\n" * 300_000 + b"--b--\r\n"

    assert world.receive(raw, sender=addr("ann0"), to=[chat["address"]]) == {"outcomes": ["too_complex"]}
    world.drain()
    assert [s.to for s in relayed(world)] == [addr("ann0")]  # only the sender's notice (R12)


# --- audit 20: an internationalized address can post -------------------------


@pytest.fixture
def jose_chat(world: World, chat: dict) -> dict[str, Any]:
    body = signup_body(9, "confirmed")
    body["person"] = {"first_name": "José", "last_name": "Núñez", "email": JOSE}
    response = world.put_signup("e1", "s9", body)
    assert response.status_code == 201, response.body
    world.drain()
    world.kickoffs = len(world.sent())  # type: ignore[attr-defined]
    return chat


JOSE_FROMS = [
    "José <jösé@exämple.org>",  # UTF-8 header, RFC 6532
    "José <jösé@xn--exmple-cua.org>",  # the domain in punycode
    "=?utf-8?q?Jos=C3=A9?= <JÖSÉ@EXÄMPLE.ORG>",  # other case
]
# SES does not speak SMTPUTF8, so the envelope sender of such mail is ASCII
# (here an ESP-style bounce address at his domain; DMARC passed).
JOSE_ENVELOPE = "bounces@xn--exmple-cua.org"


@pytest.mark.parametrize("from_header", JOSE_FROMS)
def test_a_participant_with_a_non_ascii_address_can_post(world: World, jose_chat: dict, from_header: str) -> None:
    raw = raw_mail(from_header, jose_chat["address"])

    outcome = world.receive(raw, sender=JOSE_ENVELOPE, to=[jose_chat["address"]])
    world.drain()

    assert outcome == {"outcomes": ["relayed"]}
    copies = relayed(world)
    assert sorted(s.to for s in copies) == sorted([ORGANIZER, addr("ann0"), addr("ann1"), addr("ann2")])
    for copy in copies:
        assert copy.message["From"].addresses[0].display_name == "José N."
        for real in ("jösé".encode(), b"xn--exmple-cua", "exämple".encode()):
            assert real not in copy.raw


def test_the_api_accepts_and_returns_a_non_ascii_address(world: World, jose_chat: dict) -> None:
    response = world.call("GET", "/events/e1/signups/s9")

    assert response.status_code == 200
    assert response.json_body["person"]["email"] == JOSE


def test_a_non_ascii_from_through_the_twin_event(world: World, jose_chat: dict) -> None:
    raw = raw_mail(JOSE_FROMS[0], jose_chat["address"])

    assert world.receive(raw, sender=JOSE_ENVELOPE, to=[jose_chat["address"]]) == {"outcomes": ["relayed"]}
