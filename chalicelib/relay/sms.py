"""Chat messages as text messages (issue 12): segment counting, reply trimming,
the SMS copy's text, and the text-to-mail direction. Pure: stdlib only.

- **Segments.** A text that only uses the GSM 03.38 alphabet (the basic set, and
  the extension table at two septets a character: ``^{}\\[~]|€`` and form feed)
  goes as GSM-7: 160 septets in one segment, 153 per segment once concatenated
  (the user data header takes 7). Anything else goes as UCS-2: 70 UTF-16 code
  units, 67 once concatenated; an emoji outside the BMP is a surrogate pair (2
  units). A segment never splits an escape sequence or a surrogate pair, as
  handsets and carriers do.
- **Trimming**: :mod:`chalicelib.relay.trim` (quoted history and signatures).
- **The copy:** ``Jane D. (Canvass Mon): <text>``, attachments as ``(photo: <link>)``,
  cut at ``max_segments`` with a link to the whole message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from chalicelib.relay.trim import html_text, trim_reply  # the text part of a reply, trimmed

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "^{}\\[~]|€\f"
_BASIC = frozenset(GSM_BASIC)
_EXTENDED = frozenset(GSM_EXTENSION)

GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

# Where a participant who texts has no email: their identity in the relay's
# address-keyed paths (sender lookup, one record per person). Never sent to.
PSEUDO_DOMAIN = "sms.invalid"


def pseudo_address(e164: str) -> str:
    """The address that stands for a phone number in the relay (``+15551234567@sms.invalid``)."""
    return f"{e164}@{PSEUDO_DOMAIN}"


def phone_hash(key: bytes, e164: str) -> str:
    """Keyed hash of a phone number (E.164), for lookups and logs (R5, R14)."""
    return hmac.new(key, f"tel:{e164}".encode(), hashlib.sha256).hexdigest()[:32]


# -- short signed links (a text message has no room for a 100-character token) -------

_LINK_PURPOSE = b"muster sms link v1"


def _link_key(key: bytes) -> bytes:
    return hmac.new(key, _LINK_PURPOSE, hashlib.sha256).digest()  # never valid as any other token


def sign_link(key: bytes, *, message_id: str, index: int, expires_at: int) -> str:
    """``index`` 0: the whole message's page; n: its n-th attachment. ~50 characters."""
    payload = f"{message_id}.{index:x}.{expires_at // 3600:x}"
    mac = hmac.new(_link_key(key), payload.encode(), hashlib.sha256).digest()[:9]
    return f"{payload}.{base64.urlsafe_b64encode(mac).decode()}"


def open_link(key: bytes, token: str) -> tuple[str, int, int] | None:
    """(message id, index, expires_at) of a genuine link token; None if tampered."""
    parts = token.split(".")
    if len(token) > 120 or len(parts) != 4:
        return None
    payload = ".".join(parts[:3])
    mac = hmac.new(_link_key(key), payload.encode(), hashlib.sha256).digest()[:9]
    if not hmac.compare_digest(base64.urlsafe_b64encode(mac).decode(), parts[3]):
        return None
    try:
        return parts[0], int(parts[1], 16), int(parts[2], 16) * 3600
    except ValueError:
        return None


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    count: int


def is_gsm(text: str) -> bool:
    return all(c in _BASIC or c in _EXTENDED for c in text)


def _units(text: str, gsm: bool) -> list[int]:
    """The size of each character: 1 or 2 septets, 1 or 2 UTF-16 units."""
    if gsm:
        return [2 if c in _EXTENDED else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _pack(sizes: list[int], limit: int) -> int:
    """How many segments of ``limit`` units ``sizes`` fill, never splitting one character."""
    count, used = 1, 0
    for n in sizes:
        if used + n > limit:
            count, used = count + 1, 0
        used += n
    return count


def count_segments(text: str) -> Segments:
    gsm = is_gsm(text)
    sizes = _units(text, gsm)
    total = sum(sizes)
    single, multi = (GSM_SINGLE, GSM_MULTI) if gsm else (UCS2_SINGLE, UCS2_MULTI)
    count = 0 if total == 0 else 1 if total <= single else _pack(sizes, multi)
    return Segments("GSM-7" if gsm else "UCS-2", total, count)


def fit(text: str, max_segments: int, suffix: str) -> str:
    """``text`` if it fits ``max_segments``, else its longest prefix (cut at a word
    where possible) followed by ``suffix`` that fits."""
    if count_segments(text).count <= max_segments:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the suffix
        mid = (lo + hi + 1) // 2
        if count_segments(text[:mid].rstrip() + suffix).count <= max_segments:
            lo = mid
        else:
            hi = mid - 1
    head = text[:lo]
    space = head.rfind(" ")
    if space > lo * 2 // 3:
        head = head[:space]
    return head.rstrip() + suffix


def cost(segments: int, price_per_segment: float) -> float:
    return round(segments * price_per_segment, 6)


# -- a rendered chat message as a text message ---------------------------------------


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class SmsSource:
    """What a text message is made of: the trimmed text and the attachments."""

    text: str
    full_text: str  # untrimmed text part, for the whole-message page (footer removed)
    attachments: tuple[Attachment, ...]


def source_of(rendered: bytes) -> SmsSource:
    """The text of an anonymized chat message (the relay's one rendered copy) and
    its attachments. Addresses and phone numbers are already scrubbed there."""
    message = BytesParser(policy=policy.default).parsebytes(rendered)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = body.get_content()
        text = html_text(content) if body.get_content_type() == "text/html" else content
    attachments = []
    for part in message.iter_attachments():
        if part.get_content_maintype() in {"multipart", "message"}:
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            attachments.append(Attachment(part.get_filename() or "attachment", part.get_content_type(), data))
    full = _without_footer(text)
    return SmsSource(trim_reply(text), full, tuple(attachments))


def _without_footer(text: str) -> str:
    lines = text.replace("\r\n", "\n").split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].rstrip() == "--":
            return "\n".join(lines[:i]).strip()
    return text.strip()


def attachment_kind(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return {"image": "photo", "video": "video", "audio": "audio"}.get(major, "file")


def short_title(title: str, limit: int = 24) -> str:
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def render_text(
    *,
    author: str,
    chat_title: str,
    text: str,
    attachments: list[tuple[str, str]],
    max_segments: int,
    more_link: str | None,
) -> str:
    """``Jane D. (Canvass Mon): <text> (photo: <link>)``, cut at ``max_segments``
    with a link to the whole message. ``attachments`` are (kind, link) pairs."""
    head = f"{author} ({short_title(chat_title)}): "
    tail = "".join(f" ({kind}: {link})" for kind, link in attachments)
    whole = head + text.strip()
    if count_segments(whole + tail).count <= max_segments or more_link is None:
        return whole + tail
    return fit(whole, max_segments, f"… (more: {more_link})")


# -- text to mail ---------------------------------------------------------------------


def inbound_mail(*, sender: str, recipient: str, text: str, message_id: str, date: str, relay_domain: str) -> bytes:
    """A small RFC 5322 message carrying a text message, for the relay's one path."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = f"<{sender}>"
    message["To"] = f"<{recipient}>"
    message["Subject"] = "Text message"
    message["Date"] = date
    message["Message-ID"] = f"<{message_id}@sms.{relay_domain}>"
    message.set_content(text or " ", subtype="plain", charset="utf-8", cte="quoted-printable")
    return message.as_bytes()


# -- keywords ------------------------------------------------------------------------

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT", "REVOKE"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "OPTIN", "OPT-IN", "SUBSCRIBE"})
HELP_WORDS = frozenset({"HELP", "INFO"})
_CHAT_REF = re.compile(r"^#(\d{1,3})\s+(.+)$", re.DOTALL)


def keyword(text: str) -> str | None:
    """The keyword a whole message is (case-insensitive), or None."""
    word = " ".join(text.split()).upper().strip(".!")
    if word in STOP_WORDS:
        return "STOP"
    if word in START_WORDS:
        return "START"
    if word in HELP_WORDS:
        return "HELP"
    if word in {"MUTE", "UNMUTE", "CHATS"}:
        return word
    return None


def chat_reference(text: str) -> tuple[int, str] | None:
    """``#2 hello`` -> (2, "hello")."""
    m = _CHAT_REF.match(text.strip())
    return (int(m.group(1)), m.group(2).strip()) if m else None


__all__ = [
    "Attachment",
    "Segments",
    "SmsSource",
    "chat_reference",
    "cost",
    "count_segments",
    "fit",
    "inbound_mail",
    "keyword",
    "pseudo_address",
    "render_text",
    "short_title",
    "source_of",
]
