"""Render one anonymized outbound message per inbound message, then personalize it.

The rules this module enforces:

- R5 No address leaks. The outbound message is built fresh. Only Muster sets
  top-level headers; parts carry only safelisted content headers, derived from
  the cleaned inbound values. Every text part (plain, HTML, calendar, vCard ...)
  is decoded and scrubbed: participants' addresses become their display names,
  other addresses become "[address hidden]" (also inside mailto: links,
  URL-encoded and entity-encoded). Attachment names are scrubbed; a binary
  attachment that contains a participant's address is replaced by a note.
- R6/R7 The relay decides *whether* to relay elsewhere (policy.py); this module
  only renders. Relayed human mail is *not* marked Auto-Submitted (other relays
  and lists would drop it). Loops are prevented by ``X-Loop: <relay domain>``;
  ``List-Id`` keeps auto-responders quiet and ``X-Auto-Response-Suppress: All``
  does the same for Exchange/Outlook.
- R8 Rendering is deterministic for the same inputs, so a retried render equals
  the first one.
- R9 Rendering never depends on the inbound structure being valid: broken MIME,
  unknown charsets and bad base64 still produce a message.
- R10 Muster's own Message-ID, In-Reply-To and References are set from the given
  ids only; inbound ids never pass. The subject keeps one stable prefix.

Per-recipient work (R11) is bytes only: the rendered message contains fixed
placeholders for the mute URL in every footer. Text parts are always
quoted-printable, and each placeholder sits on its own short line, so QP never
escapes or folds it and it appears literally in the bytes (HTML parts are never
base64, which would hide it). ``personalize`` prepends the List-Unsubscribe
headers and swaps the placeholders for the recipient's QP-encoded URL.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import format_datetime
from typing import Any

from chalicelib.relay import headers as h
from chalicelib.relay.names import clean_name, decode_encoded_words
from chalicelib.relay.parse import MSG_ID_RE, InboundMail, clean_subject
from chalicelib.relay.scrub import Scrubber, scrubber_for

MUTE_URL_PLACEHOLDER_TEXT = "MUSTERMUTEURLTEXTPLACEHOLDERXXXX"
MUTE_URL_PLACEHOLDER_HTML = "MUSTERMUTEURLHTMLPLACEHOLDERXXXX"
_PLACEHOLDER_STEM = "MUSTERMUTEURL"
_PH_TEXT = MUTE_URL_PLACEHOLDER_TEXT.encode("ascii")
_PH_HTML = MUTE_URL_PLACEHOLDER_HTML.encode("ascii")

OUTPUT_POLICY = policy.SMTP
MAX_DEPTH = 12
MAX_PARTS = 500
MAX_FILENAME = 100
REMOVED_ATTACHMENT_NOTE = (
    "An attachment was removed here because it contained a participant's email address.\n"
)
_TOKEN_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,62}$")
_FILENAME_DROP = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_LANG_RE = re.compile(r"^[A-Za-z0-9, -]{1,64}$")
_CID_REF_RE = re.compile(r"cid:([^\s\"'<>()]+)", re.IGNORECASE)
_SUBJECT_TAG_RE = re.compile(
    r"^\s*(?P<tag>re|aw|sv|antw|vs|ref|r|fwd?|fw|wg|tr|rv|enc)\s*(?:\[\d+\])?\s*:\s*",
    re.IGNORECASE,
)
_FORWARD_TAGS = frozenset({"fwd", "fw", "wg", "tr", "rv", "enc"})


@dataclass(frozen=True)
class Person:
    """A participant: ``key`` is opaque; ``addresses`` are real and only used to scrub."""

    key: str
    display_name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ChatContext:
    chat_id: str
    relay_address: str
    list_name: str
    subject_prefix: str

    @property
    def relay_domain(self) -> str:
        return self.relay_address.rpartition("@")[2].strip().lower()


@dataclass
class _Render:
    scrubber: Scrubber
    author_name: str
    list_name: str
    cids: dict[str, str]
    text_footer_done: bool = False
    html_footer_done: bool = False
    parts: int = 0
    footers: bool = True


# --- footers ---------------------------------------------------------------


def footer_text(author_name: str, list_name: str) -> str:
    """The plain-text footer; the mute placeholder is alone on the last line."""
    return (
        "\n-- \n"
        f'Sent by {author_name} to the chat "{list_name}" via Muster.\n'
        "Email addresses are hidden: people appear by first name and last initial.\n"
        "Replying sends your message to everyone in this chat.\n"
        "Mute this chat:\n"
        f"{MUTE_URL_PLACEHOLDER_TEXT}\n"
    )


def footer_html(author_name: str, list_name: str) -> str:
    author = html.escape(author_name, quote=True)
    chat = html.escape(list_name, quote=True)
    return (
        '\n<div style="margin-top:16px;color:#666;font-size:12px">\n<hr>\n'
        f"Sent by {author} to the chat &quot;{chat}&quot; via Muster.<br>\n"
        "Email addresses are hidden: people appear by first name<br>\n"
        "and last initial. Replying goes to everyone in this chat.<br>\n"
        f'<a href="{MUTE_URL_PLACEHOLDER_HTML}">Mute this chat</a>\n'
        "</div>\n"
    )


def _insert_html_footer(document: str, footer: str) -> str:
    index = document.lower().rfind("</body>")
    if index < 0:
        return document + footer
    return document[:index] + footer + document[index:]


# --- decoding ----------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes under a declared charset that may be wrong, unknown or missing."""
    declared = (charset or "").strip().strip('"').lower()
    candidates = []
    if declared and declared not in ("unknown-8bit", "x-unknown", "us-ascii", "ascii"):
        candidates.append(declared)
    candidates += ["utf-8", "cp1252"]
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("latin-1")


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def part_text(part: Message) -> str:
    """A text part's content, decoded with charset fallbacks; never raises."""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(_payload_bytes(part), charset)


# --- cleaning values that end up in part headers ----------------------------


def _token(value: str, default: str) -> str:
    value = value.strip().lower()
    return value if _TOKEN_RE.match(value) else default


def clean_filename(name: str | None, scrubber: Scrubber) -> str | None:
    """An attachment name without paths, control characters or addresses."""
    if not name:
        return None
    # Mail clients decode encoded words in names even where RFC 2047 forbids them.
    name = clean_subject(decode_encoded_words(str(name)))
    name = re.split(r"[/\\]", name)[-1]
    name = scrubber.scrub(name)
    name = _FILENAME_DROP.sub("", name).strip(" .")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        keep_ext = dot and 0 < len(ext) <= 10
        name = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext if keep_ext else name[:MAX_FILENAME]
    return name or None


def _safe(call: object, default: str | None = None) -> str | None:
    try:
        value = call() if callable(call) else call
    except Exception:
        return default
    return None if value is None else str(value)


def _content_id(part: Message) -> str | None:
    match = MSG_ID_RE.search(_safe(lambda: part.get("Content-ID")) or "")
    return match.group(0)[1:-1] if match else None


def _common_kwargs(part: Message, state: _Render) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    disposition = _safe(part.get_content_disposition)
    if disposition in ("inline", "attachment"):
        kwargs["disposition"] = disposition
    filename = clean_filename(_safe(part.get_filename), state.scrubber)
    if filename:
        kwargs["filename"] = filename
        kwargs.setdefault("disposition", "attachment")
    cid = _content_id(part)
    if cid and cid in state.cids:
        kwargs["cid"] = state.cids[cid]
    return kwargs


def _set_language(new: EmailMessage, part: Message) -> None:
    language = _safe(lambda: part.get(h.CONTENT_LANGUAGE)) or ""
    if _LANG_RE.match(language):
        new[h.CONTENT_LANGUAGE] = language


def _new_part() -> EmailMessage:
    return EmailMessage(policy=policy.default)


def _finish_part(new: EmailMessage) -> EmailMessage:
    """Keep only safelisted content headers on a rebuilt part (R5)."""
    for name in {k.lower() for k in new} - h.SAFELIST:  # iterating a Message yields header names
        del new[name]
    del new[h.MIME_VERSION]  # set once, on the top-level message
    return new


# --- building the fresh MIME tree ---------------------------------------------


def _collect_cids(root: Message, relay_domain: str, seed: str) -> dict[str, str]:
    cids: dict[str, str] = {}
    try:
        for part in root.walk():
            cid = _content_id(part)
            if cid and cid not in cids:
                cids[cid] = f"part{len(cids) + 1}.{seed}@{relay_domain}"
    except Exception:
        return cids
    return cids


def _rewrite_cid_refs(document: str, cids: Mapping[str, str]) -> str:
    if not cids or "cid:" not in document.lower():
        return document

    def swap(m: re.Match[str]) -> str:
        new = cids.get(m.group(1))
        return f"cid:{new}" if new else m.group(0)

    return _CID_REF_RE.sub(swap, document)


def _text_part(part: Message, subtype: str, state: _Render, kwargs: dict[str, Any]) -> EmailMessage:
    text = part_text(part).replace(_PLACEHOLDER_STEM, "")
    is_html = subtype == "html"
    if subtype in ("calendar", "vcard", "x-vcard", "directory"):
        text = re.sub(r"\r?\n[ \t]", "", text)  # unfold so no address hides across a fold
    if is_html:
        text = _rewrite_cid_refs(text, state.cids)
    text = state.scrubber.scrub(text, is_html=is_html)
    body_part = kwargs.get("disposition") != "attachment"
    if state.footers and body_part and subtype == "plain" and not state.text_footer_done:
        text = text.rstrip("\r\n") + "\n" + footer_text(state.author_name, state.list_name)
        state.text_footer_done = True
    elif state.footers and body_part and is_html and not state.html_footer_done:
        text = _insert_html_footer(text, footer_html(state.author_name, state.list_name))
        state.html_footer_done = True
    params: dict[str, str] = {}
    if subtype == "calendar":
        method = _token(_safe(lambda: part.get_param("method")) or "", "")
        if method:
            params["method"] = method.upper()
    new = _new_part()
    new.set_content(
        text, subtype=subtype, charset="utf-8", cte="quoted-printable", params=params, **kwargs
    )
    return new


def _binary_part(part: Message, state: _Render, kwargs: dict[str, Any]) -> EmailMessage:
    data = _payload_bytes(part)
    new = _new_part()
    if state.scrubber.binary_mentions_known(data):
        new.set_content(REMOVED_ATTACHMENT_NOTE, subtype="plain", cte="quoted-printable")
        return new
    maintype = _token(part.get_content_maintype(), "application")
    subtype = _token(part.get_content_subtype(), "octet-stream")
    if maintype in ("text", "multipart", "message"):
        maintype, subtype = "application", "octet-stream"
    new.set_content(data, maintype, subtype, cte="base64", **kwargs)
    return new


def _multipart(part: Message, state: _Render, depth: int) -> EmailMessage:
    subtype = _token(part.get_content_subtype(), "mixed")
    if subtype in ("signed", "encrypted", "report"):
        subtype = "mixed"  # the content changes, so a signature would only fail
    children = []
    payload = part.get_payload()
    for child in payload if isinstance(payload, list) else []:
        if not isinstance(child, Message):
            continue
        if child.get_content_type() in (
            "application/pgp-signature",
            "application/pkcs7-signature",
            "application/x-pkcs7-signature",
        ):
            continue
        built = _build(child, state, depth + 1)
        if built is not None:
            children.append(built)
    new = _new_part()
    if not children:
        new.set_content("", subtype="plain", cte="quoted-printable")
        return new
    new[h.CONTENT_TYPE] = f"multipart/{subtype}"
    if subtype == "related":
        related_type = _safe(lambda: part.get_param("type")) or ""
        if re.match(r"^[a-z0-9.+-]+/[a-z0-9.+-]+$", related_type.strip().lower()):
            new.set_param("type", related_type.strip().lower())
    for child_part in children:
        new.attach(child_part)
    return new


def _attached_message(part: Message, state: _Render, depth: int) -> EmailMessage | None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return None
    outer_footers = state.footers
    state.footers = False  # the footer belongs to the message itself, not to quotes
    try:
        body = _build(inner, state, depth + 1)
    finally:
        state.footers = outer_footers
    if body is None:
        return None
    subject = state.scrubber.scrub(clean_subject(_safe(lambda: inner.get(h.SUBJECT)) or ""))
    if subject:
        body[h.SUBJECT] = subject
    body[h.MIME_VERSION] = "1.0"
    new = _new_part()
    new.set_content(body, disposition="attachment")
    return new


def _build(part: Message, state: _Render, depth: int) -> EmailMessage | None:
    """A fresh part for ``part``, or None to drop it."""
    state.parts += 1
    if depth > MAX_DEPTH or state.parts > MAX_PARTS:
        return None
    content_type = _safe(part.get_content_type, "text/plain") or "text/plain"
    maintype, _, subtype = content_type.partition("/")
    if part.is_multipart() and maintype == "multipart":
        return _finish_part(_multipart(part, state, depth))
    if maintype == "message":
        if subtype in ("rfc822", "global"):
            return _finish_part_opt(_attached_message(part, state, depth))
        return None  # delivery-status, partial, external-body: nothing to share
    kwargs = _common_kwargs(part, state)
    if maintype in ("text", "multipart") or part.is_multipart():
        text_subtype = _token(subtype, "plain") if maintype == "text" else "plain"
        new = _text_part(part, text_subtype, state, kwargs)
    else:
        new = _binary_part(part, state, kwargs)
    _set_language(new, part)
    return _finish_part(new)


def _finish_part_opt(new: EmailMessage | None) -> EmailMessage | None:
    return None if new is None else _finish_part(new)


# --- headers -----------------------------------------------------------------


def compose_subject(subject: str, prefix: str, scrubber: Scrubber | None = None) -> str:
    """``[Prefix] subject`` with one ``Re: `` or ``Fwd: `` kept, never a doubled prefix."""
    prefix = clean_subject(prefix)
    rest = clean_subject(subject)
    is_reply = is_forward = False
    while True:
        m = _SUBJECT_TAG_RE.match(rest)
        if m:
            if m.group("tag").lower() in _FORWARD_TAGS:
                is_forward = True
            else:
                is_reply = True
            rest = rest[m.end() :]
            continue
        if prefix and rest.lower().startswith(prefix.lower()):
            rest = rest[len(prefix) :].lstrip()
            continue
        break
    if scrubber is not None:
        rest = scrubber.scrub(rest)
    lead = "Re: " if is_reply else "Fwd: " if is_forward else ""
    return " ".join(p for p in (lead + prefix, rest or "(no subject)") if p).strip()


def _msg_id(value: str) -> str:
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if not MSG_ID_RE.fullmatch(value):
        raise ValueError(f"not a message id: {value!r}")
    return value


def list_id(chat: ChatContext) -> str:
    label = clean_name(chat.list_name.replace(":", ".")) or "Muster chat"
    chat_id = re.sub(r"[^A-Za-z0-9-]", "", chat.chat_id).lower() or "chat"
    return f"{label} <{chat_id}.{chat.relay_domain}>"


def set_list_headers(message: EmailMessage, chat: ChatContext) -> None:
    """Headers every message from a chat carries (R7, R11): list identity and loop guard."""
    message[h.LIST_ID] = list_id(chat)
    message[h.LIST_POST] = f"<mailto:{chat.relay_address}>"
    message[h.X_LOOP] = chat.relay_domain
    message[h.X_AUTO_RESPONSE_SUPPRESS] = "All"


def set_envelope_headers(
    message: EmailMessage,
    *,
    from_name: str,
    chat: ChatContext,
    subject: str,
    message_id: str,
    date: datetime,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> None:
    """The top-level headers Muster sets; nothing else reaches the top level."""
    relay = chat.relay_address
    message[h.FROM] = Address(display_name=clean_name(from_name), addr_spec=relay)
    message[h.TO] = Address(addr_spec=relay)
    message[h.REPLY_TO] = Address(addr_spec=relay)
    message[h.SUBJECT] = clean_subject(subject)
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    message[h.DATE] = format_datetime(date)
    message[h.MESSAGE_ID] = _msg_id(message_id)
    if in_reply_to:
        message[h.IN_REPLY_TO] = _msg_id(in_reply_to)
    refs = [_msg_id(r) for r in references]
    if refs:
        message[h.REFERENCES] = " ".join(refs)
    if h.MIME_VERSION not in message:
        message[h.MIME_VERSION] = "1.0"


# --- the relay's two operations ----------------------------------------------


def anonymize(
    mail: InboundMail,
    *,
    author: Person,
    people: Sequence[Person],
    chat: ChatContext,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    date: datetime,
) -> bytes:
    """Render the one anonymized copy of ``mail`` shared with the chat (R4, R5, R10).

    ``people`` are everyone whose real addresses must be scrubbed (the author is
    always included). The result contains the mute placeholders; hand it to
    :func:`personalize` once per recipient.
    """
    scrubber = scrubber_for(
        [(p.display_name, p.addresses) for p in (*people, author)], keep_domain=chat.relay_domain
    )
    seed = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    state = _Render(
        scrubber=scrubber,
        author_name=clean_name(author.display_name) or "Participant",
        list_name=clean_subject(chat.list_name),
        cids=_collect_cids(mail.message, chat.relay_domain, seed),
    )
    body = _build(mail.message, state, 0)
    if body is None:
        body = _new_part()
        body.set_content("", subtype="plain", cte="quoted-printable")
    if not (state.text_footer_done or state.html_footer_done):
        # No body text took the footer (an attachment-only message): lead with it.
        wrapper = _new_part()
        wrapper[h.CONTENT_TYPE] = "multipart/mixed"
        note = _new_part()
        note.set_content(
            footer_text(state.author_name, state.list_name).lstrip("\n"),
            subtype="plain",
            charset="utf-8",
            cte="quoted-printable",
        )
        wrapper.attach(_finish_part(note))
        wrapper.attach(body)
        body = wrapper
    set_envelope_headers(
        body,
        from_name=state.author_name,
        chat=chat,
        subject=compose_subject(mail.subject, chat.subject_prefix, scrubber),
        message_id=message_id,
        date=date,
        in_reply_to=in_reply_to,
        references=references,
    )
    set_list_headers(body, chat)
    return body.as_bytes(policy=OUTPUT_POLICY)


def _qp_url(url: str) -> bytes:
    """``url`` as quoted-printable body text, soft-wrapped into short lines."""
    if not url.isascii() or not url.isprintable() or " " in url or not url:
        raise ValueError("mute URL must be printable ASCII without spaces")
    chunks: list[str] = []
    current = ""
    for ch in url:
        token = "=3D" if ch == "=" else ch
        if len(current) + len(token) > 40:
            chunks.append(current)
            current = ""
        current += token
    chunks.append(current)
    return "=\r\n".join(chunks).encode("ascii")


def _header_line(name: str, value: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9-]{1,76}", name):
        raise ValueError(f"bad header name {name!r}")
    if not value.isascii() or not value.isprintable() or len(value) > 900:
        raise ValueError(f"bad header value for {name}")
    return f"{name}: {value.strip()}\r\n".encode("ascii")


_PLACEHOLDERS = re.compile(b"(" + re.escape(_PH_TEXT) + b"|" + re.escape(_PH_HTML) + b")")


@dataclass(frozen=True)
class CopyTemplate:
    """A rendered message split once at its mute placeholders.

    Fan-out builds every recipient's copy from the same pieces with a single
    ``join``: one allocation the size of the message per copy, no re-parsing and
    no intermediate copies (a 10 MB message stays 10 MB per copy in flight).
    """

    pieces: tuple[bytes, ...]
    html_slots: tuple[bool, ...]  # for each gap between pieces: the HTML placeholder?

    @classmethod
    def of(cls, rendered: bytes) -> CopyTemplate:
        split = _PLACEHOLDERS.split(rendered)
        return cls(pieces=tuple(split[0::2]), html_slots=tuple(s == _PH_HTML for s in split[1::2]))

    def render(self, *, mute_url: str, list_unsubscribe_headers: Mapping[str, str]) -> bytes:
        """One recipient's copy: per-recipient headers first, mute URL in every footer."""
        text_url = _qp_url(mute_url)
        html_url = _qp_url(html.escape(mute_url, quote=True))
        parts = [b"".join(_header_line(k, v) for k, v in list_unsubscribe_headers.items())]
        for piece, is_html in zip(self.pieces, (*self.html_slots, None), strict=True):
            parts.append(piece)
            if is_html is not None:
                parts.append(html_url if is_html else text_url)
        return b"".join(parts)


def personalize(
    rendered: bytes, *, mute_url: str, list_unsubscribe_headers: Mapping[str, str]
) -> bytes:
    """One recipient's copy of ``rendered`` (see :class:`CopyTemplate`, which
    fan-out prepares once per batch)."""
    return CopyTemplate.of(rendered).render(mute_url=mute_url, list_unsubscribe_headers=list_unsubscribe_headers)


def list_unsubscribe_headers(one_click_url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers for one recipient's one-click mute URL."""
    value = f"<{one_click_url}>" + (f", <mailto:{mailto}>" if mailto else "")
    return {h.LIST_UNSUBSCRIBE: value, h.LIST_UNSUBSCRIBE_POST: h.LIST_UNSUBSCRIBE_POST_VALUE}
