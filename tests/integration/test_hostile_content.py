"""Hostile message *content* through the public path (R5, R9, R11).

SES receipt (S3 object + Lambda action) -> inbound_email -> render -> SQS ->
deliver -> SES, against moto. One test per audit item: hostile charsets (8),
keys and signatures (14), text-like attachments (15), names equal to the mute
placeholders (16) and disguised address spellings (17). Every outbound copy must
render, parse, and leak no real address in any form the leak checker knows.
"""

from __future__ import annotations

import binascii
import html
from email.message import EmailMessage
from typing import Any

import pytest

from chalicelib.relay.anonymize import MUTE_URL_PLACEHOLDER_HTML, MUTE_URL_PLACEHOLDER_TEXT
from tests.fixtures.emails import hostile
from tests.fixtures.emails.leakcheck import find_leaks
from tests.integration.world import Sent, World, signup_body

ORGANIZER = "olive0@org.example"
STRANGER = "stranger.person@elsewhere.example"
ACTIVE = ("registered", "confirmed", "attended", "registered")


def addr(name: str) -> str:
    return f"{name}@people.example"


REAL = [ORGANIZER, STRANGER, *(addr(f"ann{n}") for n in range(len(ACTIVE)))]


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    """An open chat: one organizer and four active signups (ann0..ann3)."""
    return world.open_chat(ACTIVE)


def relayed(world: World) -> list[Sent]:
    return world.relayed()


def post(
    world: World, chat: dict[str, Any], sender: str, parts: list[str], subject: str = "Hostile content", others: int = 4
) -> list[Sent]:
    """``sender`` posts a multipart message; returns the copies it produced."""
    before = len(relayed(world))
    raw = hostile.message(parts, sender=sender, to=chat["address"], subject=subject)
    assert world.receive(raw, sender=sender, to=[chat["address"]]) == {"outcomes": ["relayed"]}
    world.drain()
    copies = relayed(world)[before:]
    assert len(copies) == others  # everyone else, organizer included
    return copies


def texts(copy: Sent) -> str:
    return "\n".join(
        p.get_content() for p in copy.message.walk() if p.get_content_maintype() == "text" and not p.is_multipart()
    )


def assert_clean(copies: list[Sent], real: list[str] = REAL) -> None:
    for copy in copies:
        message = copy.message
        assert message["From"].addresses[0].addr_spec.endswith("@muster.test")
        assert message.get_body(("plain", "html")) is not None
        assert find_leaks(copy.raw, real) == [], copy.to


def test_item8_hostile_charsets_relay_with_fallback_decoding(world: World, chat: dict[str, Any]) -> None:
    body = f"Hi +2D0- \\ud800 +3AA- \\udc00, ask {addr('ann1')}\r\n"
    parts = [
        hostile.part(f"text/plain; charset={charset}", body, cte="8bit")
        for charset in ("utf-7", "unicode-escape", "raw-unicode-escape")
    ]
    copies = post(world, chat, addr("ann0"), parts)

    assert_clean(copies)
    for copy in copies:
        text = texts(copy)
        assert text.count("Hi +2D0- \\ud800 +3AA- \\udc00, ask Ann1 A.") == 3  # decoded as UTF-8, verbatim
        copy.raw.decode("ascii")


def test_item14_keys_and_signatures_never_pass(world: World, chat: dict[str, Any]) -> None:
    key = hostile.armored_key("Ann Zero", addr("ann0"))
    stranger_key = hostile.armored_key("Stranger", STRANGER)
    parts = [
        hostile.part("text/plain; charset=utf-8", f"My key is attached.\r\n\r\n{stranger_key}\r\nBye\r\n"),
        hostile.attachment("application/pgp-keys", "OpenPGP_0xDEADBEEF.asc", key.encode()),
        hostile.attachment("application/octet-stream", "stranger.asc", stranger_key.encode()),
        hostile.attachment("application/pkcs7-signature", "smime.p7s", b"\x30\x82\x01\x00" + STRANGER.encode()),
        hostile.part("text/plain; charset=utf-8", f"signed\r\n{hostile.pgp_signature()}"),
    ]
    copies = post(world, chat, addr("ann0"), parts)

    assert_clean(copies)
    for copy in copies:
        text = texts(copy)
        assert text.count("An OpenPGP key was removed: keys carry their owner's email address.") == 3
        assert "BEGIN PGP" not in copy.raw.decode("ascii")
        assert all(
            p.get_content_type() not in ("application/pgp-keys", "application/pkcs7-signature")
            for p in copy.message.walk()
        )


def test_item15_text_like_attachments_are_scrubbed_and_binaries_checked(world: World, chat: dict[str, Any]) -> None:
    invite = hostile.ics(addr("ann0"), STRANGER)
    csv = f"name,email\r\nAnn One,{addr('ann1')}\r\nStranger,{STRANGER}\r\n"
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n<</Author (" + addr("ann2").upper().encode("utf-16-be") + b")>>\n%%EOF\n"
    parts = [
        hostile.part("text/plain; charset=utf-8", "Invitation: Canvass debrief\r\n"),
        hostile.attachment("application/ics", "invite.ics", invite.encode()),
        hostile.part("text/x-vcalendar; charset=utf-8", invite, cte="8bit"),
        hostile.attachment("application/octet-stream", "ann.vcf", hostile.vcard(addr("ann3")).encode()),
        hostile.attachment("application/octet-stream", "roster.txt", csv.encode("utf-16")),
        hostile.attachment("text/plain; charset=utf-16le", "roster2.csv", csv.encode("utf-16-le")),
        hostile.attachment("application/pdf", "minutes.pdf", pdf),
    ]
    copies = post(world, chat, addr("ann0"), parts)

    assert_clean(copies)
    for copy in copies:
        by_name = {p.get_filename(): p for p in copy.message.walk() if p.get_filename()}
        assert set(by_name) == {"invite.ics", "ann.vcf", "roster.txt", "roster2.csv"}
        assert by_name["invite.ics"].get_content_type() == "application/ics"
        payload = by_name["invite.ics"].get_payload(decode=True)
        assert isinstance(payload, bytes) and "mailto:Ann0 A." in payload.decode().replace("\r\n ", "")
        assert "An attachment was removed here because it contained a participant's email address." in texts(copy)


def _header_names(message: EmailMessage) -> list[str]:
    return sorted(k.lower() for k in message)


def _assert_mute_url_only_in_footers(copy: Sent) -> None:
    message = copy.message
    url = str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    head = copy.raw.partition(b"\r\n\r\n")[0]
    assert head.count(url.encode()) == 1 and b"MUSTERMUTEURL" not in copy.raw
    plain = message.get_body(("plain",))
    assert plain is not None and plain.get_content().count(url) == 1
    rich = message.get_body(("html",))
    if rich is not None:
        assert rich.get_content().count(html.escape(url)) == 1
    for part in message.walk():
        if not part.is_multipart() and part.get_content_type() not in ("text/plain", "text/html"):
            assert url.encode() not in (part.get_payload(decode=True) or b"")


def test_item16_participants_named_like_the_placeholders_post_and_receive(world: World, chat: dict[str, Any]) -> None:
    for n, name in ((10, MUTE_URL_PLACEHOLDER_TEXT), (11, MUTE_URL_PLACEHOLDER_HTML)):
        body = signup_body(n, "registered")
        body["person"]["first_name"] = name
        assert world.put_signup("e1", f"s{n}", body).status_code in (200, 201)
    world.drain()
    world.kickoffs = len(world.sent())  # type: ignore[attr-defined]
    baseline = post(world, chat, addr("ann0"), [hostile.part("text/plain", "normal\r\n")], others=6)[0]
    expected = _header_names(baseline.message)
    mail_parts = [
        hostile.part("text/plain; charset=utf-8", f"Hello {MUTE_URL_PLACEHOLDER_TEXT}, ask {addr('ann10')}\r\n"),
        hostile.part(
            "text/html; charset=utf-8", f"<p>{MUTE_URL_PLACEHOLDER_HTML} <a href='mailto:{addr('ann11')}'>x</a></p>"
        ),
        hostile.attachment("text/csv", f"{MUTE_URL_PLACEHOLDER_TEXT}.csv", f"{MUTE_URL_PLACEHOLDER_HTML}\r\n".encode()),
    ]
    for sender in (addr("ann10"), addr("ann11"), addr("ann0")):
        before = len(relayed(world))
        raw = hostile.message(mail_parts, sender=sender, to=chat["address"], subject=f"{MUTE_URL_PLACEHOLDER_TEXT} hi")
        assert world.receive(raw, sender=sender, to=[chat["address"]]) == {"outcomes": ["relayed"]}
        world.drain()
        copies = relayed(world)[before:]
        assert sorted(c.to for c in copies) == sorted(
            {ORGANIZER, *(addr(f"ann{n}") for n in (0, 1, 2, 3, 10, 11))} - {sender}
        )
        urls = set()
        for copy in copies:
            assert _header_names(copy.message) == expected
            assert copy.message["From"].addresses[0].addr_spec == chat["address"]
            _assert_mute_url_only_in_footers(copy)
            urls.add(str(copy.message["List-Unsubscribe"]))
        assert len(urls) == len(copies)  # one mute URL per recipient
        assert_clean(copies, [*REAL, addr("ann10"), addr("ann11")])


def test_item17_disguised_spellings_are_normalized_before_scrubbing(world: World, chat: dict[str, Any]) -> None:
    ann1, ann2 = addr("ann1"), addr("ann2")
    uu_lines = [binascii.b2a_uu(f"call {ann2}".encode()).decode().rstrip("\n"), "`"]
    plain = (
        f"Ask {hostile.soft_hyphen(ann1)}, {hostile.zero_width(ann2)}, {hostile.fullwidth(ORGANIZER)},\r\n"
        f"{hostile.plus_variant(ann1)}, {ann2}.{chat['address'].split('@')[1]} or ann1\u00ad@people.example.\r\n"
        "begin 644 phone.txt\r\n" + "\r\n".join(uu_lines) + "\r\nend\r\n"
    )
    rich = (
        f'<p><a href="mailto:{hostile.entity_of_percent(ann1)}">{hostile.long_entities(ann2)}</a> '
        f'{hostile.soft_hyphen_entity(ORGANIZER)} <a href="mailto:{hostile.percent(STRANGER)}">x</a> '
        f"{hostile.fullwidth(STRANGER)} ann1&#00000064;people.example</p>"
    )
    parts = [
        hostile.part("text/plain; charset=utf-8", plain, cte="8bit"),
        hostile.part("text/html; charset=utf-8", rich, cte="8bit"),
        hostile.attachment("application/pdf", 'ann1@people.exa"mple.pdf', b"%PDF-1.4 x"),
        hostile.attachment("application/pdf", "ann2@people.example\u200b.pdf", b"%PDF-1.4 y"),
    ]
    copies = post(world, chat, addr("ann0"), parts, subject=f"Re: ask {hostile.soft_hyphen(ann1)}")

    assert_clean(copies)
    for copy in copies:
        assert str(copy.message["Subject"]).endswith("ask Ann1 A.")
        text = texts(copy)
        assert "A uuencoded file was removed here" in text and "begin 644" not in text
        names = sorted(p.get_filename() or "" for p in copy.message.walk() if p.get_filename())
        assert names == ["Ann1 A..pdf", "Ann2 A..pdf"]
