"""Item 15: every attachment whose content is text is scrubbed, whatever its declared type;
opaque binaries are checked for every spelling of a participant's address."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import REMOVED_ATTACHMENT_NOTE, Person
from chalicelib.relay.scrub import HIDDEN
from tests.fixtures.emails import hostile
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import RELAY_ADDRESS, relay

ANN = Person("p1", "Ann A.", ("ann@example.org",))
BOB = Person("p2", "Bob B.", ("bob.builder@example.com",))
PEOPLE = [ANN, BOB]
BOB_ADDR = "bob.builder@example.com"
STRANGER = "stranger.person@elsewhere.example"
REAL = ["ann@example.org", BOB_ADDR, STRANGER]
ICS = hostile.ics(BOB_ADDR, STRANGER)
VCF = hostile.vcard(BOB_ADDR)
CSV = f"name,email\r\nBob,{BOB_ADDR}\r\nStranger,{STRANGER}\r\n"


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _mail(*parts: str) -> bytes:
    body = hostile.part("text/plain; charset=utf-8", "See attached.\r\n")
    return hostile.message([body, *parts], sender="ann@example.org", to=RELAY_ADDRESS)


def _attachment_text(out: bytes, filename: str | None) -> tuple[EmailMessage, str]:
    message = _parse(out)
    parts = [p for p in message.walk() if not p.is_multipart()]
    found = next(
        p for p in parts if (p.get_filename() == filename if filename else p.get_content_type() != "text/plain")
    )
    payload = found.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return found, payload.decode(found.get_content_charset() or "utf-8")


TEXT_LIKE = [
    pytest.param("application/ics", "invite.ics", ICS.encode(), "application/ics", id="google-application-ics"),
    pytest.param("text/x-vcalendar", "invite.vcs", ICS.encode(), "text/x-vcalendar", id="text-x-vcalendar"),
    pytest.param(
        "application/octet-stream", "invite.ics", ICS.encode(), "application/octet-stream", id="ics-as-octet-stream"
    ),
    pytest.param(
        "application/octet-stream", "bob.vcf", VCF.encode(), "application/octet-stream", id="vcf-as-octet-stream"
    ),
    pytest.param("text/directory", "bob.vcf", VCF.encode(), "text/directory", id="text-directory"),
    pytest.param("application/octet-stream", "list.txt", CSV.encode(), "application/octet-stream", id="txt"),
    pytest.param("application/octet-stream", "list.csv", CSV.encode(), "application/octet-stream", id="csv"),
    pytest.param(
        "application/octet-stream",
        "list.json",
        f'{{"email": "{BOB_ADDR}", "x": "{STRANGER}"}}'.encode(),
        "application/octet-stream",
        id="json",
    ),
    pytest.param(
        "application/octet-stream",
        "list.xml",
        f"<p><e>{BOB_ADDR}</e><e>{STRANGER}</e></p>".encode(),
        "application/octet-stream",
        id="xml",
    ),
    pytest.param(
        "application/octet-stream",
        "page.html",
        f'<a href="mailto:{BOB_ADDR}">{STRANGER}</a>'.encode(),
        "application/octet-stream",
        id="html",
    ),
    pytest.param(
        "application/json", "data", f'["{BOB_ADDR}", "{STRANGER}"]'.encode(), "application/json", id="application-json"
    ),
    pytest.param(
        "application/octet-stream", "export.txt", CSV.encode("utf-16"), "application/octet-stream", id="utf16-bom"
    ),
    pytest.param(
        "application/octet-stream",
        "export.txt",
        CSV.encode("utf-16-le"),
        "application/octet-stream",
        id="utf16le-no-bom",
    ),
    pytest.param(
        "application/octet-stream",
        "export.csv",
        CSV.encode("utf-16-be"),
        "application/octet-stream",
        id="utf16be-no-bom",
    ),
    pytest.param(
        "text/plain; charset=utf-16le", "export.txt", CSV.encode("utf-16-le"), "text/plain", id="text-utf16le"
    ),
    pytest.param("text/plain", "export.txt", CSV.encode("utf-16"), "text/plain", id="text-utf16-undeclared"),
    pytest.param("application/octet-stream", "noname.bin", CSV.encode(), "application/octet-stream", id="sniffed-utf8"),
    pytest.param(
        "application/x-unknown", "card", VCF.encode("utf-16"), "application/x-unknown", id="sniffed-vcard-utf16"
    ),
]


@pytest.mark.parametrize(("content_type", "filename", "data", "out_type"), TEXT_LIKE)
def test_given_a_text_like_attachment_then_it_is_decoded_scrubbed_and_kept(
    content_type: str, filename: str, data: bytes, out_type: str
) -> None:
    raw = _mail(hostile.attachment(content_type, filename, data))
    assert find_leaks(raw.replace(b"ann@example.org", b"x@y.example"), [BOB_ADDR]) != []  # planted, findable

    out = relay(raw, PEOPLE)

    assert find_leaks(out, REAL) == []
    part, text = _attachment_text(out, filename)
    assert part.get_content_type() == out_type
    assert part.get_content_charset() == "utf-8"
    assert "Bob B." in text or "Bob B." in text.replace("\r\n ", "")


def test_given_a_folded_invite_then_it_is_unfolded_scrubbed_and_folded_again() -> None:
    out = relay(_mail(hostile.attachment("application/ics", "invite.ics", ICS.encode())), PEOPLE)

    _part, text = _attachment_text(out, "invite.ics")
    lines = text.split("\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    unfolded = text.replace("\r\n ", "")
    assert 'ORGANIZER;CN=Organizer Person;SENT-BY="mailto:Bob B.":mailto:Bob B.' in unfolded
    assert f"mailto:{HIDDEN}" in unfolded
    assert unfolded.startswith("BEGIN:VCALENDAR\r\n") and "END:VCALENDAR" in unfolded


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(b"BOB.BUILDER@EXAMPLE.COM", id="upper-case"),
        pytest.param(b"bob.builder+shifts@example.com", id="plus-variant"),
        pytest.param(b"xx7bob.builder@example.comQ", id="glued-to-bytes"),
        pytest.param(BOB_ADDR.encode("utf-16-le"), id="utf-16le"),
        pytest.param(BOB_ADDR.upper().encode("utf-16-be"), id="utf-16be"),
        pytest.param(b"\x01" + BOB_ADDR.encode("utf-16-le"), id="utf-16le-odd-offset"),
    ],
)
def test_given_an_opaque_binary_spelling_a_participant_then_it_is_removed(spelling: bytes) -> None:
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <</Author (" + spelling + b")>> endobj\n\x00\xff%%EOF\n"
    out = relay(_mail(hostile.attachment("application/pdf", "minutes.pdf", pdf)), PEOPLE)

    texts = [p.get_content().replace("\r\n", "\n") for p in _parse(out).walk() if p.get_content_type() == "text/plain"]
    assert REMOVED_ATTACHMENT_NOTE in texts
    assert all(p.get_content_type() != "application/pdf" for p in _parse(out).walk())


def test_given_an_opaque_binary_without_participants_then_it_is_kept_byte_for_byte() -> None:
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <</Author (bob.builder@example.org)>> endobj\n\x00\xff%%EOF\n"
    out = relay(_mail(hostile.attachment("application/pdf", "minutes.pdf", pdf)), PEOPLE)

    (kept,) = [p for p in _parse(out).walk() if p.get_content_type() == "application/pdf"]
    assert kept.get_payload(decode=True) == pdf
    assert kept.get_filename() == "minutes.pdf"


def test_given_an_ascii_image_then_it_is_not_sniffed_as_text() -> None:
    svg_like_png = b"GIF89a" + b"x" * 40  # ASCII only, but an image type is opaque
    out = relay(_mail(hostile.attachment("image/gif", "a.gif", svg_like_png)), PEOPLE)

    (kept,) = [p for p in _parse(out).walk() if p.get_content_type() == "image/gif"]
    assert kept.get_payload(decode=True) == svg_like_png
