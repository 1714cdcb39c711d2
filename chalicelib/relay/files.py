"""Large attachments as links (issue 14): which attachments leave the message, and
the note each copy carries instead.

The renderer records every attachment it rebuilt (already scrubbed and checked:
text-like ones decoded and scrubbed, binaries checked for participants' addresses,
names cleaned) as an :class:`Attachment`. When they total more than
:attr:`FileLinks.limit` bytes, the largest leave the message, one by one, until
the rest fits; each is replaced *in place* by a short note (text and HTML: name,
size, a download link and its expiry) and handed back as a :class:`LinkedFile`
(its bytes, name and type), for the service to store once before the fan-out.

The message is rendered once, so the link is the same for every recipient:
whoever holds a copy can download until the link expires, as they could keep the
attachment itself. Pure: the link itself comes from :attr:`FileLinks.url`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from chalicelib.relay import headers as h


@dataclass
class Attachment:
    """One rebuilt attachment, as it would go out inline."""

    part: EmailMessage  # the rebuilt part, inside the rendered tree
    filename: str | None  # cleaned and scrubbed
    content_type: str
    data: bytes  # the content as it would be delivered (scrubbed text is UTF-8)


@dataclass(frozen=True)
class LinkedFile:
    """An attachment that left the message: stored once, downloaded by link."""

    index: int  # 0, 1, ... in the order of the message
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class FileLinks:
    """How the renderer links files: the inline budget and the signed links."""

    limit: int  # attachments may total this many bytes inline; above it the largest leave
    url: Callable[[int], str]  # the download link of linked file ``index``
    expires: datetime  # when the links stop working (shown in the note)


def choose(sizes: Sequence[int], limit: int) -> list[int]:
    """Which attachments to link: the largest first (the earlier on a tie) until
    the rest total at most ``limit`` bytes. Indexes in message order."""
    total = sum(sizes)
    chosen: list[int] = []
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        if total <= limit:
            break
        chosen.append(i)
        total -= sizes[i]
    return sorted(chosen)


def human_size(n: int) -> str:
    """1.5 MB, 820 KB, 12 bytes (binary units, as mail clients show them)."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def _until(expires: datetime) -> str:
    return f"{expires:%d %b %Y} (UTC)"


def note_text(name: str, size: int, url: str, expires: datetime) -> str:
    return (
        f"Attachment: {name} ({human_size(size)}), too large to send with every copy.\n"
        f"Download it until {_until(expires)}:\n"
        f"{url}\n"
    )


def note_html(name: str, size: int, url: str, expires: datetime) -> str:
    href = html.escape(url, quote=True)
    return (
        '<p style="margin:1em 0;padding:.5em .75em;border-left:3px solid #999">'
        f'Attachment: <a href="{href}">{html.escape(name)}</a> ({human_size(size)}), '
        f"too large to send with every copy. Download it until {_until(expires)}.</p>\n"
    )


def _replace_with_note(part: EmailMessage, text: str, markup: str) -> None:
    part.clear()
    part.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    part.add_alternative(markup, subtype="html", charset="utf-8", cte="quoted-printable")
    for sub in part.walk():
        del sub[h.MIME_VERSION]  # set once, on the top-level message


def link_attachments(attachments: Sequence[Attachment], links: FileLinks) -> list[LinkedFile]:
    """Replace the attachments :func:`choose` picks by notes; their files, in order."""
    out: list[LinkedFile] = []
    for index, i in enumerate(choose([len(a.data) for a in attachments], links.limit)):
        a = attachments[i]
        name = a.filename or f"attachment-{index + 1}"
        url = links.url(index)
        _replace_with_note(
            a.part,
            note_text(name, len(a.data), url, links.expires),
            note_html(name, len(a.data), url, links.expires),
        )
        out.append(LinkedFile(index, name, a.content_type, a.data))
    return out
