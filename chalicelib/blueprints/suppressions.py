"""Suppressions through the integration API (R11, R13; issue 10).

Bearer-key auth comes from the api blueprint's middleware (Chalice applies a
blueprint's middleware to the whole app). Every route is a few lines: check the
query, call :class:`~chalicelib.services.suppressions.SuppressionService`, map.
Responses carry the integration's own ids; the only address ever in a body is
the one the request named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from chalicelib.blueprints.http import endpoint, integration_of, json_response
from chalicelib.errors import BadRequest

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.schemas import SuppressionState
    from chalicelib.services.suppressions import State, SuppressionService

suppressions_bp = Blueprint(__name__)
ANY = ["*/*"]


def service() -> SuppressionService:
    # Cheap (it holds only the settings), so never cached: a settings change applies at once.
    from chalicelib.services.suppressions import SuppressionService

    return SuppressionService()


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    params: dict[str, Any] = dict(request.query_params or {})
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter '{unknown[0]}'", unknown[0], code="unknown_parameter")
    return {k: str(v) for k, v in params.items()}


def _email(params: dict[str, str]) -> str:
    from chalicelib.schemas import _email as valid_email

    raw = params.get("email")
    if not raw:
        raise BadRequest("'email' is required", "email", code="missing_parameter")
    try:
        return valid_email(raw)
    except ValueError:
        raise BadRequest("'email' is not a valid email address", "email", code="invalid_email") from None


def _view(state: State, email: str | None) -> SuppressionState:
    from chalicelib.schemas import SuppressedRecord, SuppressionState

    return SuppressionState(
        email=email,
        suppressed=state.suppressed,
        reason=state.reason,  # type: ignore[arg-type]
        since=state.since,
        score=state.score,
        score_limit=service().settings.bounce_score_limit,
        last_bounce_at=state.last_bounce_at,
        lifted_at=state.lifted_at,
        records=[SuppressedRecord(event_id=r.event_id, kind=r.kind, id=r.id) for r in state.records],  # type: ignore[arg-type]
    )


@suppressions_bp.route("/suppressions", methods=["GET"], content_types=ANY)
@endpoint
def get_suppressions() -> Response:
    """``?email=``: that address's state; otherwise a page of this integration's suppressed records."""
    request = suppressions_bp.current_request
    params = _query(request, {"email", "limit", "cursor"})
    integration = integration_of(request)
    if "email" in params:
        email = _email(params)
        return json_response(_view(service().state(integration, email), email))
    from chalicelib.schemas import SuppressionItem, SuppressionPage
    from chalicelib.services.suppressions import PAGE_DEFAULT, PAGE_MAX

    if "cursor" in params and not params["cursor"]:
        raise BadRequest("'cursor' is empty: leave it out for the first page", "cursor", code="invalid_cursor")
    raw_limit = params.get("limit", str(PAGE_DEFAULT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= PAGE_MAX:
        raise BadRequest(f"'limit' must be a whole number from 1 to {PAGE_MAX}", "limit", code="invalid_parameter")
    entries, cursor = service().page(integration, int(raw_limit), params.get("cursor"))
    items = [
        SuppressionItem(
            event_id=e.event_id,
            kind="organizer" if e.participant_key.startswith("o-") else "signup",
            id=e.participant_key[2:],
            reason=e.reason,  # type: ignore[arg-type]
            since=e.at,
        )
        for e in entries
    ]
    return json_response(SuppressionPage(items=items, next_cursor=cursor))


@suppressions_bp.route("/suppressions", methods=["DELETE"], content_types=ANY)
@endpoint
def lift_suppression() -> Response:
    request = suppressions_bp.current_request
    email = _email(_query(request, {"email"}))
    return json_response(_view(service().lift(integration_of(request), email), email))


@suppressions_bp.route("/events/{event_id}/signups/{signup_id}/suppression", methods=["GET"], content_types=ANY)
@endpoint
def get_signup_suppression(event_id: str, signup_id: str) -> Response:
    request = suppressions_bp.current_request
    _query(request, set())
    return json_response(_view(service().signup_state(integration_of(request), event_id, signup_id), None))


@suppressions_bp.route("/events/{event_id}/signups/{signup_id}/suppression", methods=["DELETE"], content_types=ANY)
@endpoint
def lift_signup_suppression(event_id: str, signup_id: str) -> Response:
    request = suppressions_bp.current_request
    _query(request, set())
    return json_response(_view(service().lift_signup(integration_of(request), event_id, signup_id), None))
