"""Build the fresh MIME tree of the outbound message from the inbound one (R5, R9).

Every part is rebuilt: only safelisted content headers, derived from cleaned
inbound values, describe it. Leaf parts go one of four ways:

- signatures are dropped; keys and certificates become a note
  (:mod:`chalicelib.relay.identity`);
- text -- by type, file extension or sniffing (:mod:`chalicelib.relay.attachments`)
  -- is decoded under an allowlisted charset (:mod:`chalicelib.relay.charsets`),
  stripped of placeholders, armored keys and uuencoded files, unfolded where it
  is calendar/vCard, normalized and scrubbed, and re-emitted as UTF-8: text/*
  as quoted-printable, other types (``application/ics``) as base64 under their
  own type;
- opaque binaries are kept unless they spell a participant's address in any
  known way, then they become :data:`REMOVED_ATTACHMENT_NOTE`.

Attachment names are cleaned first, scrubbed after, and checked again. A part
that fails to build for any reason becomes a note instead of failing the render.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from typing import Any

from chalicelib.relay import headers as h
from chalicelib.relay.attachments import declared_text, extension, fold, is_folded, may_sniff, unfold
from chalicelib.relay.charsets import decode_bytes, looks_binary, no_surrogates, sniff_text
from chalicelib.relay.context import RemoteContent
from chalicelib.relay.files import Attachment
from chalicelib.relay.identity import (
    binary_identity_note,
    part_identity,
    remove_identities,
    text_identity_note,
)
from chalicelib.relay.names import decode_encoded_words
from chalicelib.relay.normalize import remove_invisible
from chalicelib.relay.parse import MSG_ID_RE, clean_subject
from chalicelib.relay.placeholders import footer_html, footer_text, insert_html_footer, strip_placeholders
from chalicelib.relay.sanitize import sanitize_html
from chalicelib.relay.scrub import Scrubber

MAX_DEPTH = 12
MAX_PARTS = 500
MAX_FILENAME = 100
REMOVED_ATTACHMENT_NOTE = "An attachment was removed here because it contained a participant's email address.\n"
UNREADABLE_PART_NOTE = "A part of this message could not be read and was removed.\n"
_TOKEN_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,62}$")
_FILENAME_DROP = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_LANG_RE = re.compile(r"^[A-Za-z0-9, -]{1,64}$")
_CID_REF_RE = re.compile(r"cid:([^\s\"'<>()]+)", re.IGNORECASE)
_MARKUP_SUBTYPES = frozenset({"html", "xhtml+xml", "xml", "svg+xml"})
_MARKUP_EXTENSIONS = frozenset({"html", "htm", "xhtml", "shtml", "xml", "svg"})
_HTML_SUBTYPES = frozenset({"html", "xhtml+xml"})
_HTML_EXTENSIONS = frozenset({"html", "htm", "xhtml", "shtml"})


@dataclass
class RenderState:
    scrubber: Scrubber
    author_name: str
    list_name: str
    cids: dict[str, str]
    text_footer_done: bool = False
    html_footer_done: bool = False
    parts: int = 0
    footers: bool = True
    remote_content: RemoteContent = "block"
    attachments: list[Attachment] = field(default_factory=list)  # rebuilt, for relay/files.py


# --- reading inbound parts ----------------------------------------------------


def payload_bytes(part: Message) -> bytes:
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


def _safe(call: object, default: str | None = None) -> str | None:
    try:
        value = call() if callable(call) else call
    except Exception:
        return default
    return None if value is None else str(value)


def _charset(part: Message) -> str | None:
    return _safe(part.get_content_charset)


def part_text(part: Message) -> str:
    """A text part's content, decoded with charset fallbacks; never raises."""
    return decode_bytes(payload_bytes(part), _charset(part))


def _token(value: str, default: str) -> str:
    value = value.strip().lower()
    return value if _TOKEN_RE.match(value) else default


# --- attachment names -------------------------------------------------------------


def _raw_filename(part: Message) -> str:
    """The declared name, decoded, on one line, without its path; not yet scrubbed."""
    name = _safe(part.get_filename) or ""
    # Mail clients decode encoded words in names even where RFC 2047 forbids them.
    name = clean_subject(remove_invisible(decode_encoded_words(name)))
    return re.split(r"[/\\]", name)[-1]


def _clean_name_chars(name: str) -> str:
    return strip_placeholders(_FILENAME_DROP.sub("", strip_placeholders(name)).strip(" ."))


def clean_filename(name: str | None, scrubber: Scrubber) -> str | None:
    """An attachment name without paths, control characters, placeholders or addresses.

    Clean first (a dropped character could join two halves of an address), scrub,
    and repeat until nothing changes.
    """
    if not name:
        return None
    name = re.split(r"[/\\]", clean_subject(remove_invisible(decode_encoded_words(str(name)))))[-1]
    name = _clean_name_chars(name)
    for _ in range(4):
        scrubbed = _clean_name_chars(clean_subject(scrubber.scrub(name)))
        if scrubbed == name:
            break
        name = scrubbed
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        keep_ext = dot and 0 < len(ext) <= 10
        name = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext if keep_ext else name[:MAX_FILENAME]
    return no_surrogates(name) or None


# --- part headers -------------------------------------------------------------------


def _content_id(part: Message) -> str | None:
    match = MSG_ID_RE.search(_safe(lambda: part.get("Content-ID")) or "")
    return match.group(0)[1:-1] if match else None


def _common_kwargs(part: Message, state: RenderState, raw_name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    disposition = _safe(part.get_content_disposition)
    if disposition in ("inline", "attachment"):
        kwargs["disposition"] = disposition
    filename = clean_filename(raw_name, state.scrubber)
    if filename:
        kwargs["filename"] = filename
        kwargs.setdefault("disposition", "attachment")
    cid = _content_id(part)
    if cid and cid in state.cids:
        kwargs["cid"] = state.cids[cid]
    return kwargs


def _set_language(new: EmailMessage, part: Message) -> None:
    language = strip_placeholders(_safe(lambda: part.get(h.CONTENT_LANGUAGE)) or "")
    if _LANG_RE.match(language):
        new[h.CONTENT_LANGUAGE] = language


def new_part() -> EmailMessage:
    return EmailMessage(policy=policy.default)


def finish_part(new: EmailMessage) -> EmailMessage:
    """Keep only safelisted content headers on a rebuilt part (R5)."""
    for name in {k.lower() for k in new} - h.SAFELIST:  # iterating a Message yields header names
        del new[name]
    del new[h.MIME_VERSION]  # set once, on the top-level message
    return new


def note_part(text: str) -> EmailMessage:
    new = new_part()
    new.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    return new


# --- Content-IDs ----------------------------------------------------------------------


def collect_cids(root: Message, relay_domain: str, seed: str) -> dict[str, str]:
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


# --- leaves -------------------------------------------------------------------------------


def _text_part(
    text: str, maintype: str, subtype: str, ext: str, part: Message, state: RenderState, kwargs: dict[str, Any]
) -> EmailMessage:
    attachment = maintype != "text" or kwargs.get("disposition") == "attachment"
    text = strip_placeholders(text)
    note = text_identity_note(text) if attachment else None
    if note:
        return note_part(note)
    text = remove_identities(text)
    folded = is_folded(subtype, ext, text)
    if folded:
        text = unfold(text)  # so no address hides across a fold
    markup = subtype in _MARKUP_SUBTYPES or ext in _MARKUP_EXTENSIONS
    if markup:
        text = _rewrite_cid_refs(text, state.cids)
    if subtype in _HTML_SUBTYPES or ext in _HTML_EXTENSIONS:
        # Sanitize, then scrub: sanitizing decodes entities and drops markup, which
        # could join an address the scrubber would have seen in two halves.
        text = sanitize_html(no_surrogates(text), state.remote_content)
    text = strip_placeholders(state.scrubber.scrub(text, is_html=markup))
    is_html = maintype == "text" and subtype == "html"
    body = state.footers and not attachment
    text_footer = body and subtype == "plain" and not state.text_footer_done
    html_footer = body and is_html and not state.html_footer_done
    if text_footer:
        text = text.rstrip("\r\n") + "\n" + footer_text(state.author_name, state.list_name)
    elif html_footer:
        text = insert_html_footer(text, footer_html(state.author_name, state.list_name))
    if folded:
        text = fold(text)
    text = no_surrogates(text)
    params: dict[str, str] = {}
    if subtype in ("calendar", "ics", "x-ics"):
        method = _token(_safe(lambda: part.get_param("method")) or "", "")
        if method:
            params["method"] = method.upper()
    new = new_part()
    if maintype == "text":
        new.set_content(text, subtype=subtype, charset="utf-8", cte="quoted-printable", params=params, **kwargs)
    else:
        params["charset"] = "utf-8"
        new.set_content(text.encode("utf-8"), maintype, subtype, cte="base64", params=params, **kwargs)
    if attachment:
        data = text.encode("utf-8")
        state.attachments.append(Attachment(new, kwargs.get("filename"), f"{maintype}/{subtype}", data))
    state.text_footer_done |= text_footer
    state.html_footer_done |= html_footer
    return new


def _binary_part(data: bytes, maintype: str, subtype: str, state: RenderState, kwargs: dict[str, Any]) -> EmailMessage:
    note = binary_identity_note(data)
    if note:
        return note_part(note)
    if state.scrubber.binary_mentions_known(data):
        return note_part(REMOVED_ATTACHMENT_NOTE)
    new = new_part()
    new.set_content(data, maintype, subtype, cte="base64", **kwargs)
    state.attachments.append(Attachment(new, kwargs.get("filename"), f"{maintype}/{subtype}", data))
    return new


def _leaf(part: Message, content_type: str, state: RenderState) -> EmailMessage | None:
    raw_name = _raw_filename(part)
    ext = extension(raw_name)
    identity = part_identity(content_type, ext)
    if identity == "signature":
        return None
    if identity:
        return note_part(identity)
    kwargs = _common_kwargs(part, state, raw_name)
    maintype, _, subtype = content_type.partition("/")
    maintype = _token(maintype, "application")
    subtype = _token(subtype, "plain" if maintype == "text" else "octet-stream")
    data = payload_bytes(part)
    text: str | None
    if maintype in ("text", "multipart") or part.is_multipart():
        if maintype != "text":
            maintype, subtype = "text", "plain"
        text = decode_bytes(data, _charset(part))
    elif maintype == "message":
        maintype, subtype = "application", "octet-stream"
        text = sniff_text(data)
    elif declared_text(maintype, subtype, ext):
        # Named or typed as text, but full of control bytes: a binary after all.
        text = decode_bytes(data, _charset(part))
        text = None if looks_binary(text) else text
    elif may_sniff(maintype, subtype):
        text = sniff_text(data)
    else:
        text = None
    if text is None:
        return _binary_part(data, maintype, subtype, state, kwargs)
    return _text_part(text, maintype, subtype, ext, part, state, kwargs)


# --- containers ----------------------------------------------------------------------------


def _multipart(part: Message, state: RenderState, depth: int) -> EmailMessage:
    subtype = _token(part.get_content_subtype(), "mixed")
    if subtype in ("signed", "encrypted", "report"):
        subtype = "mixed"  # the content changes, so a signature would only fail
    children = []
    payload = part.get_payload()
    for child in payload if isinstance(payload, list) else []:
        if not isinstance(child, Message):
            continue
        built = build(child, state, depth + 1)
        if built is not None:
            children.append(built)
    new = new_part()
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


def _attached_message(part: Message, state: RenderState, depth: int) -> EmailMessage | None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return None
    outer_footers = state.footers
    state.footers = False  # the footer belongs to the message itself, not to quotes
    try:
        body = build(inner, state, depth + 1)
    finally:
        state.footers = outer_footers
    if body is None:
        return None
    subject = state.scrubber.scrub(clean_subject(remove_invisible(_safe(lambda: inner.get(h.SUBJECT)) or "")))
    subject = strip_placeholders(clean_subject(subject))
    if subject:
        body[h.SUBJECT] = subject
    body[h.MIME_VERSION] = "1.0"
    new = new_part()
    new.set_content(body, disposition="attachment")
    return new


def _build(part: Message, state: RenderState, depth: int) -> EmailMessage | None:
    content_type = (_safe(part.get_content_type, "text/plain") or "text/plain").lower()
    maintype, _, subtype = content_type.partition("/")
    if part.is_multipart() and maintype == "multipart":
        return finish_part(_multipart(part, state, depth))
    if maintype == "message" and subtype in ("rfc822", "global") and part.is_multipart():
        new = _attached_message(part, state, depth)
        return None if new is None else finish_part(new)
    if maintype == "message" and subtype not in ("rfc822", "global"):
        return None  # delivery-status, partial, external-body: nothing to share
    new = _leaf(part, content_type, state)
    if new is None:
        return None
    _set_language(new, part)
    return finish_part(new)


def build(part: Message, state: RenderState, depth: int) -> EmailMessage | None:
    """A fresh part for ``part``, or None to drop it; never raises."""
    state.parts += 1
    if depth > MAX_DEPTH or state.parts > MAX_PARTS:
        return None
    try:
        return _build(part, state, depth)
    except Exception:
        return finish_part(note_part(UNREADABLE_PART_NOTE))
