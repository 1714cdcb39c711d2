"""Private two-person threads for integrations (issue 10): an organizer opens a
private conversation with one signup of a shift. Authenticated by the API's
bearer-key middleware (registered by the ``api`` blueprint for every HTTP route)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.blueprints.http import endpoint, integration_of, json_response, parse_body

private_bp = Blueprint(__name__)
ANY = ["*/*"]  # the endpoint checks Content-Type itself, so errors keep R13's shape


@private_bp.route("/events/{event_id}/timeslots/{timeslot_id}/chat/private", methods=["POST"], content_types=ANY)
@endpoint
def open_private(event_id: str, timeslot_id: str) -> Response:
    from chalicelib.schemas import PrivateThreadBody, PrivateThreadView
    from chalicelib.services.private import open_for_integration

    request = private_bp.current_request
    body = parse_body(request, PrivateThreadBody)
    info = open_for_integration(integration_of(request), event_id, timeslot_id, body.organizer_id, body.signup_id)
    view = PrivateThreadView(
        thread_id=info.thread_id,
        relay_address=info.relay_address,
        organizer_id=body.organizer_id,
        signup_id=body.signup_id,
        created=info.created,
    )
    return json_response(view, 201 if info.created else 200)
