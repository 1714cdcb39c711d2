"""Generate the published contracts from the boundary models.

``python -m chalicelib.contracts`` writes ``chalicelib/openapi.json`` (served at
``GET /openapi.json``) and ``events_schema/*.json`` (EventBridge ``detail``
schemas). tests/unit/test_contracts.py fails when the files on disk, the models
or the Chalice routes disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib import schemas
from chalicelib import schemas_insight as insight
from chalicelib import schemas_stewardship as stewardship
from chalicelib.vocab import EVENT_SOURCE, EXTERNAL_ID

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"
EVENTS_DIR = ROOT / "events_schema"

ERRORS = {
    "400": "Malformed JSON, a body that is not an object, or an invalid id in the path",
    "401": "Missing or invalid bearer API key",
    "404": "Unknown event, signup or timeslot",
    "413": "Body larger than 256 KiB",
    "415": "Body not sent as application/json",
    "422": (
        "The body does not match the schema (a wrong type: nothing is coerced; an unknown field; a value out of "
        "its limits), or breaks a rule stated in a field's description (unique ids, a shift ending after it "
        "starts, an address whose domain has an IDNA form, a signup's shift that exists in the event)"
    ),
}
BODY_ERRORS = {"413", "415", "422"}  # only operations that take a body can answer these

# (method, path, summary, request model, response model, success status)
ROUTES: list[tuple[str, str, str, type[BaseModel] | None, type[BaseModel] | None, str]] = [
    (
        "put",
        "/events/{event_id}",
        "Create or replace an event and its shifts (idempotent)",
        schemas.EventBody,
        schemas.EventView,
        "200",
    ),
    ("get", "/events/{event_id}", "Read an event with each shift's chat", None, schemas.EventView, "200"),
    (
        "delete",
        "/events/{event_id}",
        "Cancel an event: its chats close and their schedules go",
        None,
        schemas.EventView,
        "200",
    ),
    (
        "put",
        "/events/{event_id}/signups/{signup_id}",
        "Create or replace a signup (idempotent)",
        schemas.SignupBody,
        schemas.SignupView,
        "200",
    ),
    ("get", "/events/{event_id}/signups/{signup_id}", "Read a signup", None, schemas.SignupView, "200"),
    (
        "put",
        "/events/{event_id}/signups/{signup_id}/delivery",
        "How one signup follows its chat: every message or a daily digest (null: the chat's default)",
        schemas.DeliveryBody,
        schemas.SignupView,
        "200",
    ),
    (
        "get",
        "/events/{event_id}/timeslots/{timeslot_id}/chat",
        "A shift's chat: state, window, relay address, participants",
        None,
        schemas.ChatView,
        "200",
    ),
]
CHAT = "/events/{event_id}/timeslots/{timeslot_id}/chat"
ROUTES += [
    (
        "post",
        CHAT + "/close",
        "Close a chat (an organizer's close: it stays closed until reopened)",
        None,
        stewardship.StewardResult,
        "200",
    ),
    (
        "post",
        CHAT + "/reopen",
        "Lift an organizer's close (the chat follows its window again)",
        None,
        stewardship.StewardResult,
        "200",
    ),
    (
        "put",
        CHAT + "/hold",
        "Hold every new message for approval, or stop holding",
        stewardship.HoldBody,
        stewardship.StewardResult,
        "200",
    ),
    (
        "get",
        CHAT + "/held",
        "Messages held for moderation, with anonymized excerpts",
        None,
        stewardship.HeldList,
        "200",
    ),
    (
        "post",
        CHAT + "/held/{message_id}/approve",
        "Approve a held message: it is shared once",
        None,
        stewardship.StewardResult,
        "200",
    ),
    (
        "post",
        CHAT + "/held/{message_id}/reject",
        "Decline a held message: its author is told once",
        None,
        stewardship.StewardResult,
        "200",
    ),
    (
        "get",
        CHAT + "/reports",
        "Abuse reports per message: counts and reasons, never who reported",
        None,
        stewardship.ReportList,
        "200",
    ),
    (
        "put",
        "/events/{event_id}/signups/{signup_id}/removal",
        "Remove a signup from its chat (until restored)",
        None,
        stewardship.StewardResult,
        "200",
    ),
    (
        "delete",
        "/events/{event_id}/signups/{signup_id}/removal",
        "Restore a removed signup",
        None,
        stewardship.StewardResult,
        "200",
    ),
    (
        "post",
        "/blocks",
        "Block a person across every chat of the deployment (by your signup, or an address you hold)",
        stewardship.BlockBody,
        stewardship.StewardResult,
        "200",
    ),
    ("get", "/blocks", "Your blocks, by your own ids (never an address)", None, stewardship.BlockList, "200"),
    ("delete", "/blocks/{block_id}", "Unblock", None, stewardship.StewardResult, "200"),
    (
        "get",
        "/actions",
        "The record of steward actions (who, when, which control or key); ?event_id= filters",
        None,
        stewardship.ActionList,
        "200",
    ),
]
# ---- suppressions (issue 10): routes with query parameters ---------------------
_EMAIL_Q = ("email", True, "The address to look up: one of your organizers' or signups' addresses")
SUPPRESSION_ROUTES: list[tuple[str, str, str, list[tuple[str, bool, str]], type[BaseModel]]] = [
    (
        "get",
        "/suppressions",
        "With ?email=: that address's suppression state and bounce score. Without: a page of "
        "your organizers and signups whose address is suppressed (your ids only)",
        [
            ("email", False, _EMAIL_Q[2]),
            ("limit", False, "Page size, 1-100 (default 50)"),
            ("cursor", False, "next_cursor of the previous page"),
        ],
        schemas.SuppressionPage,
    ),
    (
        "delete",
        "/suppressions",
        "Lift an address's suppression: clears its bounce score and every record's flag",
        [_EMAIL_Q],
        schemas.SuppressionState,
    ),
    (
        "get",
        "/events/{event_id}/signups/{signup_id}/suppression",
        "The suppression state of a signup's address",
        [],
        schemas.SuppressionState,
    ),
    (
        "delete",
        "/events/{event_id}/signups/{signup_id}/suppression",
        "Lift the suppression of a signup's address",
        [],
        schemas.SuppressionState,
    ),
]
# What each query parameter may be. Rules JSON Schema cannot say: an address's
# domain must have an IDNA form (400 invalid_email), and a cursor must be one the
# API gave out (400 invalid_cursor).
QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "email": {"type": "string", "minLength": 3, "maxLength": 254, "pattern": schemas.EMAIL_PATTERN},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    "cursor": {"type": "string", "minLength": 1, "maxLength": 400, "pattern": "^[A-Za-z0-9_-]+$"},
}
SUPPRESSION_ERRORS = {
    "400": "An invalid id in the path, or a missing, unknown or invalid query parameter",
    "401": "Missing or invalid bearer API key",
    "404": "Unknown event or signup, or none of your records has this address",
}


def _suppression_paths() -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, query, res in SUPPRESSION_ROUTES:
        params: list[dict[str, Any]] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string", "pattern": EXTERNAL_ID.pattern}}
            for p in ("event_id", "signup_id")
            if "{" + p + "}" in path
        ]
        params += [
            {"name": n, "in": "query", "required": r, "description": d, "schema": QUERY_SCHEMAS[n]} for n, r, d in query
        ]
        ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": _ref(res)}}}
        if path == "/suppressions" and method == "get":
            ok["content"]["application/json"]["schema"] = {
                "oneOf": [_ref(schemas.SuppressionPage), _ref(schemas.SuppressionState)]
            }
        paths.setdefault(path, {})[method] = {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": params,
            "responses": {
                "200": ok,
                **{
                    code: {"description": text, "content": {"application/json": {"schema": _ref(schemas.ErrorBody)}}}
                    for code, text in (KPI_ERRORS if path.startswith("/kpis") else SUPPRESSION_ERRORS).items()
                },
            },
        }
    return paths


# ---- KPIs (issue 11) -------------------------------------------------------------
_KPI_Q = [
    ("from", False, "First UTC day a chat opened, YYYY-MM-DD (default: 29 days before 'to')"),
    ("to", False, "Last UTC day, YYYY-MM-DD (default: today); at most 366 days after 'from'"),
    ("event_id", False, "Only this event's chats"),
]
SUPPRESSION_ROUTES += [
    (
        "get",
        "/kpis",
        "Your KPIs over the chats that opened in the range: shares, spreads, rates, referrals, next-step clicks",
        _KPI_Q,
        insight.KpiReport,
    ),
    ("get", "/kpis/chats", "The same range, one row per chat", _KPI_Q, insight.KpiChats),
]
QUERY_SCHEMAS.update(
    {
        "from": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "to": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "event_id": {"type": "string", "pattern": EXTERNAL_ID.pattern},
    }
)
EVENTS_OUT_DIR = EVENTS_DIR / "out"
KPI_ERRORS = {
    "400": "A date that is not YYYY-MM-DD, 'from' after 'to', a range over 366 days, an invalid event id or an "
    "unknown query parameter",
    "401": "Missing or invalid bearer API key",
}

# Private two-person threads (issue 10): 201 when opened, 200 when it existed.
ROUTES.append(
    (
        "post",
        "/events/{event_id}/timeslots/{timeslot_id}/chat/private",
        "Open (or find) an organizer's private conversation with one signup of the shift; each side gets one intro mail",
        schemas.PrivateThreadBody,
        schemas.PrivateThreadView,
        "200",
    )
)
EXTRA_RESPONSES: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/events/{event_id}/timeslots/{timeslot_id}/chat/private"): {
        "201": "Created: the thread is new and its intros are queued",
        "409": "The shift's chat is not open",
        "422": "Not an organizer of the event, or not an active signup of this shift (or the same person)",
    },
}
# Organizer announcements (issue 11): 202, the copies are queued.
ANNOUNCE_TEXT = (
    "Post a message as one of the event's organizers into {where}; optional next steps (ids from the event) go "
    "with it as signed links. A retried POST (same body, or same Idempotency-Key header) sends nothing again"
)
for _path, _where in (
    ("/events/{event_id}/timeslots/{timeslot_id}/chat/messages", "this shift's chat"),
    ("/events/{event_id}/chat/messages", "every open chat of the event"),
):
    ROUTES.append(
        ("post", _path, ANNOUNCE_TEXT.format(where=_where), schemas.AnnouncementBody, schemas.AnnouncementView, "202")
    )
    EXTRA_RESPONSES[("post", _path)] = {
        "409": "The shift's chat is not open (event-wide: no chat of the event is open)",
        "422": "Also: an organizer the event does not have or who is not active in the chat (unknown_organizer, "
        "not_an_organizer), or a next step the event does not list (unknown_next_step)",
    }
_HTML = {"text/html": {"schema": {"type": "string"}}}
# (method, path, summary, {status: description}, content of every response)
PUBLIC_ROUTES: list[tuple[str, str, str, dict[str, str], dict[str, Any]]] = [
    (
        "get",
        "/openapi.json",
        "This document",
        {"200": "This OpenAPI document"},
        {"application/json": {"schema": {"type": "object"}}},
    ),
    (
        "get",
        "/mute/{token}",
        "The reader's chat settings page (changes nothing: link scanners prefetch GETs)",
        {"200": "The settings page", "403": "Tampered or expired token"},
        _HTML,
    ),
    (
        "post",
        "/mute/{token}",
        "One-click mute (RFC 8058): body List-Unsubscribe=One-Click; or the settings page's action=unmute|leave|each|digest",
        {
            "200": "Done (a one-click mute always answers 200)",
            "400": "Not a form this link understands; nothing changed",
            "403": "Tampered or expired token",
            "404": "The reader is no longer in the chat; nothing changed",
        },
        _HTML,
    ),
    (
        "head",
        "/mute/{token}",
        "Link scanners' prefetch: what GET answers, without the body; changes nothing",
        {"200": "The settings page would show", "403": "Tampered or expired token"},
        _HTML,
    ),
    (
        "get",
        "/c/{token}",
        "An organizer control or report link: a confirmation page (changes nothing)",
        {
            "200": "The confirmation page",
            "403": "Tampered, expired or foreign token, or the actor is no longer allowed",
            "404": "The chat, person or message is gone",
        },
        _HTML,
    ),
    (
        "head",
        "/c/{token}",
        "Link scanners' prefetch: what GET answers, without the body; changes nothing",
        {"200": "The confirmation page would show", "403": "Tampered, expired or foreign token", "404": "Gone"},
        _HTML,
    ),
    (
        "post",
        "/c/{token}",
        "Carry out the control (from its confirmation page); a report may carry reason and details",
        {
            "200": "Done, or nothing to change (idempotent)",
            "400": "The form is too large",
            "403": "Tampered, expired or foreign token, or the actor is no longer allowed",
            "404": "The chat, person or message is gone",
            "409": "The held message was decided otherwise",
            "503": "A temporary failure; nothing changed, try again",
        },
        _HTML,
    ),
    (
        "get",
        "/n/{token}",
        "A next-step link (issue 11): counts one click, then 302 to the step's URL (from the event, "
        "never from the link)",
        {
            "302": "Location: the next step's URL",
            "403": "Tampered or foreign link, or a step the event no longer lists; nothing counted",
        },
        _HTML,
    ),
    (
        "head",
        "/n/{token}",
        "Link scanners' prefetch: what GET answers, without counting a click",
        {"302": "Location: the next step's URL", "403": "Tampered or foreign link; nothing counted"},
        _HTML,
    ),
    (
        "get",
        "/files/{token}",
        "Download a large attachment a copy links to: 302 to a short-lived S3 URL",
        {
            "302": "Location: a presigned S3 URL, valid for 5 minutes",
            "403": "Tampered link",
            "410": "Expired link, or the file is gone",
        },
        {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    ),
    (
        "get",
        "/t/{token}",
        "A text message's short link: the whole chat message (a page), or 302 to one attachment",
        {
            "200": "The whole message (no address or number)",
            "302": "Location: a presigned S3 URL of the attachment",
            "403": "Tampered link",
            "410": "Expired link, or the message or file is gone",
        },
        _HTML,
    ),
]
PUBLIC_RESPONSES = {
    "/files/{token}": {
        "302": {"description": "Location: a presigned S3 URL, valid for 5 minutes"},
        "403": {
            "description": "Tampered link",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
        "410": {
            "description": "Expired link, or the file is gone",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    },
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi() -> dict[str, Any]:
    models = {m for _, _, _, req, res, _ in ROUTES for m in (req, res) if m is not None}
    models.add(schemas.ErrorBody)
    models.update({schemas.SuppressionPage, schemas.SuppressionState})  # suppressions (issue 10)
    models.update({insight.KpiReport, insight.KpiChats})  # KPIs (issue 11)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, req, res, ok in ROUTES:
        op: dict[str, Any] = {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": p,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": EXTERNAL_ID.pattern},
                }
                for p in ("event_id", "signup_id", "timeslot_id", "message_id", "block_id")
                if "{" + p + "}" in path
            ],
            "responses": {
                ok: {"description": "OK", "content": {"application/json": {"schema": _ref(res)}}}
                if res
                else {"description": "OK"},
                **{
                    code: {"description": text, "content": {"application/json": {"schema": _ref(schemas.ErrorBody)}}}
                    for code, text in ERRORS.items()
                    if req is not None or code not in BODY_ERRORS
                },
            },
        }
        if (method == "put" and path.count("/") <= 4) or (path == "/blocks" and method == "post"):  # these can create
            op["responses"]["201"] = {"description": "Created", "content": {"application/json": {"schema": _ref(res)}}}  # type: ignore[arg-type]
        for code, text in EXTRA_RESPONSES.get((method, path), {}).items():
            schema = res if code.startswith("2") and res else schemas.ErrorBody
            op["responses"][code] = {"description": text, "content": {"application/json": {"schema": _ref(schema)}}}
        if req is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(req)}}}
        paths.setdefault(path, {})[method] = op
    for path, ops in _suppression_paths().items():
        paths.setdefault(path, {}).update(ops)
    for method, path, summary, statuses, content in PUBLIC_ROUTES:
        params = (
            [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}]
            if "{token}" in path
            else []
        )
        responses = {
            code: {"description": text, **({} if code.startswith("3") else {"content": content})}
            for code, text in statuses.items()
        }
        paths.setdefault(path, {})[method] = {
            "summary": summary,
            "security": [],
            "parameters": params,
            "responses": responses,
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Muster integration API",
            "version": "1.0.0",
            "description": 'Events, shifts and signups for anonymized shift chats. Errors: {"error": {"code", "message", "field"}}.',
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key from `make api-key`"}
            },
            "schemas": defs["$defs"],
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def build_event_schemas() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for detail_type, model in schemas.INTEGRATION_EVENTS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://muster.example/events_schema/{detail_type}.json"
        schema["title"] = detail_type
        schema["description"] = (
            f"The `detail` of an EventBridge event with source '{EVENT_SOURCE}' and detail-type '{detail_type}'."
        )
        out[f"{detail_type}.json"] = schema
    return out


def build_out_schemas() -> dict[str, dict[str, Any]]:
    """The integration events Muster puts on the bus (source 'muster'), issue 11."""
    out: dict[str, dict[str, Any]] = {}
    for detail_type, model in insight.OUT_EVENTS.items():
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://muster.example/events_schema/out/{detail_type}.json"
        schema["title"] = detail_type
        schema["description"] = (
            f"The `detail` of an event Muster puts on its EventBridge bus with source '{insight.SOURCE}' and "
            f"detail-type '{detail_type}'. Dedupe on `idempotency`."
        )
        out[f"{detail_type}.json"] = schema
    return out


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_all() -> list[Path]:
    written = [OPENAPI_PATH]
    OPENAPI_PATH.write_text(dump(build_openapi()))
    EVENTS_DIR.mkdir(exist_ok=True)
    for name, schema in build_event_schemas().items():
        path = EVENTS_DIR / name
        path.write_text(dump(schema))
        written.append(path)
    EVENTS_OUT_DIR.mkdir(exist_ok=True)
    for name, schema in build_out_schemas().items():
        path = EVENTS_OUT_DIR / name
        path.write_text(dump(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
