"""Small server-rendered pages (the mute settings page, organizer controls) and
the one form reader they share. Accessible, no JavaScript, never cached,
never indexed, no referrer."""

from __future__ import annotations

import html
from email.message import Message
from email.parser import BytesParser
from urllib.parse import parse_qs

from chalice import Response

MAX_FIELDS = 32
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;line-height:1.5;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}
h2{{font-size:1.1rem;margin-top:2rem}}
form{{margin:.75rem 0 .25rem}}
button{{font-size:1rem;padding:.6rem 1.2rem;min-height:44px;cursor:pointer}}
button:focus-visible{{outline:3px solid #1a5fb4;outline-offset:2px}}
.hint{{margin:0 0 1rem;color:#444;font-size:.95rem}}
.status{{padding:.75rem 1rem;border-left:4px solid #26a269;background:#eef8f0}}
</style></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>"""


def page(title: str, body: str, status: int = 200) -> Response:
    return Response(
        body=PAGE.format(title=html.escape(title), body=body),
        status_code=status,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
            "Referrer-Policy": "no-referrer",
        },
    )


def _urlencoded_fields(body: bytes) -> dict[str, list[str]] | None:
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None


def _multipart_fields(content_type: str, body: bytes) -> dict[str, list[str]] | None:
    """The fields of a multipart/form-data body (RFC 7578), parsed by the stdlib
    MIME parser under a synthesized header block."""
    if "\r" in content_type or "\n" in content_type:
        return None  # one header line only: nothing injected into the parsed head
    try:
        head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode("ascii")
    except UnicodeEncodeError:
        return None
    from email import policy  # on first use: email.policy's header registry is not cheap to import

    form = BytesParser(policy=policy.default).parsebytes(head + body)
    if form.get_content_type() != MULTIPART or not form.is_multipart():
        return None
    parts = form.get_payload()
    if not isinstance(parts, list) or not parts or len(parts) > MAX_FIELDS:
        return None  # no boundary found in the body, or a form far bigger than ours
    fields: dict[str, list[str]] = {}
    for part in parts:
        if not isinstance(part, Message) or part.get_content_disposition() != "form-data":
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return None
        try:
            fields.setdefault(name, []).append(payload.decode(part.get_content_charset() or "utf-8"))
        except (LookupError, UnicodeDecodeError):
            return None
    return fields


def form_fields(content_type: str, body: bytes) -> dict[str, list[str]] | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == MULTIPART:
        return _multipart_fields(content_type, body)
    if media in (URLENCODED, ""):  # no Content-Type: read the body as the RFC 8058 form
        return _urlencoded_fields(body)
    return None


def head(response: Response) -> Response:
    """A HEAD answer: what GET answered, without the body (link scanners prefetch
    with HEAD; like GET, it must change nothing)."""
    response.body = ""
    return response
