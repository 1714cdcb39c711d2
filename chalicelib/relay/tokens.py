"""Signed tokens: the per-person settings/unsubscribe link (R11) and the
download link of a large attachment (issue 14).

Format: ``base64url(payload) + "." + base64url(HMAC-SHA256(key, payload))`` where the
payload is ``v1|purpose|a|b|expires_at``: for purpose ``mute`` the chat id and the
participant key, for purpose ``file`` the Muster message id and the file's index.
The ids are the opaque ids Muster already uses, never emails, so a readable payload
reveals nothing guessable; the MAC (over the purpose too, so one kind of link never
passes for the other) makes it unforgeable and is compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_VERSION = "v1"
_SEP = "|"
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class TokenClaims:
    chat_id: str
    participant_key: str
    purpose: str
    expires_at: int


def b64e(data: bytes) -> str:
    """base64url without padding: what every signed link of Muster carries."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


_b64e, _b64d = b64e, b64d


@lru_cache(maxsize=8)
def purpose_key(secret: bytes, label: bytes, what: str) -> bytes:
    """A key for one kind of token only (``label``, e.g. ``b"muster/control-token/v1"``),
    derived from the deployment secret, so no kind of token passes for another.
    Derived once per container and kind."""
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"{what} tokens need a secret of at least {MIN_KEY_BYTES} bytes")
    return hmac.new(secret, label, hashlib.sha256).digest()


def seal(key: bytes, fields: Sequence[str], *, what: str, sep: str = "|") -> str:
    """``base64url(fields joined by sep) "." base64url(HMAC-SHA256(key, ...))``: the
    shape of the control and next-step links. Each field non-empty printable
    ASCII without ``sep``."""
    for value in fields:
        if not value or sep in value or not value.isprintable() or not value.isascii():
            raise ValueError(f"{what} token fields must be non-empty printable ASCII without {sep!r}")
    raw = sep.join(fields).encode("ascii")
    return f"{b64e(raw)}.{b64e(hmac.new(key, raw, hashlib.sha256).digest())}"


def unseal(key: bytes, token: str, *, max_length: int, sep: str = "|") -> list[str] | None:
    """The fields of a genuine :func:`seal` token (MAC compared in constant time); None for anything else."""
    if not token or len(token) > max_length or not token.isascii():
        return None
    try:
        body, dot, sig = token.strip().partition(".")
        if not dot:
            return None
        raw = b64d(body)
        if not hmac.compare_digest(hmac.new(key, raw, hashlib.sha256).digest(), b64d(sig)):
            return None
        return raw.decode("ascii").split(sep)
    except (ValueError, binascii.Error, UnicodeError):
        return None


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"token key must be at least {MIN_KEY_BYTES} bytes")


def sign_token(key: bytes, *, chat_id: str, participant_key: str, purpose: str = "mute", expires_at: int) -> str:
    """A URL-safe token granting ``purpose`` for one participant in one chat."""
    _check_key(key)
    for field in (chat_id, participant_key, purpose):
        if not field or _SEP in field or not field.isprintable():
            raise ValueError("token fields must be non-empty printable text without '|'")
    payload = _SEP.join((_VERSION, purpose, chat_id, participant_key, str(int(expires_at))))
    raw = payload.encode("utf-8")
    return f"{_b64e(raw)}.{_b64e(_mac(key, raw))}"


def open_token(key: bytes, token: str, *, purpose: str | None = "mute") -> TokenClaims | None:
    """The claims of a genuine token for ``purpose``, expired or not; None for a
    tampered, malformed or other-purpose token. The caller checks the expiry."""
    _check_key(key)
    try:
        body, _, sig = token.strip().partition(".")
        raw = _b64d(body)
        if not hmac.compare_digest(_mac(key, raw), _b64d(sig)):
            return None
        version, tok_purpose, chat_id, participant_key, expires = raw.decode("utf-8").split(_SEP)
        expires_at = int(expires)
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if version != _VERSION:
        return None
    if purpose is not None and tok_purpose != purpose:
        return None
    return TokenClaims(chat_id, participant_key, tok_purpose, expires_at)


def verify_token(key: bytes, token: str, *, now: int, purpose: str | None = "mute") -> TokenClaims | None:
    """The claims of a genuine, unexpired token for ``purpose``; None otherwise.

    Pass ``purpose=None`` to accept any purpose (the caller then checks it).
    """
    claims = open_token(key, token, purpose=purpose)
    if claims is None or claims.expires_at <= now:
        return None
    return claims


# -- download links of large attachments (issue 14) --------------------------------

FILE_PURPOSE = "file"


@dataclass(frozen=True)
class FileClaims:
    message_id: str
    index: int
    expires_at: int

    def expired(self, now: int) -> bool:
        return self.expires_at <= now


def sign_file_token(key: bytes, *, message_id: str, index: int, expires_at: int) -> str:
    """A URL-safe token for file ``index`` of Muster message ``message_id``, until ``expires_at``."""
    if index < 0:
        raise ValueError("a file index is 0 or more")
    return sign_token(key, chat_id=message_id, participant_key=str(index), purpose=FILE_PURPOSE, expires_at=expires_at)


def open_file_token(key: bytes, token: str) -> FileClaims | None:
    """The claims of a genuine file token (expired or not); None if tampered."""
    claims = open_token(key, token, purpose=FILE_PURPOSE)
    if claims is None or not (claims.participant_key.isascii() and claims.participant_key.isdigit()):
        return None
    return FileClaims(claims.chat_id, int(claims.participant_key), claims.expires_at)
