"""Bring a Friend referral codes (issue 11): personal, signed, opaque, short.

A code names one signup of one event of one deployment and nothing else can be
read from it. It is a deterministic authenticated encryption (SIV-like, stdlib
only): ``tag = HMAC(key, deployment | event | signup)[:10]``, the signup id is
XORed with a keystream derived from the tag, and the code is
``base64url(tag + ciphertext)``. Reading it derives the keystream from the tag,
recovers the signup id and checks the tag: a tampered byte, another event's code
or another deployment's code fails (None), and no DB lookup is needed. The same
signup always gets the same code, so the kickoff and every digest carry one link.
Ids are at most 100 ASCII characters (``vocab.EXTERNAL_ID``): a code is at most
147 characters, URL-safe as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache

TAG_BYTES = 10
MAX_ID_BYTES = 100


@lru_cache(maxsize=4)
def _key(secret: bytes) -> bytes:
    if len(secret) < 16:
        raise ValueError("referral codes need a secret of at least 16 bytes")
    return hmac.new(secret, b"muster/referral/v1", hashlib.sha256).digest()


def _tag(key: bytes, deployment: str, event: str, signup_id: bytes) -> bytes:
    msg = b"\x1f".join((deployment.encode(), event.encode(), signup_id))
    return hmac.new(key, msg, hashlib.sha256).digest()[:TAG_BYTES]


def _stream(key: bytes, tag: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hmac.new(key, b"ks" + tag + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return out[:length]


def sign_ref(secret: bytes, *, deployment: str, event: str, signup_id: str) -> str:
    """``event`` is the integration and event (``<integration>/<event id>``)."""
    raw = signup_id.encode("ascii")
    if not raw or len(raw) > MAX_ID_BYTES:
        raise ValueError("a signup id is 1-100 ASCII characters")
    key = _key(secret)
    tag = _tag(key, deployment, event, raw)
    cipher = bytes(a ^ b for a, b in zip(raw, _stream(key, tag, len(raw)), strict=True))
    return base64.urlsafe_b64encode(tag + cipher).rstrip(b"=").decode("ascii")


def read_ref(secret: bytes, ref: str, *, deployment: str, event: str) -> str | None:
    """The signup id a genuine code of this deployment and event names; None otherwise."""
    if not ref or len(ref) > 200 or not ref.isascii():
        return None
    try:
        data = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(data) <= TAG_BYTES:
        return None
    key = _key(secret)
    tag, cipher = data[:TAG_BYTES], data[TAG_BYTES:]
    raw = bytes(a ^ b for a, b in zip(cipher, _stream(key, tag, len(cipher)), strict=True))
    if not hmac.compare_digest(_tag(key, deployment, event, raw), tag):
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:  # pragma: no cover -- the tag matched: we signed ASCII
        return None
