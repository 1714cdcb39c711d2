"""Anonymized rendering (R4, R5, R10) and per-recipient personalization (R11)."""

from __future__ import annotations

import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import (
    MUTE_URL_PLACEHOLDER_HTML,
    MUTE_URL_PLACEHOLDER_TEXT,
    Person,
    anonymize,
    compose_subject,
    list_unsubscribe_headers,
    personalize,
)
from chalicelib.relay.parse import parse_inbound
from chalicelib.relay.placeholders import TEXT_SLOT_LEAD
from chalicelib.relay.scrub import HIDDEN, scrubber_for
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, WHEN, relay

JANE = Person("p1", "Jane D.", ("Jane.Doe@Example.org",))
BOB = Person("p2", "Bob B. (organizer)", ("bob@example.com", "bob.work@corp.example"))
PEOPLE = [JANE, BOB]
ALL = ["jane.doe@example.org", "bob@example.com", "bob.work@corp.example"]


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _raw(body: str, headers: str = "", ctype: str = "text/plain; charset=utf-8") -> bytes:
    return (
        "From: Jane Doe <Jane.Doe@Example.org>\nTo: k3x9q@relay.example.org\n"
        "Cc: bob@example.com\nReply-To: bob.work@corp.example\nSubject: Re: Parking\n"
        "Message-ID: <client-1@example.org>\nX-Originating-IP: 10.0.0.1\n"
        f"Received: from x by y\nMIME-Version: 1.0\nContent-Type: {ctype}\n{headers}\n{body}"
    ).encode()


def test_given_a_reply_when_anonymized_then_only_muster_headers_reach_the_top() -> None:
    out = _parse(relay(_raw("hi\n"), PEOPLE, author=JANE))

    assert str(out["From"]) == '"Jane D." <k3x9q@relay.example.org>'
    assert out["Reply-To"] == "k3x9q@relay.example.org"
    assert out["To"] == "k3x9q@relay.example.org"
    assert out["Cc"] is None and out["Received"] is None and out["X-Originating-IP"] is None
    assert out["List-Id"] == "Canvass – Sat 10.00 <k3x9q.relay.example.org>"
    assert out["List-Post"] == "<mailto:k3x9q@relay.example.org>"
    assert out["X-Loop"] == "relay.example.org"
    assert out["Auto-Submitted"] is None
    assert out["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert out["References"] == "<m-0.k3x9q@relay.example.org> <m-1.k3x9q@relay.example.org>"


def test_given_an_organizer_author_with_odd_name_then_from_is_quoted_properly() -> None:
    author = Person("p3", 'Zoë "Z" Q.\r\nBcc: x@y', ("zoe@example.org",))
    out = _parse(relay(_raw("hi\n"), [author], author=author))

    assert out["From"].addresses[0].display_name == "Zoë Z Q. Bcc xy"
    assert out["Bcc"] is None


def test_given_addresses_in_every_body_form_then_all_are_replaced() -> None:
    html_body = (
        '<html><body><p>Write <a href="mailto:JANE.DOE@example.org?subject=hi">me</a>, '
        "bob&#64;example.com, bob%40example.com, bob&commat;example.com, "
        "b&#111;b.work&#x40;corp.example, stranger@else.example</p></body></html>\n"
    )
    out = relay(_raw(html_body, ctype="text/html; charset=utf-8"), PEOPLE)

    assert find_leaks(out, [*ALL, "stranger@else.example"]) == []
    html_text = next(p for p in _parse(out).walk() if p.get_content_type() == "text/html")
    content = html_text.get_content()
    assert "mailto:Jane D.?subject=hi" in content
    assert "Bob B. (organizer), Bob B. (organizer), Bob B. (organizer)" in content
    assert HIDDEN in content


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Parking", "[Canvass Sat 10:00] Parking"),
        ("Re: Parking", "Re: [Canvass Sat 10:00] Parking"),
        ("RE: Re: AW: Parking", "Re: [Canvass Sat 10:00] Parking"),
        ("Re: [Canvass Sat 10:00] Parking", "Re: [Canvass Sat 10:00] Parking"),
        ("Re: [Canvass Sat 10:00] Re: [Canvass Sat 10:00] Parking", "Re: [Canvass Sat 10:00] Parking"),
        ("Fwd: Permit", "Fwd: [Canvass Sat 10:00] Permit"),
        ("", "[Canvass Sat 10:00] (no subject)"),
        ("Ask jane.doe@example.org", "[Canvass Sat 10:00] Ask Jane D."),
    ],
)
def test_given_a_subject_then_one_prefix_and_one_reply_tag(subject: str, expected: str) -> None:
    scrubber = scrubber_for([("Jane D.", ["jane.doe@example.org"])], keep_domain="relay.example.org")
    assert compose_subject(subject, "[Canvass Sat 10:00]", scrubber) == expected


def test_given_the_rendered_copy_then_placeholders_appear_literally_for_cheap_fanout() -> None:
    rendered = anonymize(
        parse_inbound(_raw("<p>hi</p>", ctype="text/html")),
        author=JANE,
        people=PEOPLE,
        chat=CHAT,
        message_id="<m@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )
    assert MUTE_URL_PLACEHOLDER_HTML.encode() in rendered
    assert MUTE_URL_PLACEHOLDER_TEXT.encode() not in rendered  # html-only mail: one footer


def test_given_two_recipients_when_personalized_then_each_sees_only_their_mute_url() -> None:
    rendered = anonymize(
        parse_inbound(_raw("hello\n")),
        author=JANE,
        people=PEOPLE,
        chat=CHAT,
        message_id="<m@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )
    url_a = "https://muster.example.org/mute?t=tokenA.sigA"
    url_b = "https://muster.example.org/mute?t=" + "B" * 150
    copy_a = _parse(personalize(rendered, mute_url=url_a, list_unsubscribe_headers=list_unsubscribe_headers(url_a)))
    copy_b = _parse(personalize(rendered, mute_url=url_b, list_unsubscribe_headers=list_unsubscribe_headers(url_b)))

    text_a = copy_a.get_content().replace("\r\n", "\n")
    text_b = copy_b.get_content().replace("\r\n", "\n")
    assert f"{TEXT_SLOT_LEAD}{url_a}\n" in text_a and url_b not in text_a
    assert f"{TEXT_SLOT_LEAD}{url_b}\n" in text_b
    assert copy_b["List-Unsubscribe"] == f"<{url_b}>"
    assert "appear" in text_a and "Jane D." in text_a


@pytest.mark.parametrize(
    ("name", "value"),
    [("List-Unsubscribe", "<https://x>\r\nBcc: a@b"), ("Bad Name", "x"), ("X", "é")],
)
def test_given_unsafe_per_recipient_headers_then_personalize_refuses(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        personalize(b"x", mute_url=MUTE_URL, list_unsubscribe_headers={name: value})


def test_given_a_mute_url_with_spaces_then_personalize_refuses() -> None:
    with pytest.raises(ValueError):
        personalize(b"x", mute_url="https://x/ y", list_unsubscribe_headers={})


def test_given_the_placeholder_in_inbound_text_then_it_cannot_be_hijacked() -> None:
    out = relay(_raw(f"try {MUTE_URL_PLACEHOLDER_TEXT} and {MUTE_URL_PLACEHOLDER_HTML}\n"), PEOPLE)
    body = _parse(out).get_content()
    assert body.count(MUTE_URL) == 1


def test_given_a_binary_attachment_containing_an_address_then_it_is_replaced_by_a_note() -> None:
    ctype = 'multipart/mixed; boundary="b"'
    body = (
        "--b\nContent-Type: text/plain\n\nsee file\n--b\n"
        "Content-Type: application/octet-stream; name=data.bin\n"
        "Content-Transfer-Encoding: base64\n\n"
        "AAECAwRib2JAZXhhbXBsZS5jb20ABQ==\n--b--\n"
    )
    out = relay(_raw(body, ctype=ctype), PEOPLE)
    assert find_leaks(out, ALL) == []
    assert "was removed" in str([p.get_content() for p in _parse(out).walk() if p.get_content_maintype() == "text"])


def test_given_an_attachment_only_message_then_a_footer_part_leads() -> None:
    raw = _raw("iVBORw0KGgo=\n", headers="Content-Transfer-Encoding: base64\n", ctype="image/png")
    out = _parse(relay(raw, PEOPLE))

    parts = [p.get_content_type() for p in out.walk()]
    assert parts == ["multipart/mixed", "text/plain", "image/png"]
    assert MUTE_URL in next(p for p in out.walk() if p.get_content_type() == "text/plain").get_content()


@pytest.mark.parametrize("size", [5_000, 100_000, 5_000_000])
def test_given_a_large_message_then_personalize_costs_a_tenth_of_a_parse(size: int) -> None:
    line = "Lorem ipsum dolor sit amet, bob@example.com consectetur adipiscing elit.\n"
    raw = _raw(line * (size // len(line)))
    rendered = anonymize(
        parse_inbound(raw),
        author=JANE,
        people=PEOPLE,
        chat=CHAT,
        message_id="<m@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )
    headers = list_unsubscribe_headers(MUTE_URL)

    def best(fn: object, rounds: int) -> float:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    stdlib = best(lambda: BytesParser(policy=policy.default).parsebytes(raw).as_bytes(), 3)
    per_recipient = best(lambda: personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=headers), 20)
    assert per_recipient <= 0.1 * stdlib


def test_given_a_huge_inline_data_uri_then_scrubbing_stays_linear() -> None:
    blob = "A" * 300_000
    html_body = f"<p>ask bob@example.com</p><img src='data:image/png;base64,{blob}'>\n"
    start = time.perf_counter()

    out = relay(_raw(html_body, ctype="text/html; charset=utf-8"), PEOPLE)

    assert time.perf_counter() - start < 3.0
    assert find_leaks(out, ALL) == []


def test_given_parts_with_stray_headers_then_only_safelisted_content_headers_survive() -> None:
    from chalicelib.relay.anonymize import Person
    from chalicelib.relay.headers import SAFELIST

    body = (
        "--b\nContent-Type: text/plain; charset=utf-8\nContent-Description: from jane.doe@example.org\n"
        "X-Attachment-Id: f_jane\nContent-Location: file:///Users/jane/notes.txt\n\nHello\n"
        '--b\nContent-Type: application/pdf; name="map.pdf"\nContent-Disposition: attachment; filename="map.pdf"\n'
        "Content-Transfer-Encoding: base64\nX-Uploaded-By: jane.doe@example.org\n\nJVBERi0xLjQK\n--b--\n"
    )
    jane = Person(key="p-jane", display_name="Jane D.", addresses=("jane.doe@example.org",))
    out = _parse(relay(_raw(body, ctype="multipart/mixed; boundary=b"), [jane]))
    for part in list(out.walk())[1:]:
        assert {k.lower() for k in part} <= SAFELIST, dict(part.items())


def test_given_the_split_modules_then_the_public_names_still_come_from_anonymize() -> None:
    import inspect

    from chalicelib.relay import anonymize as module

    for name in (
        "Person",
        "ChatContext",
        "CopyTemplate",
        "personalize",
        "list_unsubscribe_headers",
        "footer_text",
        "decode_bytes",
        "part_text",
        "compose_subject",
        "set_envelope_headers",
        "set_list_headers",
        "OUTPUT_POLICY",
        "MUTE_URL_PLACEHOLDER_TEXT",
        "MUTE_URL_PLACEHOLDER_HTML",
    ):
        assert hasattr(module, name), name
    params = inspect.signature(module.anonymize).parameters
    assert list(params) == ["mail", "author", "people", "chat", "message_id", "in_reply_to", "references", "date"]
    assert callable(module.CopyTemplate.of) and callable(module.CopyTemplate.render)
