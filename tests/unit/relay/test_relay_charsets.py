"""Item 8: only real mail charsets are honoured; nothing in the render yields lone surrogates."""

from __future__ import annotations

import codecs
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import Person, decode_bytes
from chalicelib.relay.charsets import mail_codec, no_surrogates, sniff_text
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import relay

JANE = Person("p1", "Jane D.", ("jane.doe@example.org",))
BOB = Person("p2", "Bob B.", ("bob@example.com",))
PEOPLE = [JANE, BOB]
# utf-7 "+2D0-" and the escape codecs' "\ud800" decode to lone surrogates.
HOSTILE_BODY = b"Hi +2D0- and \\ud800 \\udc00 +3AA- from bob@example.com\n"


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _raw(body: bytes, ctype: str, extra: str = "") -> bytes:
    head = (
        "From: Jane <jane.doe@example.org>\r\nTo: k3x9q@relay.example.org\r\nSubject: hi\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\n{extra}\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize("charset", ["utf-7", "unicode-escape", "raw-unicode-escape", "UTF7", "unicode_escape"])
def test_given_a_codec_that_is_no_mail_charset_then_the_text_is_decoded_by_fallback(charset: str) -> None:
    out = relay(_raw(HOSTILE_BODY, f"text/plain; charset={charset}"), PEOPLE)

    text = _parse(out).get_content()
    assert "Hi +2D0- and \\ud800 \\udc00 +3AA- from Bob B." in text
    assert find_leaks(out, ["bob@example.com", "jane.doe@example.org"]) == []


@pytest.mark.parametrize("charset", ["utf-7", "unicode-escape", "raw-unicode-escape"])
def test_given_a_hostile_charset_on_an_attachment_and_its_name_then_the_render_holds(charset: str) -> None:
    # RFC 2231 names decode with the declared charset: the stdlib raises on the
    # lone surrogate when the name is read, so the part keeps no name.
    name = f"{charset}''x%5Cud800y+2D0-.csv"
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee file\r\n"
        b"--b\r\nContent-Type: text/csv; charset=" + charset.encode() + b"\r\n"
        b"Content-Disposition: attachment; filename*=" + name.encode() + b"\r\n\r\n" + HOSTILE_BODY + b"--b--\r\n"
    )
    out = relay(_raw(body, "multipart/mixed; boundary=b"), PEOPLE)

    csv = next(p for p in _parse(out).walk() if p.get_content_type() == "text/csv")
    assert "Hi +2D0- and \\ud800" in csv.get_content()
    out.decode("ascii")  # every byte is 7-bit: no surrogate reached the output


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("us-ascii", None),
        ("UTF-8", "utf-8"),
        ('"utf8"', "utf-8"),
        ("ISO-8859-1", "iso8859-1"),
        ("iso_8859-15", "iso8859-15"),
        ("latin1", "iso8859-1"),
        ("ISO-8859-16", "iso8859-16"),
        ("iso-8859-8-i", "iso8859-8"),
        ("windows-1250", "cp1250"),
        ("Windows-1258", "cp1258"),
        ("cp1252", "cp1252"),
        ("KOI8-R", "koi8-r"),
        ("koi8-u", "koi8-u"),
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ("gb18030", "gb18030"),
        ("Big5", "big5hkscs"),
        ("Shift_JIS", "cp932"),
        ("EUC-JP", "euc-jp"),
        ("ISO-2022-JP", "iso2022-jp"),
        ("euc-kr", "cp949"),
        ("ks_c_5601-1987", "cp949"),
        ("UTF-16", "utf-16"),
        ("utf-16le", "utf-16-le"),
        ("UTF-16BE", "utf-16-be"),
        ("utf-32", "utf-32"),
        ("macintosh", "mac-roman"),
        ("tis-620", "cp874"),
    ],
)
def test_given_a_real_mail_charset_then_it_maps_to_its_codec(label: str, codec: str | None) -> None:
    assert mail_codec(label) == codec
    if codec:
        codecs.lookup(codec)


@pytest.mark.parametrize(
    "label",
    [
        "utf-7",
        "unicode-escape",
        "raw-unicode-escape",
        "rot13",
        "rot_13",
        "base64",
        "hex",
        "zlib",
        "bz2",
        "quopri",
        "uu",
        "idna",
        "punycode",
        "palmos",
        "undefined",
        "utf-8-sig-x",
        "",
        "x-unknown",
    ],
)
def test_given_a_label_off_the_allowlist_then_no_codec(label: str) -> None:
    assert mail_codec(label) is None


def test_given_utf16_with_or_without_bom_then_it_is_decoded() -> None:
    text = "Ask bob@example.com"
    assert decode_bytes(text.encode("utf-16"), None) == text
    assert decode_bytes(text.encode("utf-16-le"), "utf-16") == text
    assert decode_bytes(text.encode("utf-16-be"), "utf-16") == text
    assert decode_bytes(text.encode("utf-16-be"), None) == text
    assert decode_bytes(text.encode("utf-16-le") + b"!", "utf-16le") == text  # stray last byte
    assert sniff_text(text.encode("utf-16")) == text
    assert sniff_text(text.encode("utf-16-le")) is None  # no BOM: only when declared text
    assert sniff_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") is None


def test_given_any_lone_surrogate_then_no_surrogates_replaces_it() -> None:
    assert no_surrogates("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert decode_bytes(b"\\ud800", "unicode-escape") == "\\ud800"
