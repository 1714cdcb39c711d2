"""The signed per-person link every copy, kickoff and digest carries (R11, issue 9).

One token (purpose ``mute``: chat and participant, HMAC-signed, expiring) opens
the reader's chat settings page and is the RFC 8058 one-click target. It is
signed here and read here, so fan-out, digests and the page agree on it.
"""

from __future__ import annotations

import time

from chalicelib import clock
from chalicelib.relay import stewardmail
from chalicelib.relay.controltokens import ControlClaims, read_control, sign_control
from chalicelib.relay.tokens import TokenClaims, sign_token, verify_token
from chalicelib.settings import Settings, get_settings

MUTE_DAYS = 400
MAX_TOKEN_LENGTH = 512


def mute_url(settings: Settings, chat_id: str, participant_key: str) -> str:
    """The reader's signed settings link."""
    token = sign_token(
        settings.secret,
        chat_id=chat_id,
        participant_key=participant_key,
        purpose="mute",
        expires_at=int(time.time()) + MUTE_DAYS * 86400,
    )
    return f"{settings.public_url}/mute/{token}"


def read_mute_token(token: str, settings: Settings | None = None) -> TokenClaims | None:
    """The claims of a genuine, unexpired token; None for anything else."""
    settings = settings or get_settings()
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    return verify_token(settings.secret, token, now=int(time.time()), purpose="mute")


# -- organizer controls and report links (R15, issue 10) ------------------------------

CONTROL_DAYS = 30


def control_url(
    settings: Settings, *, action: str, chat_id: str, actor: str, target: str = "-", expires_at: int | None = None
) -> str:
    """A signed control link: GET confirms, only POST acts (``/c/{token}``)."""
    if expires_at is None:
        expires_at = int(clock.now().timestamp()) + CONTROL_DAYS * 86400
    token = sign_control(
        settings.secret,
        deployment=settings.deployment,
        action=action,
        chat_id=chat_id,
        actor=actor,
        target=target,
        expires_at=expires_at,
    )
    return f"{settings.public_url}/c/{token}"


def read_control_token(token: str, settings: Settings | None = None) -> ControlClaims | None:
    """The claims of a genuine, unexpired control token of this deployment."""
    settings = settings or get_settings()
    return read_control(settings.secret, token, deployment=settings.deployment, now=int(clock.now().timestamp()))


def copy_controls(
    settings: Settings,
    *,
    chat_id: str,
    reader_key: str,
    reader_is_organizer: bool,
    message_id: str,
    author_key: str | None,
    author_name: str | None,
    author_is_organizer: bool,
    chat_held: bool,
    expires_at: int,
    private: bool = False,
) -> tuple[str, str]:
    """The control lines of one reader's copy of one relayed message (text, HTML):
    organizers get the controls, everyone else the report link. ``expires_at`` is
    computed once per batch (fan-out builds these per copy)."""
    if not reader_is_organizer:
        url = control_url(
            settings, action="report", chat_id=chat_id, actor=reader_key, target=message_id, expires_at=expires_at
        )
        return stewardmail.attendee_controls(url)
    actions: list[tuple[str, str]] = []
    if author_key and not author_is_organizer:
        actions += [("remove", author_key), ("block", author_key)]
        if not private:  # in a private conversation, replying *is* private
            actions.append(("private", author_key))
    actions += [("release" if chat_held else "hold", "-"), ("close", "-")]
    controls = [
        stewardmail.Control(
            action,
            control_url(
                settings, action=action, chat_id=chat_id, actor=reader_key, target=target, expires_at=expires_at
            ),
        )
        for action, target in actions
    ]
    return stewardmail.organizer_controls(author_name, controls)
