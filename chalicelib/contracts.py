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
    "422": "The body does not match the schema (wrong type, unknown field, bad time zone, bad address, ...)",
}

# (method, path, summary, request model, response model, success status)
ROUTES: list[tuple[str, str, str, type[BaseModel] | None, type[BaseModel] | None, str]] = [
    ("put", "/events/{event_id}", "Create or replace an event and its shifts (idempotent)", schemas.EventBody, schemas.EventView, "200"),
    ("get", "/events/{event_id}", "Read an event with each shift's chat", None, schemas.EventView, "200"),
    ("delete", "/events/{event_id}", "Cancel an event: its chats close and their schedules go", None, schemas.EventView, "200"),
    ("put", "/events/{event_id}/signups/{signup_id}", "Create or replace a signup (idempotent)", schemas.SignupBody, schemas.SignupView, "200"),
    ("get", "/events/{event_id}/signups/{signup_id}", "Read a signup", None, schemas.SignupView, "200"),
    ("put", "/events/{event_id}/signups/{signup_id}/delivery", "How one signup follows its chat: every message or a daily digest (null: the chat's default)", schemas.DeliveryBody, schemas.SignupView, "200"),
    ("get", "/events/{event_id}/timeslots/{timeslot_id}/chat", "A shift's chat: state, window, relay address, participants", None, schemas.ChatView, "200"),
]
PUBLIC_ROUTES = [
    ("get", "/openapi.json", "This document"),
    ("get", "/mute/{token}", "The reader's chat settings page (changes nothing: link scanners prefetch GETs)"),
    ("post", "/mute/{token}", "One-click mute (RFC 8058): body List-Unsubscribe=One-Click; or the settings page's action=unmute|leave|each|digest"),
    ("get", "/files/{token}", "Download a large attachment a copy links to: 302 to a short-lived S3 URL"),
]
PUBLIC_RESPONSES = {
    "/files/{token}": {
        "302": {"description": "Location: a presigned S3 URL, valid for 5 minutes"},
        "403": {"description": "Tampered link", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
        "410": {"description": "Expired link, or the file is gone", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
    },
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi() -> dict[str, Any]:
    models = {m for _, _, _, req, res, _ in ROUTES for m in (req, res) if m is not None}
    models.add(schemas.ErrorBody)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, req, res, ok in ROUTES:
        op: dict[str, Any] = {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string", "pattern": EXTERNAL_ID.pattern}}
                for p in ("event_id", "signup_id", "timeslot_id")
                if "{" + p + "}" in path
            ],
            "responses": {
                ok: {"description": "OK", "content": {"application/json": {"schema": _ref(res)}}} if res else {"description": "OK"},
                **{
                    code: {"description": text, "content": {"application/json": {"schema": _ref(schemas.ErrorBody)}}}
                    for code, text in ERRORS.items()
                    if method != "get" or code not in {"413", "415", "422"}
                },
            },
        }
        if method == "put" and not path.endswith("/delivery"):  # upserts can create
            op["responses"]["201"] = {"description": "Created", "content": {"application/json": {"schema": _ref(res)}}}  # type: ignore[arg-type]
        if req is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(req)}}}
        paths.setdefault(path, {})[method] = op
    for method, path, summary in PUBLIC_ROUTES:
        params = [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}] if "{token}" in path else []
        responses = PUBLIC_RESPONSES.get(path) or {"200": {"description": "OK"}, "403": {"description": "Tampered or expired token"}}
        paths.setdefault(path, {})[method] = {"summary": summary, "security": [], "parameters": params, "responses": responses}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Muster integration API", "version": "1.0.0", "description": "Events, shifts and signups for anonymized shift chats. Errors: {\"error\": {\"code\", \"message\", \"field\"}}."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key from `make api-key`"}},
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
    return written


if __name__ == "__main__":
    for path in write_all():
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
