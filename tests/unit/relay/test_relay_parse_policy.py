"""Parsing, verdicts, loop/auto detection (R7) and authorization (R3, R6, R12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.relay.automatic import loop_or_auto_reason
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import (
    InboundMail,
    Verdicts,
    parse_inbound,
    parse_ses_headers,
    precheck,
    verdicts_from_ses,
)
from chalicelib.relay.policy import ChatWindow, SenderInfo, authorize, notice_recipient, sender_authenticated
from tests.fixtures.emails.loader import fixture_names, load_eml

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
def test_given_verdict_combinations_then_authentication_follows_r6(spf: str, dkim: str, dmarc: str, ok: bool) -> None:
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
        (
            f"From: <{SENDER}>\nContent-Type: multipart/report; report-type=delivery-status; boundary=x",
            SENDER,
            Outcome.DELIVERY_REPORT,
        ),
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
        ({"chat": ChatWindow("open", NOW - timedelta(days=9), NOW - timedelta(days=1))}, Outcome.CHAT_CLOSED),
        ({"chat": ChatWindow("closed", NOW - timedelta(days=1), None)}, Outcome.CHAT_CLOSED),
        ({"chat": ChatWindow("disabled", NOW - timedelta(days=1), None)}, Outcome.CHAT_CLOSED),
        ({"chat": ChatWindow("open", NOW - timedelta(days=1), None)}, Outcome.RELAYED),
    ],
)
def test_given_one_failing_condition_then_authorize_names_it(overrides: dict[str, object], expected: Outcome) -> None:
    assert _authorize(**overrides) is expected


def test_given_spoofed_from_without_dmarc_then_spf_of_another_domain_is_not_enough() -> None:
    gray = Verdicts("PASS", "FAIL", "GRAY", "PASS", "PASS")

    assert _authorize(verdicts=gray, envelope_sender="attacker@evil.example") is Outcome.AUTH_FAILED
    assert _authorize(verdicts=gray, envelope_sender=f"bounces@{SENDER.split('@')[1]}") is (Outcome.RELAYED)


def test_given_forged_mail_then_rejection_wins_over_every_bounceable_reason() -> None:
    forged = Verdicts("FAIL", "FAIL", "PASS", "PASS", "PASS")

    outcome = _authorize(verdicts=forged, chat=None, sender=None, max_bytes=1)
    assert outcome is Outcome.AUTH_FAILED
    assert not outcome.may_bounce


def test_given_outcomes_then_only_safe_ones_may_bounce() -> None:
    never = {
        Outcome.AUTH_FAILED,
        Outcome.SPAM,
        Outcome.VIRUS,
        Outcome.AUTO_REPLY,
        Outcome.DELIVERY_REPORT,
        Outcome.NULL_SENDER,
        Outcome.LOOP,
        Outcome.MALFORMED,
        Outcome.FROM_INVALID,
        Outcome.RELAYED,
        # R15: a held message is not refused, and the moderation service itself
        # tells the author once when it is declined or expires.
        Outcome.HELD,
        Outcome.MODERATION_REJECTED,
        Outcome.MODERATION_EXPIRED,
        # Issue 12: a bot command got its answer already, privately.
        Outcome.BOT_ANSWERED,
    }
    for outcome in Outcome:
        assert outcome.may_bounce is (outcome not in never), outcome
        assert bool(outcome.bounce_text) is outcome.may_bounce
    assert Outcome.RELAYED.relayed and not Outcome.LOOP.relayed


# --- R6: exactly one well-formed From address (audit 13) ---------------------


@pytest.mark.parametrize(
    ("from_lines", "problem"),
    [
        ("From: ann1@people.example <mallory@evil.example>", "defect: InvalidHeaderDefect"),
        ("From: <ann1@people.example> <mallory@evil.example>", "defect: InvalidHeaderDefect"),
        ("From: Ann <ann1@people.example> mallory@evil.example", "defect: InvalidHeaderDefect"),
        ("From: ann1@people.example, mallory@evil.example", "not exactly one address"),
        ("From: friends: ann1@people.example;", "group"),
        ("From: undisclosed-recipients:;", "not exactly one address"),
        ("From: Ann <ann1>", "defect: InvalidHeaderDefect"),
        ("From: ann1", "defect: InvalidHeaderDefect"),
        ("From:", "not exactly one address"),
        ("From: Ann <ann1@people.example>\nFrom: Mallory <mallory@evil.example>", "more than one From field"),
        ("From: Ann <a..b@people.example>", "defect: InvalidHeaderDefect"),
        ("From: Ann <ann1@people..example>", "defect: InvalidHeaderDefect"),
        ("From: Ann <@evil.example:ann1@people.example>", "defect: ObsoleteHeaderDefect"),
    ],
)
def test_given_an_ambiguous_or_malformed_from_then_it_is_refused_not_guessed(from_lines: str, problem: str) -> None:
    mail = _mail(f"{from_lines}\nTo: k3x9@{RELAY}\nSubject: hi")

    assert mail.from_address is None
    assert mail.from_invalid and mail.from_problem == problem
    assert _authorize(mail=mail, sender=None) is Outcome.FROM_INVALID
    assert not Outcome.FROM_INVALID.may_bounce


def test_given_a_non_utf8_address_in_from_then_refused() -> None:
    mail = parse_inbound(b"From: Ann <ann\xe9@people.example>\nSubject: hi\n\nbody\n")

    assert mail.from_address is None and mail.from_invalid


@pytest.mark.parametrize(
    ("raw_from", "expected"),
    [
        ("Jane Q. Public <Jane@People.Example>", "jane@people.example"),
        ('"Sender, Sam" <sam@people.example>', "sam@people.example"),
        ("sam@people.example (Sam S.)", "sam@people.example"),
        ("=?utf-8?q?Ann_=3Cmallory=40evil.example=3E?= <ann1@people.example>", "ann1@people.example"),
        ('"ann1@people.example" <mallory@evil.example>', "mallory@evil.example"),
        ("José <jösé@exämple.org>", "jösé@xn--exmple-cua.org"),
        ("José <JÖSÉ@XN--EXMPLE-CUA.org>", "jösé@xn--exmple-cua.org"),
    ],
)
def test_given_one_well_formed_from_then_its_address_is_read(raw_from: str, expected: str) -> None:
    mail = parse_inbound(f"From: {raw_from}\nSubject: hi\n\nbody\n".encode())

    assert mail.from_problem is None
    assert mail.from_address == expected


def test_given_raw_8bit_latin1_display_name_then_the_ascii_address_is_still_read() -> None:
    mail = parse_inbound(b"From: S\xe9bastien <seb@people.example>\nSubject: hi\n\nbody\n")

    assert mail.from_address == "seb@people.example"


def test_given_a_missing_from_then_malformed_as_before() -> None:
    mail = parse_inbound(b"Subject: x\n\nbody")

    assert mail.from_address is None and not mail.from_invalid
    assert _authorize(mail=mail) is Outcome.MALFORMED


# --- R12: complexity caps before the full parse (audit 18) -------------------


def _encoded_subject(size: int = 200_000) -> bytes:
    words = ["=?utf-8?q?a?="] * (size // 14)
    return (f"From: Sam <{SENDER}>\r\nSubject: {' '.join(words)}\r\n\r\nhello\r\n").encode()


def _many_parts(n: int, boundary: bytes = b"b", declared: bytes | None = None) -> bytes:
    declared = declared if declared is not None else b'boundary="' + boundary + b'"'
    head = b"From: Sam <" + SENDER.encode() + b">\r\nSubject: parts\r\nContent-Type: multipart/mixed; " + declared
    return head + b"\r\n\r\n" + (b"--" + boundary + b"\r\n\r\n") * n + b"--" + boundary + b"--\r\n"


def test_given_a_200kb_encoded_word_subject_then_too_complex_without_parsing() -> None:
    raw = _encoded_subject()

    assert precheck(raw) is Outcome.TOO_COMPLEX
    mail = parse_inbound(raw)
    assert mail.too_complex and mail.subject == "" and mail.from_address is None
    assert _authorize(mail=mail) is Outcome.TOO_COMPLEX


def test_given_300000_mime_parts_then_too_complex_and_the_headers_are_still_read() -> None:
    raw = _many_parts(300_000)

    assert precheck(raw) is Outcome.TOO_COMPLEX
    mail = parse_inbound(raw)
    assert mail.too_complex and mail.from_address == SENDER and mail.subject == "parts"
    assert _authorize(mail=mail) is Outcome.TOO_COMPLEX


def test_given_the_ses_headers_of_a_huge_subject_then_too_complex() -> None:
    subject = " ".join(["=?utf-8?q?a?="] * 15_000)
    mail = parse_ses_headers(
        [{"name": "From", "value": f"Sam <{SENDER}>"}, {"name": "Subject", "value": subject}], size=99
    )

    assert mail.too_complex and mail.size == 99
    assert parse_ses_headers([{"name": "From", "value": f"Sam <{SENDER}>"}], size=5).from_address == SENDER


@pytest.mark.parametrize("name", fixture_names())
def test_given_real_client_mail_then_no_cap_is_hit(name: str) -> None:
    assert precheck(load_eml(name)) is None


def test_given_caps_then_each_is_enforced_at_its_limit() -> None:
    assert precheck(_many_parts(9)) is None
    assert precheck(_many_parts(9), max_parts=10) is None  # 9 parts + the close
    assert precheck(_many_parts(10), max_parts=10) is Outcome.TOO_COMPLEX
    headers = "".join(f"X-H{i}: v\n" for i in range(20))
    assert precheck(f"{headers}\nbody".encode(), max_header_fields=20) is None
    assert precheck(f"{headers}X-More: v\n\nbody".encode(), max_header_fields=20) is Outcome.TOO_COMPLEX
    folded = "Subject: " + "\n ".join(["word"] * 100) + "\n\nbody"
    assert precheck(folded.encode(), max_field_bytes=1000) is None
    assert precheck(folded.encode(), max_field_bytes=400) is Outcome.TOO_COMPLEX
    assert precheck(folded.encode(), max_header_bytes=400) is Outcome.TOO_COMPLEX


def test_given_a_huge_field_in_a_nested_part_header_then_too_complex() -> None:
    params = "; ".join(["a=b"] * 20_000)
    raw = (
        f"From: <{SENDER}>\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        f"Content-Type: text/plain; {params}\n\nhi\n--b--\n"
    ).encode()

    assert precheck(raw) is Outcome.TOO_COMPLEX
    assert parse_inbound(raw).too_complex


def test_given_many_small_parameter_heavy_part_headers_then_too_complex() -> None:
    part = "--b\nContent-Type: text/plain" + "; a=b" * 80 + "\n\nhi\n"
    raw = (f"From: <{SENDER}>\nContent-Type: multipart/mixed; boundary=b\n\n" + part * 500 + "--b--\n").encode()

    assert precheck(raw) is Outcome.TOO_COMPLEX


def test_given_a_delivery_status_body_of_many_paragraphs_then_too_complex() -> None:
    raw = b"From: <a@b.example>\nContent-Type: message/delivery-status\n\n" + b"a: b\n\n" * 2000

    assert precheck(raw) is Outcome.TOO_COMPLEX


def test_given_an_attached_message_then_its_headers_count_too() -> None:
    inner = "Subject: " + " ".join(["=?utf-8?q?a?="] * 5000) + "\n\nbody\n"
    raw = (f"From: <{SENDER}>\nContent-Type: message/rfc822\n\n{inner}").encode()

    assert precheck(raw) is Outcome.TOO_COMPLEX
    assert precheck(raw.replace(b"message/rfc822", b"text/plain")) is None


def test_given_dash_lines_that_are_not_delimiters_then_they_do_not_count_as_parts() -> None:
    sql = "".join(f"-- comment {i}\nselect {i};\n" for i in range(3000))
    raw = (
        f"From: <{SENDER}>\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nhi\n"
        f"--b\nContent-Type: text/plain; name=dump.sql\n\n{sql}--b--\n"
    ).encode()

    assert precheck(raw) is None


@pytest.mark.parametrize(
    "declared",
    [b"boundary=b", b"BOUNDARY = b", b"boundary(comment)=b", b'boundary="=?utf-8?q?b?="', b"boundary*0=b"],
)
def test_given_a_boundary_declared_in_any_form_python_reads_then_its_parts_count(declared: bytes) -> None:
    assert precheck(_many_parts(1500, declared=declared)) is Outcome.TOO_COMPLEX


def test_given_hostile_bytes_then_precheck_never_raises() -> None:
    for raw in [b"", b"\n", b"--", b"\r\r\r", b"--\r--\r" * 10, b"\x00\xff" * 100, b"a:" + b"\n a" * 1000]:
        assert precheck(raw) in (None, Outcome.TOO_COMPLEX)
        parse_inbound(raw)


# --- R6: who may get a polite notice (audit 12) ------------------------------

_DKIM_OK = f"DKIM-Signature: v=1; a=rsa-sha256; d=example.net; s=s1;\n bh=x; b=y\nFrom: Sam <{SENDER}>"


@pytest.mark.parametrize(
    ("spf", "dkim", "dmarc", "headers", "envelope", "expected"),
    [
        # SPF pass: the envelope sender, whatever DKIM says
        ("PASS", "PASS", "PASS", _DKIM_OK, "bounce@mail.example.org", "bounce@mail.example.org"),
        ("PASS", "FAIL", "GRAY", f"From: <{SENDER}>", SENDER, SENDER),
        ("PASS", "FAIL", "FAIL", f"From: <{SENDER}>", SENDER, SENDER),
        # SPF pass for no real address: fall through to DKIM
        ("PASS", "FAIL", "PASS", f"From: <{SENDER}>", "", None),
        ("PASS", "FAIL", "PASS", f"From: <{SENDER}>", "MAILER-DAEMON@mx.example.net", None),
        ("PASS", "PASS", "PASS", _DKIM_OK, "<>", SENDER),
        # SPF fail: the From, only with an aligned DKIM pass and no DMARC fail
        ("FAIL", "PASS", "PASS", _DKIM_OK, "x@evil.example", SENDER),
        ("FAIL", "PASS", "GRAY", _DKIM_OK, "x@evil.example", SENDER),
        ("FAIL", "PASS", "PASS", _DKIM_OK.replace("d=example.net", "d=mail.example.net"), "", SENDER),
        ("FAIL", "PASS", "FAIL", _DKIM_OK, "x@evil.example", None),
        ("FAIL", "FAIL", "PASS", _DKIM_OK, "x@evil.example", None),
        ("GRAY", "PROCESSING_FAILED", "GRAY", _DKIM_OK, SENDER, None),
        ("FAIL", "PASS", "GRAY", _DKIM_OK.replace("d=example.net", "d=evil.example"), "", None),
        ("FAIL", "PASS", "GRAY", _DKIM_OK.replace("d=example.net", "d=notexample.net"), "", None),
        ("FAIL", "PASS", "GRAY", f"From: <{SENDER}>", "", None),  # no signature at all
        # a valid unaligned signature cannot vouch for a forged aligned one
        ("FAIL", "PASS", "GRAY", "DKIM-Signature: d=evil.example; b=z\n" + _DKIM_OK, "", None),
        # ...unless DMARC passed, which (SPF having failed) proves the aligned one
        ("FAIL", "PASS", "PASS", "DKIM-Signature: d=esp.example; b=z\n" + _DKIM_OK, "", SENDER),
        # never to a From that was refused
        (
            "FAIL",
            "PASS",
            "PASS",
            _DKIM_OK.replace(f"From: Sam <{SENDER}>", f"From: {SENDER} <m@example.net>"),
            "",
            None,
        ),
    ],
)
def test_given_verdicts_then_a_notice_goes_only_to_an_authenticated_address(
    spf: str, dkim: str, dmarc: str, headers: str, envelope: str, expected: str | None
) -> None:
    verdicts = Verdicts(spf, dkim, dmarc, "PASS", "PASS")

    assert notice_recipient(verdicts, _mail(headers + "\nSubject: hi"), envelope) == expected
