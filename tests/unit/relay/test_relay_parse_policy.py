"""Parsing, verdicts, loop/auto detection (R7) and authorization (R3, R6, R12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import (
    InboundMail,
    Verdicts,
    loop_or_auto_reason,
    parse_inbound,
    verdicts_from_ses,
)
from chalicelib.relay.policy import ChatWindow, SenderInfo, authorize, sender_authenticated
from tests.fixtures.emails.loader import load_eml

RELAY = "relay.example.org"
NOW = datetime(2024, 12, 13, 12, 0, tzinfo=UTC)
OPEN = ChatWindow("open", NOW - timedelta(hours=1), NOW + timedelta(days=7))
GOOD = Verdicts("PASS", "PASS", "PASS", "PASS", "PASS")
SENDER = "sam.sender@example.net"


def _mail(headers: str, body: str = "hello\n") -> InboundMail:
    return parse_inbound((headers.strip() + "\n\n" + body).encode())


PLAIN = _mail(f"From: Sam <{SENDER}>\nTo: k3x9@{RELAY}\nSubject: hi\nMessage-ID: <a@b>")


def _authorize(**overrides: object) -> Outcome:
    kwargs: dict[str, object] = {
        "verdicts": GOOD,
        "mail": PLAIN,
        "envelope_sender": SENDER,
        "relay_domain": RELAY,
        "chat": OPEN,
        "sender": SenderInfo(active=True),
        "max_bytes": 10_000_000,
        "now": NOW,
    }
    kwargs.update(overrides)
    return authorize(**kwargs)  # type: ignore[arg-type]


def test_given_an_ses_receipt_when_read_then_verdicts_come_out() -> None:
    receipt = {
        "spfVerdict": {"status": "PASS"},
        "dkimVerdict": {"status": "FAIL"},
        "dmarcVerdict": {"status": "GRAY"},
        "spamVerdict": {"status": "PASS"},
        "virusVerdict": {"status": "PASS"},
    }
    assert verdicts_from_ses(receipt) == Verdicts("PASS", "FAIL", "GRAY", "PASS", "PASS")
    assert verdicts_from_ses({}).spf == "PROCESSING_FAILED"


def test_given_a_reply_when_parsed_then_ids_subject_and_sender_are_read() -> None:
    mail = _mail(
        "From: Sam <Sam.Sender@Example.NET>\nSubject: Re: hi\r\n there\n"
        "Message-ID: <x1@client>\nIn-Reply-To: <m-1@relay>\n"
        "References: <m-0@relay>\n <m-1@relay> junk <bad id>"
    )
    assert mail.from_address == SENDER
    assert mail.message_id == "<x1@client>"
    assert mail.in_reply_to == ("<m-1@relay>",)
    assert mail.references == ("<m-0@relay>", "<m-1@relay>")
    assert mail.subject == "Re: hi there"


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff\xfe", b"From:\n\n", b"Content-Type: multipart/mixed\n\n--\n", b"\n" * 50],
)
def test_given_garbage_when_parsed_then_an_object_without_sender(raw: bytes) -> None:
    mail = parse_inbound(raw)
    assert mail.from_address is None
    assert mail.size == len(raw)


@pytest.mark.parametrize(
    ("spf", "dkim", "dmarc", "ok"),
    [
        ("PASS", "PASS", "PASS", True),
        ("PASS", "FAIL", "GRAY", True),
        ("FAIL", "PASS", "PASS", True),
        ("FAIL", "FAIL", "PASS", False),
        ("PASS", "PASS", "FAIL", False),
        ("GRAY", "PROCESSING_FAILED", "GRAY", False),
        ("DISABLED", "DISABLED", "DISABLED", False),
    ],
)
def test_given_verdict_combinations_then_authentication_follows_r6(
    spf: str, dkim: str, dmarc: str, ok: bool
) -> None:
    assert sender_authenticated(Verdicts(spf, dkim, dmarc, "PASS", "PASS")) is ok


@pytest.mark.parametrize(
    ("headers", "envelope", "expected"),
    [
        (f"From: <{SENDER}>\nSubject: hi", "", Outcome.NULL_SENDER),
        (f"From: <{SENDER}>\nSubject: hi", "<>", Outcome.NULL_SENDER),
        (f"From: <{SENDER}>\nSubject: hi", "MAILER-DAEMON@mx.example.net", Outcome.NULL_SENDER),
        (f"From: <{SENDER}>\nAuto-Submitted: auto-replied", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nAuto-Submitted: auto-generated", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nAuto-Submitted: no", SENDER, None),
        (f"From: <{SENDER}>\nPrecedence: bulk", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nPrecedence: JUNK", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nPrecedence: list", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nX-Autoreply: yes", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nX-Autorespond: yes", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nSubject: Out of Office: back Monday", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nSubject: Automatic reply: Parking", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nSubject: Vacation", SENDER, Outcome.AUTO_REPLY),
        (f"From: <{SENDER}>\nX-Auto-Response-Suppress: All\nSubject: Re: hi", SENDER, None),
        (f"From: <{SENDER}>\nSubject: Office supplies", SENDER, None),
        (f"From: <k3x9@{RELAY}>", SENDER, Outcome.LOOP),
        (f"From: <{SENDER}>", f"bounce@mail.{RELAY}", Outcome.LOOP),
        (f"From: <{SENDER}>\nX-Loop: {RELAY}", SENDER, Outcome.LOOP),
        (f"From: <{SENDER}>\nContent-Type: multipart/report; report-type=delivery-status; boundary=x",
         SENDER, Outcome.DELIVERY_REPORT),
        (f"From: <{SENDER}>\nContent-Type: message/delivery-status", SENDER, Outcome.DELIVERY_REPORT),
    ],
)
def test_given_automatic_or_looping_mail_then_r7_names_the_reason(
    headers: str, envelope: str, expected: Outcome | None
) -> None:
    assert loop_or_auto_reason(_mail(headers), envelope, RELAY) == expected


def test_given_the_dsn_and_vacation_fixtures_then_they_are_never_relayed() -> None:
    dsn = parse_inbound(load_eml("dsn_delivery_report.eml"))
    ooo = parse_inbound(load_eml("out_of_office.eml"))
    vacation = parse_inbound(load_eml("vacation_no_headers.eml"))

    assert loop_or_auto_reason(dsn, "", RELAY) is Outcome.DELIVERY_REPORT
    assert loop_or_auto_reason(ooo, SENDER, RELAY) is Outcome.AUTO_REPLY
    assert loop_or_auto_reason(vacation, SENDER, RELAY) is Outcome.AUTO_REPLY
    assert _authorize(mail=ooo) is Outcome.AUTO_REPLY


def test_given_an_active_participant_in_an_open_chat_then_relayed() -> None:
    assert _authorize() is Outcome.RELAYED


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"verdicts": Verdicts("PASS", "PASS", "PASS", "FAIL", "FAIL")}, Outcome.VIRUS),
        ({"verdicts": Verdicts("PASS", "PASS", "PASS", "FAIL", "PASS")}, Outcome.SPAM),
        ({"verdicts": Verdicts("FAIL", "FAIL", "GRAY", "PASS", "PASS")}, Outcome.AUTH_FAILED),
        ({"verdicts": Verdicts("PASS", "PASS", "FAIL", "PASS", "PASS")}, Outcome.AUTH_FAILED),
        ({"envelope_sender": ""}, Outcome.NULL_SENDER),
        ({"max_bytes": 10}, Outcome.TOO_LARGE),
        ({"mail": parse_inbound(b"Subject: x\n\nbody")}, Outcome.MALFORMED),
        ({"chat": None}, Outcome.CHAT_NOT_FOUND),
        ({"sender": None}, Outcome.NOT_A_PARTICIPANT),
        ({"sender": SenderInfo(active=False)}, Outcome.SENDER_INACTIVE),
        ({"chat": ChatWindow("scheduled", NOW + timedelta(hours=3), None)}, Outcome.CHAT_NOT_OPEN),
        ({"chat": ChatWindow("open", NOW - timedelta(days=9), NOW - timedelta(days=1))},
         Outcome.CHAT_CLOSED),
        ({"chat": ChatWindow("closed", NOW - timedelta(days=1), None)}, Outcome.CHAT_CLOSED),
        ({"chat": ChatWindow("disabled", NOW - timedelta(days=1), None)}, Outcome.CHAT_CLOSED),
        ({"chat": ChatWindow("open", NOW - timedelta(days=1), None)}, Outcome.RELAYED),
    ],
)
def test_given_one_failing_condition_then_authorize_names_it(
    overrides: dict[str, object], expected: Outcome
) -> None:
    assert _authorize(**overrides) is expected


def test_given_spoofed_from_without_dmarc_then_spf_of_another_domain_is_not_enough() -> None:
    gray = Verdicts("PASS", "FAIL", "GRAY", "PASS", "PASS")

    assert _authorize(verdicts=gray, envelope_sender="attacker@evil.example") is Outcome.AUTH_FAILED
    assert _authorize(verdicts=gray, envelope_sender=f"bounces@{SENDER.split('@')[1]}") is (
        Outcome.RELAYED
    )


def test_given_forged_mail_then_rejection_wins_over_every_bounceable_reason() -> None:
    forged = Verdicts("FAIL", "FAIL", "PASS", "PASS", "PASS")

    outcome = _authorize(verdicts=forged, chat=None, sender=None, max_bytes=1)
    assert outcome is Outcome.AUTH_FAILED
    assert not outcome.may_bounce


def test_given_outcomes_then_only_safe_ones_may_bounce() -> None:
    never = {
        Outcome.AUTH_FAILED, Outcome.SPAM, Outcome.VIRUS, Outcome.AUTO_REPLY,
        Outcome.DELIVERY_REPORT, Outcome.NULL_SENDER, Outcome.LOOP, Outcome.MALFORMED,
        Outcome.RELAYED,
    }
    for outcome in Outcome:
        assert outcome.may_bounce is (outcome not in never), outcome
        assert bool(outcome.bounce_text) is outcome.may_bounce
    assert Outcome.RELAYED.relayed and not Outcome.LOOP.relayed
