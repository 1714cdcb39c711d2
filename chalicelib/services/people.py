"""What people do to their own participation: mute (R11), and what SES tells us
about their addresses: bounces and complaints suppress them (R11)."""

from __future__ import annotations

import time
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.models import Participant, Suppression
from chalicelib.observability import logger, metrics
from chalicelib.relay.addresses import address_hash
from chalicelib.relay.tokens import TokenClaims, verify_token
from chalicelib.settings import Settings, get_settings


def read_mute_token(token: str, settings: Settings | None = None) -> TokenClaims | None:
    """The claims of a genuine, unexpired mute token; None for anything else."""
    settings = settings or get_settings()
    if len(token) > 512:
        return None
    return verify_token(settings.secret, token, now=int(time.time()), purpose="mute")


def mute(claims: TokenClaims) -> bool:
    """Mute one participant in one chat; False if they are no longer in it."""
    record = Participant(f"CH#{claims.chat_id}", f"P#{claims.participant_key}")
    try:
        record.update(actions=[Participant.muted.set(True)], condition=Participant.pk.exists())
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    metrics.add_metric(name="Muted", unit="Count", value=1)
    logger.info("participant muted", extra={"chat_id": claims.chat_id, "participant": claims.participant_key})
    return True


def suppress(address: str, reason: str, settings: Settings | None = None) -> int:
    """Stop mailing ``address`` everywhere; returns how many chat records changed."""
    settings = settings or get_settings()
    digest = address_hash(settings.secret, address)
    Suppression(f"SUP#{digest}", "META", reason=reason, at=clock.now()).save()
    changed = 0
    for key in Participant.address_index.query(digest):
        try:
            Participant(key.pk, key.sk).update(
                actions=[Participant.suppressed.set(True)], condition=Participant.pk.exists()
            )
            changed += 1
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
    metrics.add_metric(name="Suppressed", unit="Count", value=1)
    logger.info("address suppressed", extra={"address_hash": digest, "reason": reason, "records": changed})
    return changed


def handle_feedback(notification: dict[str, Any], settings: Settings | None = None) -> list[str]:
    """An SES event-publishing notification (via SNS). Hard bounces and
    complaints suppress at once; soft bounces are only counted."""
    kind = notification.get("eventType") or notification.get("notificationType") or ""
    reasons: list[str] = []
    if kind == "Bounce":
        bounce = notification.get("bounce", {})
        if bounce.get("bounceType") == "Permanent":
            for r in bounce.get("bouncedRecipients", []):
                suppress(str(r.get("emailAddress", "")), "hard_bounce", settings)
                reasons.append("hard_bounce")
        else:
            metrics.add_metric(name="SoftBounces", unit="Count", value=1)
    elif kind == "Complaint":
        for r in notification.get("complaint", {}).get("complainedRecipients", []):
            suppress(str(r.get("emailAddress", "")), "complaint", settings)
            reasons.append("complaint")
    return reasons


