"""Organizer announcements for integrations (issue 11): post a message into one
shift's chat, or every chat of an event, as one of the event's organizers.
Authenticated by the API's bearer-key middleware (registered by the ``api``
blueprint for every HTTP route). 202: the copies are queued."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.blueprints.http import endpoint, integration_of, json_response, parse_body
from chalicelib.errors import BadRequest

announcements_bp = Blueprint(__name__)
ANY = ["*/*"]  # the endpoint checks Content-Type itself, so errors keep R13's shape
MAX_KEY = 200


def _idempotency_key() -> str | None:
    request = announcements_bp.current_request
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1-{MAX_KEY} printable ASCII characters", "Idempotency-Key", code="invalid_header"
        )
    return key


def _post(event_id: str, timeslot_id: str | None) -> Response:
    from chalicelib.schemas import AnnouncementBody, AnnouncementMessage, AnnouncementSkipped, AnnouncementView
    from chalicelib.services.announcements import Announcements

    request = announcements_bp.current_request
    body = parse_body(request, AnnouncementBody)
    key = _idempotency_key()
    posted, skipped = Announcements().post(integration_of(request), event_id, timeslot_id, body, key)
    view = AnnouncementView(
        messages=[
            AnnouncementMessage(
                timeslot_id=p.timeslot_id, message_id=p.message_id, recipients=p.recipients, created=p.created
            )
            for p in posted
        ],
        skipped=[AnnouncementSkipped(timeslot_id=s.timeslot_id, reason=s.reason) for s in skipped],  # type: ignore[arg-type]
    )
    return json_response(view, 202)


@announcements_bp.route("/events/{event_id}/timeslots/{timeslot_id}/chat/messages", methods=["POST"], content_types=ANY)
@endpoint
def announce_to_chat(event_id: str, timeslot_id: str) -> Response:
    return _post(event_id, timeslot_id)


@announcements_bp.route("/events/{event_id}/chat/messages", methods=["POST"], content_types=ANY)
@endpoint
def announce_to_event(event_id: str) -> Response:
    return _post(event_id, None)
