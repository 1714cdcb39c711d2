"""Address normalization, hashing and relay-address parsing."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

ADDRESS_HASH_HEX_CHARS = 32

# Deliberately simple: an address-looking token, used to find addresses in text.
_ADDRESS_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

# IDNA label separators besides "." (UTS #46 maps them to ".").
_DOTS = {0x3002: ".", 0xFF0E: ".", 0xFF61: "."}
_LDH = re.compile(r"[a-z0-9_-]+")
_ACE_PREFIX = "xn--"
_MAX_LABEL = 63
_MAX_DOMAIN = 253


def _nfc_lower(text: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).lower())


def _hostname_char(ch: str) -> bool:
    return ch == "-" or unicodedata.category(ch)[0] in "LMN"


def _a_label(label: str) -> str:
    """One lower-case label as its A-label; ValueError if it cannot be one."""
    if label.startswith(_ACE_PREFIX):
        try:
            decoded = label[len(_ACE_PREFIX) :].encode("ascii").decode("punycode")
        except (UnicodeError, ValueError) as exc:
            raise ValueError("not an A-label") from exc
        if decoded.isascii():
            raise ValueError("not an A-label")
        label = _nfc_lower(decoded)  # canonical: the A-label of its lower-case NFC U-label
    if label.isascii():
        if not _LDH.fullmatch(label):
            raise ValueError("not a hostname label")
        return label
    if not all(_hostname_char(ch) for ch in label):
        raise ValueError("not a hostname label")
    return _ACE_PREFIX + label.encode("punycode").decode("ascii")


def idna_domain(domain: str) -> str | None:
    """The domain as lower-case A-labels (punycode), or None if it has no such form.

    Not the stdlib ``idna`` codec: that is IDNA 2003, which maps deviation
    characters (``ß`` to ``ss``, final sigma to sigma) and so would give two
    distinct domains one hash. Each label is lower-cased, NFC-normalized and
    punycoded as is (IDNA 2008 without the UTS #46 mapping tables); an A-label
    in the input is decoded and re-encoded the same way, so ``exämple.org`` and
    ``XN--EXMPLE-CUA.org`` give the same result.
    """
    text = _nfc_lower(domain.strip()).translate(_DOTS)
    if not text:
        return None
    try:
        labels = [_a_label(label) for label in text.split(".")]
    except (UnicodeError, ValueError):
        return None
    result = ".".join(labels)
    if any(not label or len(label) > _MAX_LABEL for label in labels) or len(result) > _MAX_DOMAIN:
        return None
    return result


def normalize_domain(domain: str) -> str:
    """The domain's A-label form (see :func:`idna_domain`), else its lower-case NFC text."""
    return idna_domain(domain) or _nfc_lower(domain.strip()).translate(_DOTS)


def normalize_address(addr: str) -> str:
    """One canonical form per mailbox, so a stored address and a From match (R6).

    Surrounding whitespace and angle brackets are stripped. The local part is
    NFC-normalized and lower-cased: providers treat local parts case-insensitively
    in practice and R6 matches senders case-insensitively. The domain becomes its
    lower-case A-label (punycode), so ``jösé@exämple.org`` from the API, a raw
    UTF-8 From (RFC 6532) and ``jösé@xn--exmple-cua.org`` are the same address.
    """
    text = addr.strip().strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return _nfc_lower(text)
    return f"{_nfc_lower(local)}@{normalize_domain(domain)}"


def address_hash(key: bytes, addr: str) -> str:
    """Keyed hash of a normalized address, for lookups and logs (R5, R14)."""
    mac = hmac.new(key, normalize_address(addr).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return mac.hexdigest()[:ADDRESS_HASH_HEX_CHARS]


def domain_of(addr: str) -> str:
    """The normalized (A-label) domain of an address, or '' if it has none."""
    _, at, domain = normalize_address(addr).rpartition("@")
    return domain if at else ""


def relay_local_part(recipient: str, relay_domain: str) -> str | None:
    """The chat's local part if ``recipient`` is at the relay domain, else None.

    Case-insensitive; a ``+tag`` suffix is dropped, so ``K3X9+x@relay`` is ``k3x9``.
    """
    addr = normalize_address(recipient)
    local, at, domain = addr.rpartition("@")
    if not at or not local or domain != normalize_domain(relay_domain):
        return None
    local = local.split("+", 1)[0]
    return local or None


def transport_address(addr: str) -> str | None:
    """``addr`` as SES can send to it: the domain as A-labels, the local part as
    given; None when the local part is not ASCII (SES has no SMTPUTF8)."""
    local, at, domain = addr.strip().strip("<>").strip().rpartition("@")
    if not at or not local or not local.isascii():
        return None
    return f"{local}@{normalize_domain(domain)}"
