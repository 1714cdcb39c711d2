"""The organizers' powers for integrations (R13, R15): close/reopen, hold,
held messages, reports, removal, blocks and the action record. Same auth and
error shape as the rest of the API; every action is recorded as ``api:<integration>``."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.blueprints.http import endpoint, integration_of, json_response, parse_body

if TYPE_CHECKING:
    from chalicelib.models import Chat, Participant
    from chalicelib.services.stewardship import Result, Stewardship

stewardship_api = Blueprint(__name__)
# The API key middleware registered by the api blueprint guards these routes too
# (Chalice middleware is app-wide).
ANY = ["*/*"]
CHAT = "/events/{event_id}/timeslots/{timeslot_id}/chat"


@cache
def steward() -> Stewardship:
    from chalicelib.services.stewardship import Stewardship

    return Stewardship()


def _integration() -> str:
    return integration_of(stewardship_api.current_request)


def _actor() -> str:
    return f"api:{_integration()}"


def _chat(event_id: str, timeslot_id: str) -> Chat:
    from chalicelib.errors import NotFound
    from chalicelib.services.chats import chat_id_for

    s = steward()
    chat = s.chat(chat_id_for(_integration(), event_id, timeslot_id, s.settings.secret))
    if chat.integration != _integration():
        raise NotFound("no such chat", "timeslot_id")
    return chat


def _signup(event_id: str, signup_id: str) -> tuple[Chat, Participant]:
    from pynamodb.exceptions import DoesNotExist

    from chalicelib.errors import NotFound
    from chalicelib.models import SignupRef

    try:
        ref = SignupRef.get(f"EV#{_integration()}#{event_id}", f"S#{signup_id}", consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"no signup '{signup_id}' for event '{event_id}'", "signup_id") from None
    chat = _chat(event_id, ref.timeslot_id)
    return chat, steward().person(chat.chat_id, f"s-{signup_id}")


def _result(result: Result) -> Response:
    from chalicelib.schemas_stewardship import StewardResult

    detail = result.detail or {}
    return json_response(
        StewardResult(
            changed=result.changed,
            message=result.message,
            block_id=detail.get("block_id"),
            outcome=detail.get("outcome"),
        )
    )


def _own_id(key: str) -> str:
    return key.partition("-")[2]


@stewardship_api.route(CHAT + "/close", methods=["POST"], content_types=ANY)
@endpoint
def api_close_chat(event_id: str, timeslot_id: str) -> Response:
    return _result(steward().close(_chat(event_id, timeslot_id), actor=_actor(), via="api"))


@stewardship_api.route(CHAT + "/reopen", methods=["POST"], content_types=ANY)
@endpoint
def api_reopen_chat(event_id: str, timeslot_id: str) -> Response:
    return _result(steward().reopen(_chat(event_id, timeslot_id), actor=_actor(), via="api"))


@stewardship_api.route(CHAT + "/hold", methods=["PUT"], content_types=ANY)
@endpoint
def hold_chat(event_id: str, timeslot_id: str) -> Response:
    from chalicelib.schemas_stewardship import HoldBody

    body = parse_body(stewardship_api.current_request, HoldBody)
    return _result(steward().set_hold(_chat(event_id, timeslot_id), body.hold, actor=_actor(), via="api"))


@stewardship_api.route(CHAT + "/held", methods=["GET"], content_types=ANY)
@endpoint
def list_held(event_id: str, timeslot_id: str) -> Response:
    from chalicelib.schemas_stewardship import HeldList, HeldView

    held = steward().held_messages(_chat(event_id, timeslot_id))
    return json_response(
        HeldList(
            held=[
                HeldView(
                    message_id=h.message_id,
                    author=_own_id(h.author_key),
                    reason=h.reason,  # type: ignore[arg-type]
                    state=h.state,  # type: ignore[arg-type]
                    excerpt=h.excerpt,
                    held_at=h.held_at,
                    expires_at=h.expires_at,
                    decided_at=h.decided_at,
                    decided_by=h.decided_by,
                )
                for h in held
            ]
        )
    )


@stewardship_api.route(CHAT + "/held/{message_id}/approve", methods=["POST"], content_types=ANY)
@endpoint
def approve_held(event_id: str, timeslot_id: str, message_id: str) -> Response:
    return _result(steward().approve(_chat(event_id, timeslot_id), message_id, actor=_actor(), via="api"))


@stewardship_api.route(CHAT + "/held/{message_id}/reject", methods=["POST"], content_types=ANY)
@endpoint
def reject_held(event_id: str, timeslot_id: str, message_id: str) -> Response:
    return _result(steward().reject(_chat(event_id, timeslot_id), message_id, actor=_actor(), via="api"))


@stewardship_api.route(CHAT + "/reports", methods=["GET"], content_types=ANY)
@endpoint
def list_reports(event_id: str, timeslot_id: str) -> Response:
    from chalicelib.schemas_stewardship import ReportList, ReportView

    by_message: dict[str, ReportView] = {}
    for report in steward().reports(_chat(event_id, timeslot_id)):
        view = by_message.setdefault(
            report.message_id,
            ReportView(message_id=report.message_id, author=_own_id(report.author_key), reports=0, reasons=[]),
        )
        view.reports += 1
        if report.reason:
            view.reasons.append(report.reason)
    return json_response(ReportList(reports=list(by_message.values())))


@stewardship_api.route("/events/{event_id}/signups/{signup_id}/removal", methods=["PUT"], content_types=ANY)
@endpoint
def remove_signup(event_id: str, signup_id: str) -> Response:
    chat, person = _signup(event_id, signup_id)
    return _result(steward().remove(chat, person, actor=_actor(), via="api"))


@stewardship_api.route("/events/{event_id}/signups/{signup_id}/removal", methods=["DELETE"], content_types=ANY)
@endpoint
def restore_signup(event_id: str, signup_id: str) -> Response:
    chat, person = _signup(event_id, signup_id)
    return _result(steward().restore(chat, person, actor=_actor(), via="api"))


@stewardship_api.route("/blocks", methods=["POST"], content_types=ANY)
@endpoint
def create_block() -> Response:
    from chalicelib.relay.addresses import address_hash
    from chalicelib.schemas_stewardship import BlockBody

    body = parse_body(stewardship_api.current_request, BlockBody)
    s = steward()
    if body.event_id and body.signup_id:
        chat, person = _signup(body.event_id, body.signup_id)
        result = s.block(
            person.address_hash,
            integration=_integration(),
            actor=_actor(),
            via="api",
            chat=chat,
            ids={"event_id": body.event_id, "signup_id": body.signup_id},
        )
    else:
        assert body.email is not None
        result = s.block(
            address_hash(s.settings.secret, body.email), integration=_integration(), actor=_actor(), via="api"
        )
    response = _result(result)
    response.status_code = 201 if result.changed else 200
    return response


@stewardship_api.route("/blocks", methods=["GET"], content_types=ANY)
@endpoint
def list_blocks() -> Response:
    from chalicelib.schemas_stewardship import BlockList, BlockView

    return json_response(
        BlockList(
            blocks=[
                BlockView(
                    block_id=b.sk, event_id=b.event_id, signup_id=b.signup_id, organizer_id=b.organizer_id, at=b.at
                )
                for b in steward().blocks(_integration())
            ]
        )
    )


@stewardship_api.route("/blocks/{block_id}", methods=["DELETE"], content_types=ANY)
@endpoint
def delete_block(block_id: str) -> Response:
    return _result(steward().unblock(_integration(), block_id, actor=_actor(), via="api"))


@stewardship_api.route("/actions", methods=["GET"], content_types=ANY)
@endpoint
def list_actions() -> Response:
    from chalicelib.errors import BadRequest
    from chalicelib.schemas_stewardship import ActionList, ActionView
    from chalicelib.vocab import EXTERNAL_ID

    query = dict(stewardship_api.current_request.query_params or {})
    event_id = query.get("event_id")
    if event_id is not None and not EXTERNAL_ID.match(event_id):
        raise BadRequest("'event_id' is not a valid id", "event_id", code="invalid_id")
    return json_response(
        ActionList(
            actions=[
                ActionView(
                    action=a.action,
                    at=a.at,
                    actor=a.actor,
                    via=a.via,  # type: ignore[arg-type]
                    event_id=a.event_id,
                    timeslot_id=a.timeslot_id,
                    target=a.target,
                    detail=a.detail,
                )
                for a in steward().actions(_integration(), event_id)
            ]
        )
    )
