"""One-click mute (RFC 8058): POST mutes; GET only shows a confirmation page,
because link scanners prefetch GETs.

The POST acts only on a genuine token AND a form field ``List-Unsubscribe`` whose
value is ``One-Click``. The form may come as ``multipart/form-data`` (what RFC 8058
§3.1 says mailbox providers SHOULD send) or ``application/x-www-form-urlencoded``
(what a browser sends from the confirmation page).
"""

from __future__ import annotations

import html
from email import policy
from email.message import Message
from email.parser import BytesParser
from urllib.parse import parse_qs

from chalice import Blueprint, Response

from chalicelib.services.people import mute, read_mute_token

mute_bp = Blueprint(__name__)
ANY = ["*/*"]
MAX_BODY_BYTES = 8 * 1024  # the one-click form is 26 bytes; multipart adds ~150
MAX_FIELDS = 32
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head><body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> Response:
    return Response(
        body=PAGE.format(title=html.escape(title), body=body),
        status_code=status,
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
    )


def _refused() -> Response:
    return _page("Link not valid", "<p>This mute link is not valid or has expired.</p>", 403)


def _nothing_changed() -> Response:
    return _page("Nothing changed", "<p>Expected a form with <code>List-Unsubscribe=One-Click</code>.</p>", 400)


def _urlencoded_values(body: bytes) -> list[str] | None:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    return fields.get("List-Unsubscribe", [])


def _multipart_values(content_type: str, body: bytes) -> list[str] | None:
    """The ``List-Unsubscribe`` values of a multipart/form-data body (RFC 7578),
    parsed by the stdlib MIME parser under a synthesized header block."""
    if "\r" in content_type or "\n" in content_type:
        return None  # one header line only: nothing injected into the parsed head
    try:
        head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode("ascii")
    except UnicodeEncodeError:
        return None
    form = BytesParser(policy=policy.default).parsebytes(head + body)
    if form.get_content_type() != MULTIPART or not form.is_multipart():
        return None
    parts = form.get_payload()
    if not isinstance(parts, list) or not parts or len(parts) > MAX_FIELDS:
        return None  # no boundary found in the body, or a form far bigger than ours
    values = []
    for part in parts:
        if not isinstance(part, Message) or part.get_content_disposition() != "form-data":
            continue
        if part.get_param("name", header="content-disposition") != "List-Unsubscribe" or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return None
        try:
            values.append(payload.decode(part.get_content_charset() or "utf-8"))
        except (LookupError, UnicodeDecodeError):
            return None
    return values


def _one_click(content_type: str, body: bytes) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == MULTIPART:
        values = _multipart_values(content_type, body)
    elif media in (URLENCODED, ""):  # no Content-Type: read the body as the RFC 8058 form
        values = _urlencoded_values(body)
    else:
        return False
    return values == ["One-Click"]


@mute_bp.route("/mute/{token}", methods=["GET"], content_types=ANY)
def confirm_mute(token: str) -> Response:
    if read_mute_token(token) is None:
        return _refused()
    return _page(
        "Mute this chat?",
        '<p>You will stop receiving messages from this shift\'s chat.</p>'
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Mute this chat</button></form>',
    )


@mute_bp.route("/mute/{token}", methods=["POST"], content_types=ANY)
def one_click_mute(token: str) -> Response:
    claims = read_mute_token(token)
    if claims is None:
        return _refused()
    request = mute_bp.current_request
    body = request.raw_body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        return _page("Nothing changed", "<p>The form is too large.</p>", 400)
    if not _one_click(request.headers.get("content-type", ""), body):
        return _nothing_changed()
    mute(claims)
    return _page("Muted", "<p>You will not receive more messages from this chat.</p>")
