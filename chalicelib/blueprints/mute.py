"""One-click mute (RFC 8058): POST mutes; GET only shows a confirmation page,
because link scanners prefetch GETs."""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from chalice import Blueprint, Response

from chalicelib.services.people import mute, read_mute_token

mute_bp = Blueprint(__name__)
ANY = ["*/*"]
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
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if parse_qs(raw).get("List-Unsubscribe") != ["One-Click"] and "List-Unsubscribe=One-Click" not in raw:
        return _page("Nothing changed", "<p>Expected <code>List-Unsubscribe=One-Click</code>.</p>", 400)
    mute(claims)
    return _page("Muted", "<p>You will not receive more messages from this chat.</p>")
