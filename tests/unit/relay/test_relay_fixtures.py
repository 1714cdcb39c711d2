"""Every fixture relays (parse -> anonymize -> personalize) without error or leak."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import MUTE_URL_PLACEHOLDER_HTML, MUTE_URL_PLACEHOLDER_TEXT
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.loader import DEFAULT_ADDRESSES, fixture_names, load_eml
from tests.fixtures.emails.scenario import MUTE_URL, RELAY_ADDRESS, people_for, relay

ADDRESSES = {k: v for k, v in DEFAULT_ADDRESSES.items() if k != "RELAY"}
PEOPLE = people_for(ADDRESSES)


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def test_given_the_fixture_folder_then_it_holds_every_client_and_edge_case() -> None:
    names = fixture_names()
    assert len([n for n in names if n.startswith("client_")]) >= 20
    for must in ("dsn_delivery_report.eml", "out_of_office.eml", "calendar_invite.eml"):
        assert must in names


@pytest.mark.parametrize("name", fixture_names())
def test_given_a_fixture_when_relayed_then_no_participant_address_leaks(name: str) -> None:
    out = relay(load_eml(name), PEOPLE)

    assert find_leaks(out, ADDRESSES.values()) == []


@pytest.mark.parametrize("name", fixture_names())
def test_given_a_fixture_when_relayed_then_the_copy_is_well_formed_and_muted_per_recipient(
    name: str,
) -> None:
    out = relay(load_eml(name), PEOPLE)
    message = _parse(out)

    assert message["From"].addresses[0].addr_spec == RELAY_ADDRESS
    assert message["List-Unsubscribe"] == f"<{MUTE_URL}>"
    assert message["Message-ID"] == "<m-2.k3x9q@relay.example.org>"
    assert MUTE_URL_PLACEHOLDER_TEXT.encode() not in out
    assert MUTE_URL_PLACEHOLDER_HTML.encode() not in out
    texts = [p.get_content() for p in message.walk() if p.get_content_type() == "text/plain"]
    assert any(MUTE_URL in t for t in texts) or any(
        MUTE_URL.replace("&", "&amp;") in p.get_content() for p in message.walk() if p.get_content_type() == "text/html"
    )
    assert all(line_len <= 998 for line_len in map(len, out.split(b"\r\n")))


def test_given_a_gmail_reply_when_relayed_then_quoted_addresses_become_display_names() -> None:
    out = _parse(relay(load_eml("gmail_alternative_quoted.eml"), PEOPLE))

    plain = next(p for p in out.walk() if p.get_content_type() == "text/plain").get_content()
    assert "Alice A <Alice A.> wrote:" in plain
    assert "Ask Bob (Bob B.)" in plain
    assert out["Subject"] == "Re: [Canvass Sat 10:00] Parking?"
    assert out["In-Reply-To"] == "<m-1.k3x9q@relay.example.org>"
    assert "gmail" not in str(out["References"])


def test_given_an_outlook_block_when_relayed_then_cc_lines_hide_everyone() -> None:
    out = _parse(relay(load_eml("outlook_from_sent_block.eml"), PEOPLE))

    html_part = next(p for p in out.walk() if p.get_content_type() == "text/html").get_content()
    assert "Bob B." in html_part and "Dave D." in html_part
    assert "Thread-Index" not in str(out.items())
    assert out["X-MS-Exchange-Organization-AuthAs"] is None


def test_given_an_address_in_a_filename_when_relayed_then_the_name_is_scrubbed() -> None:
    out = _parse(relay(load_eml("attachment_address_filename.eml"), PEOPLE))

    filenames = [f for p in out.walk() if (f := p.get_filename())]
    assert "map for Alice A..pdf" in filenames
    assert "contacts Bob B..csv" in filenames
    assert all("/" not in f and ".." not in f.split(" ")[0] for f in filenames)
    pdf = next(p for p in out.walk() if p.get_content_type() == "application/pdf")
    assert pdf.get_content().startswith(b"%PDF")


def test_given_inline_images_when_relayed_then_cid_references_still_resolve() -> None:
    out = _parse(relay(load_eml("inline_image_related.eml"), PEOPLE))

    image = next(p for p in out.walk() if p.get_content_type() == "image/png")
    cid = image["Content-ID"].strip("<>")
    html_part = next(p for p in out.walk() if p.get_content_type() == "text/html").get_content()
    assert f"cid:{cid}" in html_part
    assert cid.endswith("@relay.example.org")


def test_given_a_non_utf8_charset_when_relayed_then_text_is_readable_utf8() -> None:
    for name, word in [
        ("charset_iso8859_1.eml", "Grüße"),
        ("charset_windows_1252.eml", "“Smart quotes”"),
        ("charset_koi8_r.eml", "Привет"),
        ("charset_iso_2022_jp.eml", "こんにちは"),
    ]:
        out = _parse(relay(load_eml(name), PEOPLE))
        plain = next(p for p in out.walk() if p.get_content_type() == "text/plain")
        assert plain.get_content_charset() == "utf-8"
        assert word in plain.get_content(), name


def test_given_a_forwarded_message_when_relayed_then_its_headers_are_rebuilt() -> None:
    out = _parse(relay(load_eml("forwarded_rfc822.eml"), PEOPLE))

    inner = next(p for p in out.walk() if p.get_content_type() == "message/rfc822")
    attached = inner.get_content()
    assert attached["Subject"] == "Permit for Alice A."
    assert attached["From"] is None and attached["Cc"] is None
