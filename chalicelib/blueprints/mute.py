"""The signed link in every copy's footer and ``List-Unsubscribe`` (R11, R15, issue 9).

``GET /mute/{token}`` is the reader's "chat settings" page: it shows how they
follow the chat and offers one button (a POST form) per change -- mute or
unmute, a daily digest or every message, leave (or rejoin). A GET never
changes anything, because link scanners prefetch GETs; only a POST acts.

``POST /mute/{token}`` acts only on a genuine token, and only on one of:

- the RFC 8058 one-click form, ``List-Unsubscribe=One-Click``: mutes, exactly
  as mailbox providers expect (the page's mute button posts the same form);
- ``action=unmute|leave|each|digest``: the page's other buttons.

The form may come as ``multipart/form-data`` (what RFC 8058 §3.1 says mailbox
providers SHOULD send) or ``application/x-www-form-urlencoded`` (what a browser
sends). A tampered or expired token is a 403 and changes nothing.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.blueprints.pages import form_fields as _form
from chalicelib.blueprints.pages import head
from chalicelib.blueprints.pages import page as _page
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.relay.tokens import TokenClaims
    from chalicelib.services import people

mute_bp = Blueprint(__name__)
ANY = ["*/*"]
MAX_BODY_BYTES = 8 * 1024  # the one-click form is 26 bytes; multipart adds ~150
ACTIONS = ("unmute", "leave", "each", "digest")


def _refused() -> Response:
    return _page("Link not valid", "<p>This link is not valid or has expired. Nothing was changed.</p>", 403)


def _nothing_changed(why: str = "Expected a form with <code>List-Unsubscribe=One-Click</code>.") -> Response:
    return _page("Nothing changed", f"<p>{why}</p>", 400)


# -- the page ----------------------------------------------------------------------


def _button(action: str, label: str, hint: str = "") -> str:
    field = (
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        if action == "mute"
        else f'<input type="hidden" name="action" value="{html.escape(action)}">'
    )
    note = f'<p class="hint">{html.escape(hint)}</p>' if hint else ""
    return f'<form method="post">{field}<button type="submit">{html.escape(label)}</button></form>{note}'


def _settings_body(state: people.Following, done: str | None = None) -> str:
    p, chat = state.person, state.chat
    hour = get_settings().digest_hour
    digest_hint = f"One email a day, after {hour:02d}:00 ({chat.timezone}), with that day's messages."
    parts = [f'<p class="status" role="status">{html.escape(done)}</p>'] if done else []
    parts.append(f"<p>Chat: <strong>{html.escape(chat.title)}</strong></p>")
    if p.left:
        now = (
            "You left this chat: you get no messages from it, and signing up again for this "
            "shift does not add you back."
        )
    elif not state.active:
        now = "You are no longer signed up for this shift, so you get no messages from its chat."
    elif p.muted:
        now = "This chat is muted: you get no messages from it."
    elif state.delivery == "digest":
        now = f"You get a daily digest: {digest_hint[0].lower()}{digest_hint[1:]}"
    else:
        now = "You get every message as it is sent."
    parts.append(f"<p>{html.escape(now)}</p>")
    if p.suppressed:
        parts.append("<p>Mail to your address bounced or was reported as spam, so Muster no longer sends to it.</p>")
    parts.append("<h2>Change how you follow this chat</h2>")
    if p.left:
        parts.append(_button("unmute", "Rejoin this chat", "Messages reach you again, as before you left."))
        return "\n".join(parts)
    if state.delivery == "digest":
        parts.append(_button("each", "Get every message instead", "Each message as it is sent."))
    else:
        parts.append(_button("digest", "Get a daily digest instead", digest_hint))
    if p.muted:
        parts.append(_button("unmute", "Unmute this chat"))
    else:
        parts.append(_button("mute", "Mute this chat", "No more messages until you unmute it here."))
    parts.append(
        _button(
            "leave",
            "Leave this chat",
            "Muted for good: signing up again for this shift does not add you back. You can rejoin here.",
        )
    )
    return "\n".join(parts)


def _settings_page(claims: TokenClaims, title: str = "Your chat settings", done: str | None = None) -> Response:
    from chalicelib.services import people

    state = people.following(claims)
    if state is None:
        return _page("Not in this chat", "<p>You are not in this chat any more, so it sends you nothing.</p>", 404)
    return _page(title, _settings_body(state, done))


DONE = {
    "unmute": ("Unmuted", "Done: messages from this chat reach you again."),
    "leave": ("You left the chat", "Done: you left this chat."),
    "each": ("Every message", "Done: you get every message as it is sent."),
    "digest": ("Daily digest", "Done: you get one email a day with that day's messages."),
}


# -- routes --------------------------------------------------------------------------


@mute_bp.route("/mute/{token}", methods=["GET"], content_types=ANY)
def confirm_mute(token: str) -> Response:
    # Imported on first use (people -> digest): every function imports app.py.
    from chalicelib.services import people

    claims = people.read_mute_token(token)
    if claims is None:
        return _refused()
    return _settings_page(claims)


@mute_bp.route("/mute/{token}", methods=["HEAD"], content_types=ANY)
def head_mute(token: str) -> Response:
    return head(confirm_mute(token))


@mute_bp.route("/mute/{token}", methods=["POST"], content_types=ANY)
def one_click_mute(token: str) -> Response:
    from chalicelib.services import people

    claims = people.read_mute_token(token)
    if claims is None:
        return _refused()
    request = mute_bp.current_request
    body = request.raw_body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        return _page("Nothing changed", "<p>The form is too large.</p>", 400)
    fields = _form(request.headers.get("content-type", ""), body)
    if fields is None:
        return _nothing_changed()
    if "List-Unsubscribe" in fields:
        if fields["List-Unsubscribe"] != ["One-Click"]:
            return _nothing_changed()
        people.mute(claims)  # RFC 8058: always a 2xx, even for someone no longer in the chat
        state = people.following(claims)
        if state is None:
            return _page("Muted", "<p>You will not receive more messages from this chat.</p>")
        return _page("Muted", _settings_body(state, "Done: you will not receive more messages from this chat."))
    action = fields.get("action", [])
    if len(action) != 1 or action[0] not in ACTIONS:
        return _nothing_changed()
    changed = {
        "unmute": people.unmute,
        "leave": people.leave,
        "each": lambda c: people.set_delivery(c, "each"),
        "digest": lambda c: people.set_delivery(c, "digest"),
    }[action[0]](claims)
    if not changed:
        return _page("Not in this chat", "<p>You are not in this chat any more. Nothing was changed.</p>", 404)
    title, done = DONE[action[0]]
    return _settings_page(claims, title, done)
