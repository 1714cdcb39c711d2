"""Large attachments stored once and downloaded through signed links (issue 14).

When a message's attachments total more than ``attachment_link_above`` bytes, the
renderer (:mod:`chalicelib.relay.files`) takes the largest out of the message and
puts a note with a link in their place. Here:

- :func:`links` makes those links: ``<public url>/files/<token>``, the token an
  HMAC (the deployment secret, purpose ``file``) over the Muster message id, the
  file's index and the expiry (:data:`LINK_DAYS` after the relay), so a link names
  one file and cannot be bent to another;
- :func:`store` writes each file once, at ``files/<message id>/<index>``, before
  the fan-out. The key derives from the inbound message, so a retried relay
  writes the same keys (R8); the bucket's encryption and lifecycle rule cover it;
- :func:`download` answers ``GET /files/{token}``: a genuine, unexpired token for a
  file that is still there gets a short-lived presigned S3 URL (API Gateway caps
  payloads at 10 MB, so the bytes never pass through the API).

The message is rendered once, so every copy carries the same link: whoever holds
a copy can download the file until the link expires, as they could keep the
attachment itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import quote

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.errors import Forbidden, Gone
from chalicelib.relay.files import FileLinks, LinkedFile
from chalicelib.relay.tokens import open_file_token, sign_file_token
from chalicelib.settings import Settings, get_settings

PREFIX = "files/"
LINK_DAYS = 14  # the raw mail's retention (MailRetentionDays): the lifecycle rule removes the files then too
DOWNLOAD_SECONDS = 300  # the presigned URL: long enough to start the download
MAX_TOKEN_LENGTH = 512


def key(message_id: str, index: int) -> str:
    return f"{PREFIX}{message_id}/{index}"


def links(settings: Settings, message_id: str, now: datetime) -> FileLinks:
    """The renderer's budget and the signed links of ``message_id``'s files."""
    expires = now + timedelta(days=LINK_DAYS)
    expires_at = int(expires.timestamp())

    def url(index: int) -> str:
        token = sign_file_token(settings.secret, message_id=message_id, index=index, expires_at=expires_at)
        return f"{settings.public_url}/files/{token}"

    return FileLinks(limit=settings.attachment_link_above, url=url, expires=expires)


def content_disposition(filename: str) -> str:
    """``attachment`` with the (already cleaned) name, ASCII fallback plus RFC 6266's
    ``filename*``: the browser saves the file under its name and never renders it."""
    fallback = re.sub(r'[^\x20-\x7e]|["\\%;]', "_", filename) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def store(blobs: MailStore, message_id: str, files: Sequence[LinkedFile]) -> None:
    """Each linked file once, under a key derived from the message (R8)."""
    for f in files:
        blobs.put(key(message_id, f.index), f.data, f.content_type, disposition=content_disposition(f.filename))


def download(token: str, settings: Settings | None = None, blobs: MailStore | None = None) -> str:
    """A presigned URL of the file ``token`` names. 403 ``invalid_link`` for a
    tampered token; 410 ``link_expired`` for an expired one or a file the
    lifecycle rule already removed."""
    settings = settings or get_settings()
    claims = open_file_token(settings.secret, token) if len(token) <= MAX_TOKEN_LENGTH else None
    if claims is None:
        raise Forbidden("this download link is not valid", "token", code="invalid_link")
    if claims.expired(int(clock.now().timestamp())):
        raise Gone("this download link has expired", "token", code="link_expired")
    blobs = blobs or MailStore(bucket=settings.mail_bucket, region=settings.region)
    path = key(claims.message_id, claims.index)
    if not blobs.exists(path):
        raise Gone("this file is no longer available", "token", code="link_expired")
    return blobs.download_url(path, DOWNLOAD_SECONDS)
