"""Organizer controls and report links (R15): ``/c/{token}``.

- ``GET`` shows what the link would do and one button (a POST form): it reads,
  never writes, because link scanners and mail previews fetch every link;
- ``HEAD`` answers the same headers and changes nothing (scanners prefetch with it);
- ``POST`` from that page acts (:meth:`Stewardship.act`) and shows the result.

A tampered, expired or foreign token is a 403 page and changes nothing. The
pages are plain HTML: no script, no remote resources, not cached or indexed.
"""

from __future__ import annotations

import html
from functools import cache
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.blueprints.pages import form_fields, head, page
from chalicelib.errors import ApiError
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.relay.controltokens import ControlClaims
    from chalicelib.services.stewardship import Stewardship

controls_bp = Blueprint(__name__)
ANY = ["*/*"]
MAX_BODY_BYTES = 8 * 1024
BUTTONS = {
    "remove": "Remove from this chat",
    "block": "Block from every chat",
    "private": "Open a private conversation",
    "close": "Close the chat",
    "reopen": "Reopen the chat",
    "hold": "Hold new messages",
    "release": "Stop holding messages",
    "approve": "Approve and share",
    "reject": "Decline",
    "report": "Report this message",
}


UNDO = {"close": "reopen", "reopen": "close", "hold": "release", "release": "hold"}


def _refused() -> Response:
    return page("Link not valid", "<p>This link is not valid or has expired. Nothing was changed.</p>", 403)


def _claims(token: str) -> ControlClaims | None:
    # Imported on first use: every function imports app.py (cold start).
    from chalicelib.services.links import read_control_token

    return read_control_token(token)


@cache
def steward() -> Stewardship:
    from chalicelib.services.stewardship import Stewardship

    return Stewardship()


def _report_fields() -> str:
    from chalicelib.services.stewardship import REPORT_REASONS

    options = "".join(
        f'<option value="{html.escape(r)}">{html.escape(r.capitalize())}</option>' for r in REPORT_REASONS
    )
    return (
        '<p><label for="reason">Why (optional)</label><br>'
        f'<select id="reason" name="reason"><option value="">Choose a reason</option>{options}</select></p>'
        '<p><label for="details">Anything the organizers should know (optional)</label><br>'
        '<textarea id="details" name="details" rows="3" cols="40" maxlength="500"></textarea></p>'
    )


@controls_bp.route("/c/{token}", methods=["GET"], content_types=ANY)
def confirm_control(token: str) -> Response:
    claims = _claims(token)
    if claims is None:
        return _refused()
    try:
        title, question = steward().describe(claims)
    except ApiError as err:
        return page("Nothing to do", f"<p>{html.escape(err.message)}</p>", err.status)
    extra = _report_fields() if claims.action == "report" else ""
    body = (
        f"<p>{html.escape(question)}</p>"
        f'<form method="post">{extra}<button type="submit">{html.escape(BUTTONS[claims.action])}</button></form>'
        '<p class="hint">Nothing happens until you press the button.</p>'
    )
    return page(title, body)


@controls_bp.route("/c/{token}", methods=["HEAD"], content_types=ANY)
def head_control(token: str) -> Response:
    return head(confirm_control(token))


@controls_bp.route("/c/{token}", methods=["POST"], content_types=ANY)
def act_control(token: str) -> Response:
    claims = _claims(token)
    if claims is None:
        return _refused()
    request = controls_bp.current_request
    body = request.raw_body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        return page("Nothing changed", "<p>The form is too large.</p>", 400)
    fields = form_fields(request.headers.get("content-type", ""), body) or {}
    reason = None
    if claims.action == "report":
        parts = [v for k in ("reason", "details") for v in fields.get(k, [])[:1] if v.strip()]
        reason = ": ".join(parts) or None
    try:
        result = steward().act(claims, reason=reason)
    except ApiError as err:
        return page("Nothing changed", f"<p>{html.escape(err.message)}</p>", err.status)
    except Exception:
        logger.exception("control failed", extra={"action": claims.action, "chat_id": claims.chat_id})
        return page("Something went wrong", "<p>Nothing was changed. Please try again in a minute.</p>", 503)
    title = "Done" if result.changed else "Nothing to change"
    body = f'<p class="status" role="status">{html.escape(result.message)}</p>'
    undo = UNDO.get(claims.action)
    if undo is not None:
        # The way back, from the same page: closing offers reopening, holding releasing.
        from chalicelib.services.links import control_url
        from chalicelib.settings import get_settings

        url = control_url(get_settings(), action=undo, chat_id=claims.chat_id, actor=claims.actor)
        body += (
            f'<form method="post" action="{html.escape(url, quote=True)}">'
            f'<button type="submit">{html.escape(BUTTONS[undo])}</button></form>'
        )
    return page(title, body)
