"""The signed per-person link every copy, kickoff and digest carries (R11, issue 9).

One token (purpose ``mute``: chat and participant, HMAC-signed, expiring) opens
the reader's chat settings page and is the RFC 8058 one-click target. It is
signed here and read here, so fan-out, digests and the page agree on it.
"""

from __future__ import annotations

import time

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
