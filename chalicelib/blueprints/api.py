"""Integration REST API (R13): events, signups and chats, keyed by the
integration's own ids. Every route is a few lines: parse, call the service, map."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.blueprints.http import endpoint, integration_of, json_response, make_auth_middleware, parse_body
from chalicelib.openapi import document

if TYPE_CHECKING:
    from chalicelib.services.events import EventService

api = Blueprint(__name__)


def _authenticate(header: str | None) -> str:
    """The API key check; its models load with the first API request, not at import."""
    from chalicelib.services import keys

    return keys.authenticate(header)


api.register_middleware(make_auth_middleware(_authenticate), "http")
ANY = ["*/*"]  # the endpoint checks Content-Type itself, so errors keep R13's shape


@cache
def events() -> EventService:
    # The domain service and its pydantic schemas load on the first request, so
    # functions that never serve the API don't pay for them at cold start.
    from chalicelib.services.events import EventService

    return EventService()


@api.route("/events/{event_id}", methods=["PUT"], content_types=ANY)
@endpoint
def put_event(event_id: str) -> Response:
    from chalicelib.schemas import EventBody

    request = api.current_request
    view, created = events().upsert_event(integration_of(request), event_id, parse_body(request, EventBody))
    return json_response(view, 201 if created else 200)


@api.route("/events/{event_id}", methods=["GET"], content_types=ANY)
@endpoint
def get_event(event_id: str) -> Response:
    return json_response(events().view(integration_of(api.current_request), event_id))


@api.route("/events/{event_id}", methods=["DELETE"], content_types=ANY)
@endpoint
def cancel_event(event_id: str) -> Response:
    return json_response(events().cancel_event(integration_of(api.current_request), event_id))


@api.route("/events/{event_id}/signups/{signup_id}", methods=["PUT"], content_types=ANY)
@endpoint
def put_signup(event_id: str, signup_id: str) -> Response:
    from chalicelib.schemas import SignupBody

    request = api.current_request
    body = parse_body(request, SignupBody)
    view, created = events().upsert_signup(integration_of(request), event_id, signup_id, body)
    return json_response(view, 201 if created else 200)


@api.route("/events/{event_id}/signups/{signup_id}", methods=["GET"], content_types=ANY)
@endpoint
def get_signup(event_id: str, signup_id: str) -> Response:
    return json_response(events().signup_view(integration_of(api.current_request), event_id, signup_id))


@api.route("/events/{event_id}/signups/{signup_id}/delivery", methods=["PUT"], content_types=ANY)
@endpoint
def put_signup_delivery(event_id: str, signup_id: str) -> Response:
    """How one signup follows its chat: ``{"delivery": "each" | "digest" | null}``."""
    from chalicelib.schemas import DeliveryBody

    request = api.current_request
    body = parse_body(request, DeliveryBody)
    return json_response(events().set_delivery(integration_of(request), event_id, signup_id, body.delivery))


@api.route("/events/{event_id}/timeslots/{timeslot_id}/chat", methods=["GET"], content_types=ANY)
@endpoint
def get_chat(event_id: str, timeslot_id: str) -> Response:
    view = events().chat_view(integration_of(api.current_request), event_id, timeslot_id)
    return json_response(view)


@api.route("/openapi.json", methods=["GET"], content_types=ANY)
def openapi() -> Response:
    return Response(body=json.dumps(document()), status_code=200, headers={"Content-Type": "application/json"})
