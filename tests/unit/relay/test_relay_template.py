"""Item 16: the mute URL is spliced only at footer slots, whatever names and text say."""

from __future__ import annotations

import base64
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import (
    MUTE_URL_PLACEHOLDER_HTML,
    MUTE_URL_PLACEHOLDER_TEXT,
    ChatContext,
    CopyTemplate,
    Person,
    anonymize,
    list_unsubscribe_headers,
    personalize,
)
from chalicelib.relay.parse import parse_inbound
from chalicelib.relay.placeholders import TEXT_SLOT_LEAD, strip_placeholders
from chalicelib.relay.template import HTML, TEXT
from tests.fixtures.emails import hostile
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import RELAY_ADDRESS, WHEN

LEAD = TEXT_SLOT_LEAD.rstrip("\n")
MUTE_URL = "https://muster.example.org/mute/tok.SIG=="
TOP_HEADERS = {
    "list-unsubscribe",
    "list-unsubscribe-post",
    "content-type",
    "from",
    "to",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "list-id",
    "list-post",
    "x-loop",
    "x-auto-response-suppress",
}
CHAT = ChatContext(
    chat_id="k3x9q",
    relay_address=RELAY_ADDRESS,
    list_name=f"Canvass {MUTE_URL_PLACEHOLDER_TEXT}",
    subject_prefix=f"[Canvass {MUTE_URL_PLACEHOLDER_HTML}]",
)


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _copy(raw: bytes, author: Person, people: list[Person]) -> bytes:
    rendered = anonymize(
        parse_inbound(raw),
        author=author,
        people=people,
        chat=CHAT,
        message_id="<m-1.k3x9q@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )
    return personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))


def _assert_well_formed(copy: bytes) -> EmailMessage:
    head, _, _ = copy.partition(b"\r\n\r\n")
    assert MUTE_URL.encode() not in head.replace(b"<" + MUTE_URL.encode() + b">", b"")
    message = _parse(copy)
    assert {k.lower() for k in message} == TOP_HEADERS
    assert message["From"].addresses[0].addr_spec == RELAY_ADDRESS
    assert message["List-Unsubscribe"] == f"<{MUTE_URL}>"
    texts = {p.get_content_type(): p.get_content() for p in message.walk() if p.get_content_maintype() == "text"}
    assert texts["text/plain"].count(MUTE_URL) == 1
    if "text/html" in texts:
        assert texts["text/html"].count(MUTE_URL.replace("=", "&#x3D;")) + texts["text/html"].count(MUTE_URL) == 1
    for part in message.walk():
        if part.get_content_maintype() != "multipart" and part.get_content_type() not in ("text/plain", "text/html"):
            payload = part.get_payload(decode=True) or b""
            assert MUTE_URL.encode() not in payload
    assert MUTE_URL_PLACEHOLDER_TEXT.encode() not in copy and MUTE_URL_PLACEHOLDER_HTML.encode() not in copy
    return message


@pytest.mark.parametrize("placeholder", [MUTE_URL_PLACEHOLDER_TEXT, MUTE_URL_PLACEHOLDER_HTML])
def test_given_a_participant_named_like_the_placeholder_then_every_copy_keeps_its_headers(placeholder: str) -> None:
    ann = Person("p1", placeholder, ("ann@example.org",))
    bob = Person("p2", f"{placeholder} B.", ("bob@example.com",))
    raw = hostile.message(
        [
            hostile.part("text/plain; charset=utf-8", f"Ask bob@example.com or ann@example.org. {placeholder}\r\n"),
            hostile.part("text/html; charset=utf-8", f"<p>Ask <a href='mailto:bob@example.com'>{placeholder}</a></p>"),
            hostile.attachment("text/csv", f"{placeholder}.csv", f"{placeholder},bob@example.com\r\n".encode()),
        ],
        sender="ann@example.org",
        to=RELAY_ADDRESS,
        subject=f"{placeholder} Re: {placeholder}",
        subtype="mixed",
    )
    for author in (ann, bob):  # posts, and receives the other's post
        copy = _copy(raw, author, [ann, bob])
        message = _assert_well_formed(copy)
        assert find_leaks(copy, ["ann@example.org", "bob@example.com"]) == []
        assert "MUSTERMUTEURL" not in str(message["From"]) + str(message["Subject"]) + str(message["List-Id"])


def test_given_nested_placeholder_stems_then_none_is_rebuilt() -> None:
    nested = "MUSTERMUTE" + "MUSTERMUTEURL" + "URLTEXTPLACEHOLDERXXXX"
    deep = "MUSTER" * 3 + "MUSTERMUTEURL" + "MUTEURL" * 3 + "HTMLPLACEHOLDERXXXX"
    assert "MUSTERMUTEURL" not in strip_placeholders(nested)
    assert "MUSTERMUTEURL" not in strip_placeholders(deep)
    ann = Person("p1", nested, ("ann@example.org",))
    raw = hostile.message(
        [hostile.part("text/plain; charset=utf-8", f"{nested}\r\n{deep}\r\n{LEAD}\r\n{nested}\r\n")],
        sender="ann@example.org",
        to=RELAY_ADDRESS,
        subject=nested,
    )
    _assert_well_formed(_copy(raw, ann, [ann]))


def test_given_a_binary_whose_base64_ends_in_the_placeholder_then_it_is_not_spliced() -> None:
    # 57 bytes fill one 76-character base64 line; the next line is the placeholder.
    data = b"\xff" * 57 + base64.b64decode(MUTE_URL_PLACEHOLDER_TEXT)
    ann = Person("p1", "Ann A.", ("ann@example.org",))
    raw = hostile.message(
        [hostile.part("text/plain", "see\r\n"), hostile.attachment("application/x-thing", "t.bin", data)],
        sender="ann@example.org",
        to=RELAY_ADDRESS,
    )
    copy = _copy(raw, ann, [ann])

    (blob,) = [p for p in _parse(copy).walk() if p.get_content_type() == "application/x-thing"]
    assert blob.get_payload(decode=True) == data
    assert copy.count(MUTE_URL.encode()) == 1  # List-Unsubscribe only; the text URL is QP-wrapped


def test_given_placeholders_outside_footer_slots_then_the_template_leaves_them() -> None:
    rendered = (
        f"Subject: {MUTE_URL_PLACEHOLDER_TEXT}\r\nX: {LEAD}\r\n {MUTE_URL_PLACEHOLDER_TEXT}\r\n\r\n"
        f"{MUTE_URL_PLACEHOLDER_TEXT}\r\n{LEAD}\r\n{MUTE_URL_PLACEHOLDER_TEXT}\r\n"
        f'<a href=3D"{MUTE_URL_PLACEHOLDER_HTML}">x</a> {MUTE_URL_PLACEHOLDER_HTML}\r\n'
    ).encode()
    template = CopyTemplate.of(rendered)

    assert template.slots == (TEXT, HTML)
    out = template.render(mute_url="https://x.example/m", list_unsubscribe_headers={})
    assert out.count(b"https://x.example/m") == 2
    assert out.count(MUTE_URL_PLACEHOLDER_TEXT.encode()) == 3 and out.count(MUTE_URL_PLACEHOLDER_HTML.encode()) == 1
