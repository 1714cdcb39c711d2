"""Content that carries identities in encoded form: keys, certificates, signatures (R5).

An OpenPGP key holds its owner's user IDs (``Ann <ann@example.org>``) and an
X.509 certificate its subject's address, both inside base64 or binary where no
text scrubber can see them. So:

- OpenPGP keys (``application/pgp-keys``, armored ``BEGIN PGP PUBLIC/PRIVATE KEY
  BLOCK`` in any part, binary key packets) and certificates / S/MIME content
  (``application/pkcs7-mime``, ``.p7m``/``.p7c``/``.cer`` ..., PEM blocks, DER)
  are removed and a short note says why.
- Detached signatures (``application/pgp-signature``, ``pkcs7-signature``,
  ``.p7s``) are dropped quietly: they are not content, and the relay changes the
  message so they would only fail. Inline ``BEGIN PGP SIGNATURE`` blocks are
  removed from text for the same reason (with the ``BEGIN PGP SIGNED MESSAGE``
  header and its dash-escaping).
- uuencoded blocks (``begin 644 name`` ... ``end``) in text are old-style
  attachments the scrubber cannot read; they are removed with a note.
"""

from __future__ import annotations

import re

KEY_NOTE = "An OpenPGP key was removed: keys carry their owner's email address.\n"
CERTIFICATE_NOTE = "A certificate or S/MIME part was removed: these carry their owner's email address.\n"
UUENCODE_NOTE = "A uuencoded file was removed here: its content cannot be checked for addresses.\n"

SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
KEY_TYPES = frozenset({"application/pgp-keys", "application/x-pgp-keys", "application/pgp-key"})
CERTIFICATE_TYPES = frozenset(
    {
        "application/pkcs7-mime",
        "application/x-pkcs7-mime",
        "application/pkcs7-certificates",
        "application/x-pkcs7-certificates",
        "application/x-pkcs7-certreqresp",
        "application/pkix-cert",
        "application/pkix-pkipath",
        "application/x-x509-ca-cert",
        "application/x-x509-user-cert",
        "application/x-x509-email-cert",
        "application/x-x509-cert",
        "application/pkcs10",
        "application/pkcs12",
        "application/x-pkcs12",
        "application/pem-certificate-chain",
        "application/x-pem-file",
    }
)
SIGNATURE_EXTENSIONS = frozenset({"p7s"})
CERTIFICATE_EXTENSIONS = frozenset({"p7m", "p7c", "p7b", "cer", "crt", "der", "p12", "pfx", "spc"})

_KEY_BLOCK = re.compile(
    r"-----\s*BEGIN PGP (?:PUBLIC|PRIVATE|SECRET) KEY BLOCK\s*-----.*?"
    r"(?:-----\s*END PGP (?:PUBLIC|PRIVATE|SECRET) KEY BLOCK\s*-----|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_CERT_BLOCK = re.compile(
    r"-----\s*BEGIN (?P<kind>(?:TRUSTED |X509 )?CERTIFICATE|(?:NEW )?CERTIFICATE REQUEST|PKCS7|CMS|X509 CRL)"
    r"\s*-----.*?(?:-----\s*END (?P=kind)\s*-----|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_SIGNATURE_BLOCK = re.compile(
    r"-----\s*BEGIN PGP SIGNATURE\s*-----.*?(?:-----\s*END PGP SIGNATURE\s*-----[ \t]*\r?\n?|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_SIGNED_HEADER = re.compile(
    r"-----\s*BEGIN PGP SIGNED MESSAGE\s*-----[ \t]*\r?\n(?:Hash:[^\r\n]*\r?\n)*(?:[ \t]*\r?\n)?",
    re.IGNORECASE,
)
_DASH_ESCAPE = re.compile(r"^- (?=-)", re.MULTILINE)
_UUENCODED = re.compile(
    r"^begin(?:-base64)? [0-7]{3,4} [^\r\n]*\r?\n.*?(?:^(?:end|====)[ \t]*(?:\r?\n|\Z)|\Z)",
    re.DOTALL | re.MULTILINE,
)

# PKCS#7 / CMS content types (1.2.840.113549.1.7.*) and X.500 attribute types
# (2.5.4.*, subject and issuer names) as DER-encoded OIDs.
_PKCS7_OID = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07"
_X500_OID = b"\x06\x03\x55\x04"
_OPENPGP_KEY_TAGS = frozenset({5, 6, 7, 14})


def _openpgp_key(data: bytes) -> bool:
    """Whether ``data`` starts with an OpenPGP (secret or public) key packet."""
    if len(data) < 8 or not data[0] & 0x80:
        return False
    first = data[0]
    if first & 0x40:  # new packet format
        tag = first & 0x3F
        length = data[1]
        offset = 2 if length < 192 else 3 if length < 224 else 6 if length == 255 else 2
    else:
        tag = (first >> 2) & 0x0F
        offset = {0: 2, 1: 3, 2: 5}.get(first & 0x03, 1)
    return tag in _OPENPGP_KEY_TAGS and data[offset] in (3, 4, 5, 6)


def _der_identity(data: bytes) -> bool:
    """Whether ``data`` is DER carrying a certificate or CMS/PKCS#7 structure."""
    if len(data) < 16 or data[0] != 0x30 or not 0x80 <= data[1] <= 0x84:
        return False
    return _PKCS7_OID in data[:64] or _X500_OID in data


def binary_identity_note(data: bytes) -> str | None:
    """The note replacing binary ``data`` that is a key or certificate, or None."""
    if _openpgp_key(data):
        return KEY_NOTE
    if _der_identity(data):
        return CERTIFICATE_NOTE
    return None


def part_identity(content_type: str, extension: str) -> str | None:
    """By declared type or file extension: "signature" (drop quietly), a note, or None."""
    if content_type in SIGNATURE_TYPES or extension in SIGNATURE_EXTENSIONS:
        return "signature"
    if content_type in KEY_TYPES:
        return KEY_NOTE
    if content_type in CERTIFICATE_TYPES or extension in CERTIFICATE_EXTENSIONS:
        return CERTIFICATE_NOTE
    return None


def text_identity_note(text: str) -> str | None:
    """The note for a text attachment that holds an armored key or certificate, or None."""
    if "-----" not in text:
        return None
    if _KEY_BLOCK.search(text):
        return KEY_NOTE
    if _CERT_BLOCK.search(text):
        return CERTIFICATE_NOTE
    return None


def remove_identities(text: str) -> str:
    """Body text without armored keys, certificates, PGP signatures and uuencoded files.

    Keys and certificates become a note in place; inline signatures vanish.
    """
    if "-----" in text:
        text = _KEY_BLOCK.sub(lambda _m: KEY_NOTE, text)
        text = _CERT_BLOCK.sub(lambda _m: CERTIFICATE_NOTE, text)
        if _SIGNATURE_BLOCK.search(text):
            text = _SIGNATURE_BLOCK.sub("", text)
            if _SIGNED_HEADER.search(text):
                text = _DASH_ESCAPE.sub("", _SIGNED_HEADER.sub("", text))
    if "begin" in text:
        text = _UUENCODED.sub(lambda _m: UUENCODE_NOTE, text)
    return text
