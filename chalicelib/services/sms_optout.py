"""Numbers that opted out of texts (STOP) or whose texts fail for good (issue 12).

``SMS#<phone hash>``/``STOP`` exists while a number is opted out, and every
participant record with that number carries ``sms_stopped`` (set through the
``phone`` index, as suppressions do through the ``address`` index), so fan-out
reads no extra item per copy. Mail is untouched: a ``both`` person keeps their
mail after STOP. START lifts it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import clock
from chalicelib.models import Participant, SmsCopy, SmsOptOut
from chalicelib.relay.sms import phone_hash


def opted_out(digest: str) -> bool:
    try:
        SmsOptOut.get(f"SMS#{digest}", "STOP")
    except DoesNotExist:
        return False
    return True


def records(digest: str) -> list[Participant]:
    """Every participant record with this number (keys only, then the records)."""
    keys = [(p.pk, p.sk) for p in Participant.phone_index.query(digest)]
    return list(Participant.batch_get(keys)) if keys else []


def _flag(digest: str, stopped: bool) -> int:
    n = 0
    for p in Participant.phone_index.query(digest):
        try:
            Participant(p.pk, p.sk).update(
                actions=[Participant.sms_stopped.set(True) if stopped else Participant.sms_stopped.remove()],
                condition=Participant.pk.exists(),
            )
            n += 1
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
    return n


def stop(digest: str, reason: str, now: datetime | None = None) -> bool:
    """Opt the number out everywhere; True if it was not opted out before (confirm once)."""
    first = True
    try:
        SmsOptOut(f"SMS#{digest}", "STOP", reason=reason, at=now or clock.now()).save(
            condition=SmsOptOut.pk.does_not_exist()
        )
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        first = False
    _flag(digest, True)  # also on a repeat: a crash between the two is repaired
    return first


def start(digest: str) -> bool:
    """Lift an opt-out; True if there was one."""
    was = opted_out(digest)
    SmsOptOut(f"SMS#{digest}", "STOP").delete()
    _flag(digest, False)
    return was


# Delivery events (the SMS configuration set's event destination → SNS → the
# feedback function): these say the number will never take a text.
PERMANENT_EVENTS = frozenset({"TEXT_INVALID", "TEXT_BLOCKED", "TEXT_CARRIER_BLOCKED"})


def handle_delivery_event(event: dict[str, Any], secret: bytes) -> list[str]:
    """A permanent failure opts the number out (texts stop, mail goes on)."""
    kind = str(event.get("eventType") or "")
    number = event.get("destinationPhoneNumber")
    if kind not in PERMANENT_EVENTS or not isinstance(number, str) or not number.startswith("+"):
        return []
    digest = phone_hash(secret, number)
    stop(digest, "permanent_failure")
    context = event.get("context") or {}
    message_id, reader = context.get("message"), context.get("reader")
    if isinstance(message_id, str) and isinstance(reader, str):
        try:
            SmsCopy(f"MSG#{message_id}", f"SMS#{reader}").update(
                actions=[SmsCopy.status.set("failed"), SmsCopy.reason.set(kind)], condition=SmsCopy.pk.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
    return [digest]
