"""Integration API keys (R13): shown once, stored as a SHA-256 hash.

Keys carry 256 bits of randomness, so a fast hash is enough; a slow KDF would
only add latency to every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock
from chalicelib.errors import Unauthorized
from chalicelib.models import ApiKey

PREFIX = "mk_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(integration: str, name: str = "default") -> str:
    """Store a new key for ``integration``; return the only plaintext copy."""
    key = PREFIX + secrets.token_urlsafe(32)
    ApiKey(
        pk=f"KEY#{_digest(key)}",
        sk="META",
        integration=integration,
        name=name,
        created_at=clock.now(),
    ).save()
    return key


def revoke_key(key: str) -> None:
    """Revoke an existing key; raise DoesNotExist for a key that never was."""
    record = ApiKey.get(f"KEY#{_digest(key)}", "META", consistent_read=True)
    record.update(actions=[ApiKey.revoked.set(True)])


def authenticate(authorization: str | None) -> str:
    """Return the integration a bearer key belongs to, or raise 401."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send 'Authorization: Bearer <api key>'", "Authorization")
    key = key.strip()
    if not key.startswith(PREFIX) or len(key) > 200:
        raise Unauthorized("invalid API key", "Authorization")
    digest = _digest(key)
    try:
        record = ApiKey.get(f"KEY#{digest}", "META")
    except DoesNotExist:
        raise Unauthorized("invalid API key", "Authorization") from None
    # The lookup already matched the digest; compare again in constant time so a
    # future change to the lookup can't turn this into a timing oracle.
    if record.revoked or not hmac.compare_digest(record.pk, f"KEY#{digest}"):
        raise Unauthorized("invalid API key", "Authorization")
    return record.integration
