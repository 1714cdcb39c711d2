"""Items 17 and 19: normalize, then scrub, then clean; the binary scan is linear."""

from __future__ import annotations

import binascii
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import Person
from chalicelib.relay.identity import UUENCODE_NOTE
from chalicelib.relay.normalize import remove_invisible
from chalicelib.relay.scrub import HIDDEN, scrubber_for
from tests.fixtures.emails import hostile
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import RELAY_ADDRESS, RELAY_DOMAIN, relay

BOB = "bob@example.com"
SCRUBBER = scrubber_for([("Bob B.", [BOB])], keep_domain=RELAY_DOMAIN)
PEOPLE = [Person("p1", "Ann A.", ("ann@example.org",)), Person("p2", "Bob B.", (BOB,))]


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("bob&#00000064;example.com", id="zero-padded-decimal-entity"),
        pytest.param("bob&#x0000000040;example.com", id="zero-padded-hex-entity"),
        pytest.param(hostile.long_entities(BOB), id="every-char-long-entity"),
        pytest.param("bob&#37;40example.com", id="entity-of-percent"),
        pytest.param("bob&amp;#64;example.com", id="entity-of-entity"),
        pytest.param("bob%2540example.com", id="double-percent"),
        pytest.param("bob&shy;@example.com", id="shy-entity"),
        pytest.param("bob\u00ad@example.com", id="soft-hyphen"),
        pytest.param("b\u200bob@example.com", id="zwsp"),
        pytest.param("bob\u200c@exa\u200dmple.com", id="zwnj-zwj"),
        pytest.param("bob@\u2060example.com", id="word-joiner"),
        pytest.param("\ufeffbob@example.com\ufeff", id="bom"),
        pytest.param("ｂｏｂ＠example.com", id="fullwidth"),
        pytest.param(hostile.fullwidth(BOB), id="all-fullwidth"),
        pytest.param("bob﹫example.com", id="small-commercial-at"),
        pytest.param("ｂｏｂ％40example.com", id="fullwidth-percent"),
        pytest.param("bob%EF%BC%A0example.com", id="percent-utf8-fullwidth-at"),
        pytest.param(hostile.zero_width(BOB), id="zero-width-mix"),
        pytest.param("BOB+shifts@Example.COM", id="plus-variant"),
    ],
)
@pytest.mark.parametrize("is_html", [False, True], ids=["text", "html"])
def test_given_a_disguised_participant_address_then_it_becomes_the_name(spelling: str, is_html: bool) -> None:
    out = SCRUBBER.scrub(f"write to {spelling} today", is_html=is_html)

    assert remove_invisible(out) == "write to Bob B. today"  # invisible characters around it may stay


def test_given_an_entity_of_a_percent_escape_in_a_mailto_href_then_it_is_replaced() -> None:
    html = '<a href="mailto:bob&#37;40example.com?subject=hi">Bob</a>'
    raw = hostile.message([hostile.part("text/html; charset=utf-8", html)], sender="ann@example.org", to=RELAY_ADDRESS)
    out = relay(raw, PEOPLE)

    assert find_leaks(out, [BOB]) == []
    assert 'href="mailto:Bob B.?subject=hi"' in _parse(out).get_body(("html",)).get_content()


@pytest.mark.parametrize(
    "domain", [f"example.com.{RELAY_DOMAIN}", f"example.com.sub.{RELAY_DOMAIN}", f"x{RELAY_DOMAIN}"]
)
def test_given_an_address_below_or_beside_the_relay_domain_then_it_is_not_kept(domain: str) -> None:
    assert SCRUBBER.scrub(f"ask bob@{domain}") != f"ask bob@{domain}"
    assert SCRUBBER.scrub(f"ask {RELAY_ADDRESS}") == f"ask {RELAY_ADDRESS}"
    assert SCRUBBER.scrub(f"ask {RELAY_ADDRESS.upper()}") == f"ask {RELAY_ADDRESS.upper()}"


def test_given_an_address_below_the_relay_domain_then_the_relayed_copy_hides_it() -> None:
    raw = hostile.message(
        [hostile.part("text/plain; charset=utf-8", f"ask stranger@elsewhere.example.{RELAY_DOMAIN}\r\n")],
        sender="ann@example.org",
        to=RELAY_ADDRESS,
    )
    text = _parse(relay(raw, PEOPLE)).get_body(("plain",)).get_content()  # type: ignore[union-attr]

    assert f"ask {HIDDEN}" in text and "stranger" not in text


@pytest.mark.parametrize(
    "filename",
    [
        'bob@exa"mple.com.pdf',
        'bob"@example.com.pdf',
        "bob@example<.com.pdf",
        "b|ob@example.com.pdf",
        "bob@exa\u00admple.com.pdf",
        "ｂｏｂ＠example.com.pdf",
        "bob@example.com\u200b.pdf",
    ],
)
def test_given_an_attachment_name_that_spells_an_address_once_cleaned_then_it_is_scrubbed(filename: str) -> None:
    raw = hostile.message(
        [hostile.part("text/plain", "see file\r\n"), hostile.attachment("application/pdf", filename, b"%PDF-1.4 x")],
        sender="ann@example.org",
        to=RELAY_ADDRESS,
    )
    out = relay(raw, PEOPLE)

    names = [p.get_filename() for p in _parse(out).walk() if p.get_filename()]
    assert find_leaks(out, [BOB]) == []
    assert len(names) == 1 and names[0].endswith(".pdf") and "Bob B." in names[0]


def test_given_a_uuencoded_block_then_it_is_removed_with_a_note() -> None:
    payload = f"contact {BOB} or stranger@elsewhere.example\n".encode()
    lines = [binascii.b2a_uu(payload[i : i + 45]).decode().rstrip("\n") for i in range(0, len(payload), 45)]
    block = "\r\n".join(["begin 644 contacts.txt", *lines, "`", "end"])
    assert binascii.a2b_uu(lines[0] + "\n").startswith(b"contact bob@")  # the block really holds the address
    body = f"Before.\r\n{block}\r\nAfter.\r\n"
    raw = hostile.message([hostile.part("text/plain; charset=utf-8", body)], sender="ann@example.org", to=RELAY_ADDRESS)

    text = _parse(relay(raw, PEOPLE)).get_body(("plain",)).get_content()  # type: ignore[union-attr]

    assert "Before." in text and "After." in text and UUENCODE_NOTE.strip() in text
    assert "begin 644" not in text and lines[0] not in text


def test_given_many_participants_at_one_domain_then_the_binary_scan_finds_exactly_the_known() -> None:
    people = [(f"Ann{i} A.", [f"ann{i}@people.example"]) for i in range(2000)]
    scrubber = scrubber_for(people, keep_domain=RELAY_DOMAIN)
    noise = b"".join(
        b"\x00\xff" + f"other{i}@people.example ann{i}@people.examplf x{i}nn@people.example ".encode()
        for i in range(2000)
    )

    assert scrubber.binary_mentions_known(noise) is False
    for needle in (
        b"ANN1999@PEOPLE.EXAMPLE",
        b"zzann7+tag@people.example.org",
        "ann42@people.example".encode("utf-16-be"),
    ):
        assert scrubber.binary_mentions_known(noise + needle) is True
    assert scrubber.binary_mentions_known(noise + b"ann2000@people.example") is False
    assert scrubber.binary_mentions_known(noise + b"nn7@people.example") is False


@pytest.mark.parametrize("spelling", ["bob\u00ad@example.com", "bob@exa\u200bmple.com", "ｂｏｂ＠example.com"])
def test_given_a_disguised_address_in_the_subject_then_it_is_scrubbed(spelling: str) -> None:
    raw = hostile.message(
        [hostile.part("text/plain", "hi\r\n")],
        sender="ann@example.org",
        to=RELAY_ADDRESS,
        subject=hostile.b64(f"Re: ask {spelling} now".encode()).strip().join(["=?utf-8?b?", "?="]),
    )
    out = relay(raw, PEOPLE)

    assert _parse(out)["Subject"] == "Re: [Canvass Sat 10:00] ask Bob B. now"


def _b(text: str) -> str:
    return "=?utf-8?b?" + binascii.b2a_base64(text.encode(), newline=False).decode() + "?="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"write to {_b(BOB)} today", "write to Bob B. today", id="one-word"),
        pytest.param("write =?utf-8?q?bob?= =?utf-8?q?=40example.com?= now", "write Bob B. now", id="adjacent-words"),
        pytest.param(f"ask {_b(_b(BOB))}", "ask Bob B.", id="nested-word"),
        pytest.param(f"ask {_b('carol@elsewhere.example')}", f"ask {HIDDEN}", id="unknown-address"),
        pytest.param("=?utf-8?q?caf=C3=A9?= at 9", "=?utf-8?q?caf=C3=A9?= at 9", id="nothing-to-hide-kept-as-written"),
        pytest.param("x =?no-such-charset?b?Ym9i?= y", "x =?no-such-charset?b?Ym9i?= y", id="unknown-charset-kept"),
        # a word that does not decode is itself again: it once recursed forever
        pytest.param("x =?utf-8?b?A?= y", "x =?utf-8?b?A?= y", id="bad-base64-kept"),
        # codecs no mail uses ("idna" refuses errors="replace") go through the allowlist
        pytest.param("=?idna?q?bob=40example.com?= at 9", "Bob B. at 9", id="idna-charset"),
        pytest.param("=?punycode?b?" + _b(BOB)[10:-2] + "?=", "Bob B.", id="punycode-charset"),
        pytest.param(f"=?utf-8?b?A?= {_b(BOB)}", "=?utf-8?b?A?= Bob B.", id="bad-word-beside-a-good-one"),
    ],
)
def test_given_an_encoded_word_in_a_body_then_what_it_decodes_to_is_scrubbed(text: str, expected: str) -> None:
    assert SCRUBBER.scrub(text) == expected
    assert SCRUBBER.scrub(f"<p>{text}</p>", is_html=True) == f"<p>{expected.replace(HIDDEN, '[address hidden]')}</p>"


def test_given_a_number_in_an_encoded_word_then_it_is_scrubbed() -> None:
    scrubber = scrubber_for([], keep_domain=RELAY_DOMAIN, phones=[("Ann A.", ["+14155550101"])])
    assert scrubber.scrub("call =?utf-8?q?415-555-0101?= tonight") == "call Ann A. tonight"


def test_given_encoded_words_nested_deeper_than_any_client_then_the_token_is_hidden() -> None:
    from chalicelib.relay.scrub import HIDDEN_TEXT, MAX_WORD_DEPTH

    word = BOB
    for _ in range(MAX_WORD_DEPTH):
        word = _b(word)
    assert SCRUBBER.scrub(f"x {word} y") == "x Bob B. y"  # as deep as we decode
    for _ in range(30):
        word = _b(word)
    assert SCRUBBER.scrub(f"x {word} y") == f"x {HIDDEN_TEXT} y"  # deeper: hidden, not a RecursionError
