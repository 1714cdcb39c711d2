"""SES feedback (R11, issue 10): hard bounces and complaints suppress an
address at once; soft bounces are scored, GNU Mailman's way.

A soft bounce (``Transient``, ``Undetermined``) adds ``soft_bounce_score`` (0.5)
to the address's score; at ``bounce_score_limit`` (5) the address is suppressed;
a score whose last bounce is older than ``bounce_decay_days`` (7) starts again
from zero. Unlike Mailman 2, every distinct bounce counts, not at most one a day.

The score (``SUP#<hash>``/``SCORE``, :class:`~chalicelib.models.BounceScore`) is
changed by one conditional UpdateItem per notification, in one of two variants,
each guarded by its own condition: *continue* (``ADD score``, only while the
last bounce is within the decay window) and *reset* (``SET score``, only when
there is no score or it is stale). Both also require that the notification's SES
feedback id is not yet in ``feedback_ids``, so an SNS redelivery counts once,
two concurrent notifications can never both reset, and nothing adds to a stale
score. Suppressing itself is :mod:`chalicelib.services.suppressions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.models import BounceScore
from chalicelib.observability import logger, metrics
from chalicelib.relay.addresses import address_hash
from chalicelib.services import suppressions
from chalicelib.settings import Settings, get_settings

SOFT_BOUNCE_TYPES = frozenset({"Transient", "Undetermined"})


@dataclass(frozen=True)
class Scored:
    score: float
    counted: bool  # False: this notification was counted before (a redelivery)
    suppressed: bool


def soft_bounce(digest: str, feedback_id: str, settings: Settings | None = None, now: datetime | None = None) -> Scored:
    """Add one soft bounce to the address's score, once per ``feedback_id``;
    suppress the address when the score reaches the limit."""
    s = settings or get_settings()
    now = now or clock.now()
    cutoff = now - timedelta(days=s.bounce_decay_days)
    expires = now + timedelta(days=s.bounce_decay_days + 1)
    fresh = ~BounceScore.feedback_ids.contains(feedback_id)
    continue_ = (
        [
            BounceScore.score.add(s.soft_bounce_score),
            BounceScore.feedback_ids.add({feedback_id}),
            BounceScore.last_bounce_at.set(now),
            BounceScore.expires.set(expires),
        ],
        (BounceScore.last_bounce_at >= cutoff) & fresh,
    )
    reset = (
        [
            BounceScore.score.set(s.soft_bounce_score),
            BounceScore.feedback_ids.set({feedback_id}),
            BounceScore.last_bounce_at.set(now),
            BounceScore.expires.set(expires),
        ],
        BounceScore.last_bounce_at.does_not_exist() | ((BounceScore.last_bounce_at < cutoff) & fresh),
    )
    item = BounceScore(f"SUP#{digest}", "SCORE")
    counted = False
    for _ in range(5):
        current = suppressions.score_item(digest)
        if current is not None and feedback_id in (current.feedback_ids or set()):
            item = current
            break  # a redelivery: counted already
        live = current is not None and current.last_bounce_at is not None and current.last_bounce_at >= cutoff
        for actions, condition in (continue_, reset) if live else (reset, continue_):
            try:
                item.update(actions=actions, condition=condition)  # type: ignore[arg-type]
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                continue
            counted = True
            break
        if counted:
            break
    else:
        raise RuntimeError("bounce score kept changing under us")
    score = float(item.score or 0)
    suppressed = score >= s.bounce_score_limit
    if suppressed and (counted or suppressions.suppressed_reason(digest) is None):
        # Also on a redelivery: the first delivery may have failed right here.
        suppressions.suppress_hash(digest, "soft_bounces", now)
    metrics.add_metric(name="SoftBounces", unit="Count", value=1 if counted else 0)
    logger.info("soft bounce", extra={"address_hash": digest, "score": score, "counted": counted})
    return Scored(score=score, counted=counted, suppressed=suppressed)


def handle_feedback(notification: dict[str, Any], settings: Settings | None = None) -> list[str]:
    """An SES event-publishing (or feedback) notification, via SNS: one result per
    recipient (``hard_bounce``, ``complaint``, ``soft_bounce``, or
    ``soft_bounce_duplicate`` for a redelivered notification)."""
    s = settings or get_settings()
    kind = notification.get("eventType") or notification.get("notificationType") or ""
    mail = notification.get("mail") or {}
    results: list[str] = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        # SES gives every notification a feedback id; a hand-made one without it
        # is keyed by the message it is about (still the same on redelivery).
        feedback_id = str(bounce.get("feedbackId") or f"mail:{mail.get('messageId', '')}:{bounce.get('timestamp', '')}")
        hard = bounce.get("bounceType") not in SOFT_BOUNCE_TYPES
        for r in bounce.get("bouncedRecipients") or []:
            address = str(r.get("emailAddress") or "")
            if not address:
                continue
            digest = address_hash(s.secret, address)
            if hard:
                suppressions.suppress_hash(digest, "hard_bounce")
                results.append("hard_bounce")
            else:
                scored = soft_bounce(digest, feedback_id, s)
                results.append("soft_bounce" if scored.counted else "soft_bounce_duplicate")
    elif kind == "Complaint":
        for r in (notification.get("complaint") or {}).get("complainedRecipients") or []:
            address = str(r.get("emailAddress") or "")
            if address:
                suppressions.suppress_hash(address_hash(s.secret, address), "complaint")
                results.append("complaint")
    # The dashboard's bounce and complaint rates (per CopiesSent); infra/template.json.
    if "hard_bounce" in results:
        metrics.add_metric(name="HardBounces", unit="Count", value=results.count("hard_bounce"))
    if "complaint" in results:
        metrics.add_metric(name="Complaints", unit="Count", value=results.count("complaint"))
    return results
