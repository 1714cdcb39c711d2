"""Texts (issue 12): inbound two-way SMS (SNS → ``sms_inbound``) and the short
links a text carries (``GET /t/{token}``: the whole message, or one attachment).

The page shows the anonymized message's text (the relay's one rendered copy:
addresses and phone numbers already scrubbed) and nothing else: no address, no
number, no tracking; the token is signed and expires with the stored copy.
"""

from __future__ import annotations

import html
import json
import os

from chalice import Blueprint, Response
from chalice.app import SNSEvent

from chalicelib.blueprints.pages import page
from chalicelib.observability import logger, metrics

sms_bp = Blueprint(__name__)
INBOUND_TOPIC = os.environ.get("MUSTER_SMS_INBOUND_TOPIC", "muster-dev-sms-inbound")
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


@sms_bp.on_sns_message(topic=INBOUND_TOPIC, name="sms_inbound")
def sms_inbound(event: SNSEvent) -> str:
    try:
        message = json.loads(event.message)
    except ValueError:
        logger.warning("inbound text is not JSON; ignored")
        return "ignored"
    if not isinstance(message, dict):
        return "ignored"
    from chalicelib.services.sms import SmsInboundService  # first use: cold starts

    return SmsInboundService().handle(message, event.context)


@sms_bp.route("/t/{token}", methods=["GET"])
def text_link(token: str) -> Response:
    from chalicelib import clock
    from chalicelib.adapters import aws
    from chalicelib.adapters.blobs import MailStore
    from chalicelib.relay import sms as core
    from chalicelib.services.sms_copies import attachment_key
    from chalicelib.settings import get_settings

    settings = get_settings()
    claims = core.open_link(settings.secret, token)
    if claims is None:
        metrics.add_metric(name="TextLinkRefused_invalid", unit="Count", value=1)
        return page("Link not valid", "<p>This link is not valid.</p>", 403)
    message_id, index, expires_at = claims
    if expires_at <= int(clock.now().timestamp()):
        return page("Link expired", "<p>This link has expired.</p>", 410)
    store = MailStore(bucket=settings.mail_bucket, region=settings.region)
    if index > 0:
        key = attachment_key(message_id, index)
        try:
            store.client.head_object(Bucket=store.bucket, Key=key)
        except Exception:
            return page("Link expired", "<p>This file is no longer available.</p>", 410)
        url = aws.s3_presigner(settings.region).generate_presigned_url(
            "get_object", Params={"Bucket": store.bucket, "Key": key}, ExpiresIn=300
        )
        return Response(body="", status_code=302, headers={"Location": url, **NO_STORE})
    try:
        source = core.source_of(store.get(f"outbound/{message_id}.eml"))
    except Exception:
        return page("Link expired", "<p>This message is no longer available.</p>", 410)
    metrics.add_metric(name="TextLinkPages", unit="Count", value=1)
    names = "".join(
        f"<li>{html.escape(a.name)} ({core.attachment_kind(a.content_type)})</li>" for a in source.attachments
    )
    body = f"<pre style='white-space:pre-wrap'>{html.escape(source.full_text)}</pre>"
    if names:
        body += f"<p>Attachments (linked in the text):</p><ul>{names}</ul>"
    return page("Chat message", body)
