"""Large attachments as links (issue 14): the pure half. Which attachments leave
the message, the note each copy carries instead, and the signed file token."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import FileLinks, Person, anonymize, render
from chalicelib.relay.files import choose, human_size
from chalicelib.relay.parse import parse_inbound
from chalicelib.relay.tokens import FileClaims, open_file_token, sign_file_token, sign_token, verify_token
from tests.fixtures.emails.scenario import CHAT, WHEN

KEY = b"0123456789abcdef0123456789abcdef"
JANE = Person("p1", "Jane D.", ("jane.doe@example.org",))
BOB = Person("p2", "Bob B.", ("bob@example.com",))
EXPIRES = WHEN + timedelta(days=14)
MIB = 1024 * 1024


def blob(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def mail_with(*attachments: tuple[str, bytes, str]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane Doe <jane.doe@example.org>"
    msg["To"] = "k3x9q@relay.example.org"
    msg["Subject"] = "Maps"
    msg["Message-ID"] = "<c1@example.org>"
    msg.set_content("Maps attached.\n")
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def links(limit: int) -> FileLinks:
    return FileLinks(limit=limit, url=lambda n: f"https://muster.example.org/files/tok{n}", expires=EXPIRES)


def do_render(raw: bytes, limit: int | None) -> tuple[bytes, tuple]:  # type: ignore[type-arg]
    out = render(
        parse_inbound(raw),
        author=JANE,
        people=[JANE, BOB],
        chat=CHAT,
        message_id="<m@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
        files=None if limit is None else links(limit),
    )
    return out.message, out.files


def parsed(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def attachment_payloads(msg: EmailMessage) -> list[bytes]:
    return [p.get_content() for p in msg.iter_attachments() if not p.is_multipart()]


# -- which attachments leave -------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "limit", "chosen"),
    [
        ([6 * MIB], 5 * MIB, [0]),
        ([4 * MIB], 5 * MIB, []),
        ([5 * MIB], 5 * MIB, []),  # "above": exactly the budget stays inline
        ([2 * MIB, 2 * MIB, 2 * MIB], 5 * MIB, [0]),  # one leaves, the other 4 MB fit
        ([100, 6 * MIB, 2 * MIB], 5 * MIB, [1]),  # the largest, not the first
        ([3 * MIB, 3 * MIB, 3 * MIB], 0, [0, 1, 2]),  # 0: every attachment is a link
        ([0], 0, []),
        ([], 5 * MIB, []),
    ],
)
def test_the_largest_attachments_leave_until_the_rest_fits(sizes: list[int], limit: int, chosen: list[int]) -> None:
    assert choose(sizes, limit) == chosen


def test_sizes_read_as_mail_clients_show_them() -> None:
    assert human_size(6 * MIB) == "6.0 MB"
    assert human_size(820 * 1024) == "820 KB"
    assert human_size(12) == "12 bytes"


# -- the rendered copy ----------------------------------------------------------------


def test_a_large_attachment_becomes_a_note_with_its_link_and_its_bytes_come_back_once() -> None:
    data = blob(6 * MIB)
    raw = mail_with(("route map.pdf", data, "application/pdf"))
    message, files = do_render(raw, 5 * MIB)

    assert len(message) < 16 * 1024  # kilobytes, not megabytes
    (f,) = files
    assert (f.index, f.filename, f.content_type, f.data) == (0, "route map.pdf", "application/pdf", data)
    msg = parsed(message)
    assert attachment_payloads(msg) == []
    texts = [p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain"]
    htmls = [p.get_content() for p in msg.walk() if p.get_content_type() == "text/html"]
    note = next(t for t in texts if "Attachment:" in t)
    assert "route map.pdf (6.0 MB)" in note and "https://muster.example.org/files/tok0" in note
    assert f"{EXPIRES:%d %b %Y}" in note
    assert any('href="https://muster.example.org/files/tok0"' in h and "route map.pdf" in h for h in htmls)
    assert "Maps attached." in texts[0]  # the body and its footer are untouched


def test_under_the_budget_attachments_stay_inline_exactly_as_before() -> None:
    raw = mail_with(("small.pdf", blob(4 * MIB), "application/pdf"))
    message, files = do_render(raw, 5 * MIB)
    assert files == ()
    assert attachment_payloads(parsed(message)) == [blob(4 * MIB)]
    plain = anonymize(
        parse_inbound(raw),
        author=JANE,
        people=[JANE, BOB],
        chat=CHAT,
        message_id="<m@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )

    def shape(raw: bytes) -> list[tuple[str, str | None, object]]:
        return [
            (p.get_content_type(), p.get_filename(), None if p.is_multipart() else p.get_content())
            for p in parsed(raw).walk()
        ]

    assert shape(message) == shape(plain)  # (MIME boundaries are drawn afresh by the stdlib)


def test_several_links_keep_message_order_and_small_ones_stay() -> None:
    invite = b"BEGIN:VCALENDAR\r\nSUMMARY:Shift\r\nEND:VCALENDAR\r\n"
    raw = mail_with(
        ("a.zip", blob(3 * MIB, 2), "application/zip"),
        ("invite.ics", invite, "text/calendar"),
        ("b.zip", blob(4 * MIB, 3), "application/zip"),
    )
    message, files = do_render(raw, 2 * MIB)
    assert [(f.index, f.filename) for f in files] == [(0, "a.zip"), (1, "b.zip")]
    text = message.decode()
    assert text.index("files/tok0") < text.index("files/tok1")
    (kept,) = [p for p in parsed(message).iter_attachments() if p.get_filename()]
    assert kept.get_filename() == "invite.ics"


def test_a_linked_text_attachment_is_the_scrubbed_text_and_its_name_is_scrubbed() -> None:
    csv = ("name,email\n" + "Bob,bob@example.com\n" * 40_000).encode()
    raw = mail_with(("list from bob@example.com.csv", csv, "text/csv"))
    message, files = do_render(raw, 1024)
    (f,) = files
    assert b"bob@example.com" not in f.data and b"Bob B." in f.data
    assert "bob@example.com" not in f.filename and "Bob B." in f.filename
    assert b"bob@example.com" not in message.lower()


def test_a_binary_that_spells_an_address_is_removed_not_linked() -> None:
    data = blob(2 * MIB) + b"contact: bob@example.com" + blob(2 * MIB, 5)
    message, files = do_render(mail_with(("scan.pdf", data, "application/pdf")), 1024)
    assert files == ()
    assert b"removed here because it contained" in message


# -- the file token ---------------------------------------------------------------------


def test_a_file_token_binds_message_index_and_expiry() -> None:
    token = sign_file_token(KEY, message_id="18f2a9c3d4e5f6a7b8c9d0e1", index=2, expires_at=1_700_000_000)
    assert open_file_token(KEY, token) == FileClaims("18f2a9c3d4e5f6a7b8c9d0e1", 2, 1_700_000_000)
    assert open_file_token(KEY, token).expired(1_700_000_000)  # type: ignore[union-attr]
    assert not open_file_token(KEY, token).expired(1_699_999_999)  # type: ignore[union-attr]


def test_a_tampered_or_foreign_token_opens_nothing() -> None:
    token = sign_file_token(KEY, message_id="m1", index=0, expires_at=2_000_000_000)
    _body, _, sig = token.partition(".")
    other = sign_file_token(KEY, message_id="m1", index=1, expires_at=2_000_000_000)
    assert open_file_token(KEY, f"{other.partition('.')[0]}.{sig}") is None  # index swapped
    assert open_file_token(b"another key, also 32 bytes long!", token) is None
    assert open_file_token(KEY, token[:-2]) is None
    # A mute token is signed with the same key, but is not a file link, nor the reverse.
    mute = sign_token(KEY, chat_id="m1", participant_key="0", purpose="mute", expires_at=2_000_000_000)
    assert open_file_token(KEY, mute) is None
    assert verify_token(KEY, token, now=1_700_000_000) is None
    with pytest.raises(ValueError):
        sign_file_token(KEY, message_id="m|1", index=0, expires_at=1)


def test_expires_is_shown_in_utc() -> None:
    when = datetime(2030, 1, 2, 23, 30, tzinfo=UTC)
    from chalicelib.relay.files import note_text

    assert "02 Jan 2030 (UTC)" in note_text("a.pdf", 10, "https://x/files/t", when)
