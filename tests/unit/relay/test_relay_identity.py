"""Item 14: OpenPGP keys, certificates and signatures never carry an address through."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import Person
from chalicelib.relay.identity import CERTIFICATE_NOTE, KEY_NOTE
from tests.fixtures.emails import hostile
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import RELAY_ADDRESS, relay

ANN = Person("p1", "Ann A.", ("ann@example.org",))
BOB = Person("p2", "Bob B.", ("bob@example.com",))
PEOPLE = [ANN, BOB]
STRANGER = "stranger@elsewhere.example"
REAL = ["ann@example.org", "bob@example.com", STRANGER]
# A DER certificate skeleton: SEQUENCE, an X.500 name (2.5.4.3 commonName) and
# the PKCS#9 emailAddress attribute holding the address.
DER_CERT = (
    b"\x30\x82\x01\x10\x30\x82\x00\xf0\xa0\x03\x02\x01\x02\x02\x01\x01\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7"
    b"\x0d\x01\x01\x0b\x05\x00\x30\x2e\x31\x0c\x30\x0a\x06\x03\x55\x04\x03\x0c\x03Ann\x31\x1e\x30\x1c\x06\x09"
    b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01\x16\x0f" + STRANGER.encode()
)
PKCS7_SIGNED = b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x80" + DER_CERT


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _texts(out: bytes) -> str:
    return "\n".join(p.get_content() for p in _parse(out).walk() if p.get_content_maintype() == "text")


def _mail(*parts: str, subtype: str = "mixed") -> bytes:
    body = hostile.part("text/plain; charset=utf-8", "Here is my key, and the plan.\r\n")
    return hostile.message([body, *parts], sender="ann@example.org", to=RELAY_ADDRESS, subtype=subtype)


def test_given_the_armored_key_then_the_leak_checker_sees_its_address() -> None:
    # Sanity: the key hides the address from plain search, not from the checker.
    key = hostile.armored_key("Stranger", STRANGER)
    assert STRANGER not in key
    raw = _mail(hostile.part('text/plain; name="key.asc"', key))
    assert find_leaks(raw.replace(b"ann@example.org", b"x@y.example"), [STRANGER]) != []


@pytest.mark.parametrize(
    ("content_type", "filename"),
    [
        ("application/pgp-keys", "OpenPGP_0x1234ABCD.asc"),  # Thunderbird "Attach my public key"
        ("application/octet-stream", "0x1234ABCD.asc"),
        ("text/plain", "publickey.asc"),
        ("application/octet-stream", "key.txt"),
    ],
)
def test_given_an_attached_openpgp_key_then_it_is_replaced_by_a_note(content_type: str, filename: str) -> None:
    key = hostile.armored_key("Ann Example", STRANGER).encode()
    out = relay(_mail(hostile.attachment(content_type, filename, key)), PEOPLE)

    assert find_leaks(out, REAL) == []
    assert KEY_NOTE.strip() in _texts(out)
    assert "BEGIN PGP PUBLIC KEY BLOCK" not in out.decode()


def test_given_a_binary_openpgp_key_then_it_is_replaced_by_a_note() -> None:
    key = hostile.openpgp_public_key(f"Stranger <{STRANGER}>")
    out = relay(_mail(hostile.attachment("application/octet-stream", "key.gpg", key)), PEOPLE)

    assert find_leaks(out, REAL) == []
    assert KEY_NOTE.strip() in _texts(out)


def test_given_an_armored_key_pasted_into_the_body_then_only_the_block_becomes_a_note() -> None:
    body = f"Hi all,\r\n\r\n{hostile.armored_key('Ann', STRANGER)}\r\nSee you Saturday.\r\n"
    raw = hostile.message([hostile.part("text/plain; charset=utf-8", body)], sender="ann@example.org", to=RELAY_ADDRESS)
    out = relay(raw, PEOPLE)

    text = _texts(out)
    assert find_leaks(out, REAL) == []
    assert "Hi all," in text and "See you Saturday." in text and KEY_NOTE.strip() in text


@pytest.mark.parametrize(
    ("content_type", "filename", "data", "note"),
    [
        ("application/pkcs7-mime", "smime.p7m", PKCS7_SIGNED, CERTIFICATE_NOTE),
        ("application/x-pkcs7-mime", "smime.p7m", PKCS7_SIGNED, CERTIFICATE_NOTE),
        ("application/octet-stream", "certs.p7c", PKCS7_SIGNED, CERTIFICATE_NOTE),
        ("application/octet-stream", "ann.cer", DER_CERT, CERTIFICATE_NOTE),
        ("application/octet-stream", "blob.bin", DER_CERT, CERTIFICATE_NOTE),  # sniffed as DER
        ("application/x-x509-ca-cert", "ca.crt", DER_CERT, CERTIFICATE_NOTE),
    ],
    ids=["pkcs7-mime", "x-pkcs7-mime", "p7c", "cer", "der-sniffed", "x509-ca-cert"],
)
def test_given_certificates_and_smime_content_then_they_become_a_note(
    content_type: str, filename: str, data: bytes, note: str
) -> None:
    out = relay(_mail(hostile.attachment(content_type, filename, data)), PEOPLE)

    assert find_leaks(out, REAL) == []
    assert note.strip() in _texts(out)


@pytest.mark.parametrize(
    ("content_type", "filename"),
    [
        ("application/pgp-signature", "signature.asc"),
        ("application/pkcs7-signature", "smime.p7s"),
        ("application/x-pkcs7-signature", "smime.p7s"),
        ("application/octet-stream", "smime.p7s"),
    ],
)
def test_given_a_signed_message_then_the_signature_is_dropped_and_the_text_stays(
    content_type: str, filename: str
) -> None:
    signature = hostile.attachment(content_type, filename, PKCS7_SIGNED)
    out = relay(_mail(signature, subtype='signed; protocol="application/pkcs7-signature"; micalg=sha-256'), PEOPLE)

    message = _parse(out)
    assert find_leaks(out, REAL) == []
    assert [p.get_content_type() for p in message.walk()][:2] == ["multipart/mixed", "text/plain"]
    assert all(p.get_filename() != filename for p in message.walk())
    assert "Here is my key, and the plan." in _texts(out)


def test_given_an_inline_pgp_signed_body_then_the_signature_block_is_removed() -> None:
    body = (
        "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nMeet at 10.\r\n- -- \r\nAnn\r\n"
        f"{hostile.pgp_signature()}"
    )
    raw = hostile.message([hostile.part("text/plain; charset=utf-8", body)], sender="ann@example.org", to=RELAY_ADDRESS)
    text = _texts(relay(raw, PEOPLE))

    assert "Meet at 10.\n-- \nAnn" in text.replace("\r\n", "\n")
    assert "PGP SIGNATURE" not in text and "PGP SIGNED MESSAGE" not in text and "Hash: SHA256" not in text


def test_given_a_pem_certificate_in_text_then_it_becomes_a_note() -> None:
    pem = hostile.armor(DER_CERT, "CERTIFICATE")
    raw = hostile.message(
        [hostile.part("text/plain; charset=utf-8", f"My cert:\r\n{pem}")], sender="ann@example.org", to=RELAY_ADDRESS
    )
    out = relay(raw, PEOPLE)

    assert find_leaks(out, REAL) == []
    assert CERTIFICATE_NOTE.strip() in _texts(out)
