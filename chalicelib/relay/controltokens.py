"""Signed organizer controls and report links (R15, issue 10).

A control token grants one action, by one person, on one target, in one chat of
one deployment, until it expires::

    base64url("c1|<deployment>|<action>|<chat id>|<actor key>|<target>|<expires>")
    + "." + base64url(HMAC-SHA256(K, payload))

``K`` is derived from the deployment secret for this purpose alone, so a control
token can never pass for a mute token or the other way round; the deployment
(stage and relay domain) is in the payload, so a token minted by another
deployment that happens to share a secret is refused too. The ids are Muster's
opaque chat ids, participant keys and message ids: nothing guessable, never an
address. Verification checks every bound field against what the caller expects
(:func:`verify_control`), so a genuine token replayed on another chat, by another
person or on another target changes nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from chalicelib.relay.tokens import purpose_key, seal, unseal

VERSION = "c1"
SEP = "|"
MAX_TOKEN_LENGTH = 600

# action -> what the target names ("author": a participant key; "message": a
# message id; "chat": the chat itself, target "-")
ACTIONS: dict[str, str] = {
    "remove": "author",
    "block": "author",
    "private": "author",
    "close": "chat",
    "reopen": "chat",
    "hold": "chat",
    "release": "chat",
    "approve": "message",
    "reject": "message",
    "report": "message",
}


@dataclass(frozen=True)
class ControlClaims:
    deployment: str
    action: str
    chat_id: str
    actor: str
    target: str
    expires_at: int


def _key(secret: bytes) -> bytes:
    return purpose_key(secret, b"muster/control-token/v1", "control")


def sign_control(
    secret: bytes, *, deployment: str, action: str, chat_id: str, actor: str, target: str = "-", expires_at: int
) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}")
    fields = (VERSION, deployment, action, chat_id, actor, target, str(int(expires_at)))
    return seal(_key(secret), fields, what="control", sep=SEP)


def read_control(secret: bytes, token: str, *, deployment: str, now: int) -> ControlClaims | None:
    """The claims of a genuine, unexpired token of this deployment; None otherwise."""
    fields = unseal(_key(secret), token, max_length=MAX_TOKEN_LENGTH, sep=SEP)
    if fields is None or len(fields) != 7:
        return None
    version, dep, action, chat_id, actor, target, expires = fields
    try:
        expires_at = int(expires)
    except ValueError:
        return None
    if version != VERSION or dep != deployment or action not in ACTIONS or expires_at <= now:
        return None
    return ControlClaims(dep, action, chat_id, actor, target, expires_at)


def verify_control(
    secret: bytes,
    token: str,
    *,
    deployment: str,
    now: int,
    chat_id: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
) -> ControlClaims | None:
    """:func:`read_control`, and every given field must match the claims."""
    claims = read_control(secret, token, deployment=deployment, now=now)
    if claims is None:
        return None
    for want, have in (
        (chat_id, claims.chat_id),
        (actor, claims.actor),
        (target, claims.target),
        (action, claims.action),
    ):
        if want is not None and not hmac.compare_digest(want.encode(), have.encode()):
            return None
    return claims
