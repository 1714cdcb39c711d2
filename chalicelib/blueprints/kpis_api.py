"""The KPI API (issue 11): ``GET /kpis`` and ``GET /kpis/chats``.

Bearer-key auth comes from the api blueprint's middleware; each route reads the
caller's own integration partition only (services/kpis.py: a Query, no scan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from chalicelib.blueprints.http import endpoint, integration_of, json_response
from chalicelib.errors import BadRequest

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.services.kpis import Kpis

kpis_bp = Blueprint(__name__)
ANY = ["*/*"]
PARAMS = {"from", "to", "event_id"}


def _kpis(request: Request) -> Kpis:
    from chalicelib import clock
    from chalicelib.services import kpis
    from chalicelib.vocab import EXTERNAL_ID

    params: dict[str, Any] = dict(request.query_params or {})
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise BadRequest(f"unknown query parameter '{unknown[0]}'", unknown[0], code="unknown_parameter")
    event_id = params.get("event_id")
    if event_id is not None and not EXTERNAL_ID.fullmatch(str(event_id)):
        raise BadRequest("'event_id' is not a valid id", "event_id", code="invalid_id")
    try:
        start, end = kpis.parse_range(params.get("from"), params.get("to"), clock.now().date())
    except kpis.RangeError as err:
        raise BadRequest(str(err), err.field, code="invalid_date_range") from None
    return kpis.kpis(integration_of(request), start, end, event_id)


@kpis_bp.route("/kpis", methods=["GET"], content_types=ANY)
@endpoint
def get_kpis() -> Response:
    from chalicelib.schemas_insight import KpiReport
    from chalicelib.services import kpis

    body = KpiReport.model_validate(kpis.report(_kpis(kpis_bp.current_request)))
    return json_response(body.model_dump(mode="json", by_alias=True))


@kpis_bp.route("/kpis/chats", methods=["GET"], content_types=ANY)
@endpoint
def get_kpi_chats() -> Response:
    from chalicelib.schemas_insight import KpiChats
    from chalicelib.services import kpis

    k = _kpis(kpis_bp.current_request)
    body = KpiChats.model_validate(
        {"from": k.start.isoformat(), "to": k.end.isoformat(), "event_id": k.event_id, "chats": kpis.chat_rows(k)}
    )
    return json_response(body.model_dump(mode="json", by_alias=True))
