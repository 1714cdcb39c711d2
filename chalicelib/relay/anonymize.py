"""Render one anonymized outbound message per inbound message, then personalize it.

The rules this package enforces, and where:

- R5 No address leaks. The outbound message is built fresh
  (:mod:`~chalicelib.relay.parts`): only Muster sets top-level headers
  (:mod:`~chalicelib.relay.envelope`); parts carry only safelisted content
  headers. Every part whose content is text -- by type, file extension or
  sniffing (``application/ics``, ``.vcf`` as octet-stream, UTF-16 text ...) --
  is decoded under an allowlisted charset (:mod:`~chalicelib.relay.charsets`),
  normalized (entities, percent-encoding, NFKC, invisible characters;
  :mod:`~chalicelib.relay.normalize`) and scrubbed
  (:mod:`~chalicelib.relay.scrub`): participants' addresses become their
  display names, other addresses become "[address hidden]". Keys, certificates
  and uuencoded files are removed with a note, signatures dropped
  (:mod:`~chalicelib.relay.identity`). Attachment names are scrubbed; an opaque
  binary that spells a participant's address (any case, ``+tag``, UTF-16) is
  replaced by a note. A stranger's address inside a PDF or image cannot be told
  apart from other bytes, so binaries are checked for participants only.
- R6/R7 The relay decides *whether* to relay elsewhere (policy.py); this module
  only renders. Relayed human mail is *not* marked Auto-Submitted (other relays
  and lists would drop it). Loops are prevented by ``X-Loop: <relay domain>``;
  ``List-Id`` keeps auto-responders quiet and ``X-Auto-Response-Suppress: All``
  does the same for Exchange/Outlook.
- R8 Rendering is deterministic for the same inputs, so a retried render equals
  the first one.
- R9 Rendering never depends on the inbound structure being valid: broken MIME,
  unknown or hostile charsets and bad base64 still produce a message, and a part
  that cannot be rebuilt becomes a note.
- Issue 14 Attachments that total more than the deployment's inline budget
  leave the message largest first (:mod:`~chalicelib.relay.files`): each becomes
  a note with a signed download link, and :func:`render` returns their bytes for
  the service to store once. The link is the same in every copy.
- R10 Muster's own Message-ID, In-Reply-To and References are set from the given
  ids only; inbound ids never pass. The subject keeps one stable prefix.

Per-recipient work (R11) is bytes only (:mod:`~chalicelib.relay.template`): the
rendered message holds fixed mute-URL placeholders at its footer slots. Text
parts are always quoted-printable and each placeholder sits on its own short
line, so QP never escapes or folds it. Placeholder stems are stripped from every
input, and the template splices only at footer slots, never in headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chalicelib.relay import headers as h
from chalicelib.relay.charsets import decode_bytes
from chalicelib.relay.context import ChatContext, Person
from chalicelib.relay.envelope import (
    OUTPUT_POLICY,
    compose_subject,
    list_id,
    set_envelope_headers,
    set_list_headers,
)
from chalicelib.relay.files import FileLinks, LinkedFile, link_attachments
from chalicelib.relay.names import clean_name
from chalicelib.relay.parse import InboundMail, clean_subject, header_text
from chalicelib.relay.parts import (
    MAX_DEPTH,
    MAX_FILENAME,
    MAX_PARTS,
    REMOVED_ATTACHMENT_NOTE,
    RenderState,
    build,
    clean_filename,
    collect_cids,
    finish_part,
    new_part,
    part_text,
)
from chalicelib.relay.placeholders import (
    MUTE_URL_PLACEHOLDER_HTML,
    MUTE_URL_PLACEHOLDER_TEXT,
    footer_html,
    footer_text,
    strip_placeholders,
)
from chalicelib.relay.scrub import scrubber_for
from chalicelib.relay.template import CopyTemplate, list_unsubscribe_headers, personalize

__all__ = [
    "MAX_DEPTH",
    "MAX_FILENAME",
    "MAX_PARTS",
    "MUTE_URL_PLACEHOLDER_HTML",
    "MUTE_URL_PLACEHOLDER_TEXT",
    "OUTPUT_POLICY",
    "REMOVED_ATTACHMENT_NOTE",
    "ChatContext",
    "CopyTemplate",
    "FileLinks",
    "LinkedFile",
    "Person",
    "Rendered",
    "anonymize",
    "clean_filename",
    "compose_subject",
    "decode_bytes",
    "footer_html",
    "footer_text",
    "list_id",
    "list_unsubscribe_headers",
    "part_text",
    "personalize",
    "render",
    "set_envelope_headers",
    "set_list_headers",
]


@dataclass(frozen=True)
class Rendered:
    message: bytes  # the one anonymized copy, with the mute placeholders
    files: tuple[LinkedFile, ...] = ()  # attachments that left it: store each once


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
    :func:`personalize` once per recipient. Every attachment stays inline; see
    :func:`render` for large ones.
    """
    return render(
        mail,
        author=author,
        people=people,
        chat=chat,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        date=date,
    ).message


def render(
    mail: InboundMail,
    *,
    author: Person,
    people: Sequence[Person],
    chat: ChatContext,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    date: datetime,
    files: FileLinks | None = None,
) -> Rendered:
    """:func:`anonymize`, and with ``files`` the largest attachments over
    ``files.limit`` replaced by notes with their links (issue 14)."""
    scrubber = scrubber_for(
        [(p.display_name, p.addresses) for p in (*people, author)],
        keep_domain=chat.relay_domain,
        phones=[(p.display_name, p.phones) for p in (*people, author)],
    )
    seed = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    state = RenderState(
        scrubber=scrubber,
        author_name=strip_placeholders(clean_name(author.display_name)) or "Participant",
        list_name=strip_placeholders(clean_subject(chat.list_name)),
        cids=collect_cids(mail.message, chat.relay_domain, seed),
        remote_content=chat.remote_content,
    )
    body = build(mail.message, state, 0)
    linked = link_attachments(state.attachments, files) if files is not None and state.attachments else []
    if body is None:
        body = new_part()
        body.set_content("", subtype="plain", cte="quoted-printable")
    if not (state.text_footer_done or state.html_footer_done):
        # No body text took the footer (an attachment-only message): lead with it.
        wrapper = new_part()
        wrapper[h.CONTENT_TYPE] = "multipart/mixed"
        note = new_part()
        note.set_content(
            footer_text(state.author_name, state.list_name).lstrip("\n"),
            subtype="plain",
            charset="utf-8",
            cte="quoted-printable",
        )
        wrapper.attach(finish_part(note))
        wrapper.attach(body)
        body = wrapper
    set_envelope_headers(
        body,
        from_name=state.author_name,
        chat=chat,
        # The header again, not mail.subject: cleaning there turned invisible
        # characters inside an address into spaces, which would split it.
        subject=compose_subject(header_text(mail.message, h.SUBJECT) or mail.subject, chat.subject_prefix, scrubber),
        message_id=message_id,
        date=date,
        in_reply_to=in_reply_to,
        references=references,
    )
    set_list_headers(body, chat)
    return Rendered(body.as_bytes(policy=OUTPUT_POLICY), tuple(linked))
