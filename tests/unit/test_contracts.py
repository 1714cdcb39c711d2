"""The published contracts (OpenAPI, EventBridge JSON Schemas) match the models
and the routes; a drift in either direction fails here."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from app import app
from chalicelib import contracts
from chalicelib.schemas import INTEGRATION_EVENTS


def test_committed_openapi_matches_the_models() -> None:
    committed = json.loads(contracts.OPENAPI_PATH.read_text())
    assert committed == json.loads(contracts.dump(contracts.build_openapi())), "run `make contracts`"


def test_openapi_and_routes_agree() -> None:
    document = json.loads(contracts.OPENAPI_PATH.read_text())
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    routed = {(path, method) for path, methods in app.routes.items() for method in methods}
    assert documented == routed


@pytest.mark.parametrize("detail_type", sorted(INTEGRATION_EVENTS))
def test_event_schemas_on_disk_match_the_models(detail_type: str) -> None:
    on_disk = json.loads((contracts.EVENTS_DIR / f"{detail_type}.json").read_text())
    assert on_disk == json.loads(contracts.dump(contracts.build_event_schemas()[f"{detail_type}.json"]))
    Draft202012Validator.check_schema(on_disk)


def test_event_schema_and_model_agree_on_a_real_event() -> None:
    detail = {
        "integration": "acme",
        "event_id": "e1",
        "signup_id": "s1",
        "signup": {
            "timeslot_id": "t1",
            "status": "registered",
            "person": {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.org"},
        },
    }
    schema = json.loads((contracts.EVENTS_DIR / "SignupCreated.json").read_text())
    Draft202012Validator(schema).validate(detail)
    INTEGRATION_EVENTS["SignupCreated"].model_validate(detail)
    bad = {**detail, "surprise": 1}
    assert list(Draft202012Validator(schema).iter_errors(bad))
    with pytest.raises(ValueError):
        INTEGRATION_EVENTS["SignupCreated"].model_validate(bad)


def test_served_document_is_the_committed_one() -> None:
    from chalice.test import Client

    with Client(app) as client:
        response = client.http.get("/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.body) == json.loads(contracts.OPENAPI_PATH.read_text())


def test_the_deployed_tuning_is_what_the_code_is_sized_for() -> None:
    """``.chalice/config.json`` sets the tuning for deployed stacks; it must not
    drift from the defaults the code and its docs are built around (it said
    499 recipients per batch after the code moved to 100)."""
    import json
    from pathlib import Path

    from chalicelib.settings import Settings

    config = json.loads((Path(__file__).resolve().parents[2] / ".chalice" / "config.json").read_text())
    env = config["environment_variables"]
    defaults = Settings.from_env({"MUSTER_STAGE": "dev"})
    fields = {
        "MUSTER_BATCH_SIZE": "batch_size",
        "MUSTER_SEND_CONCURRENCY": "send_concurrency",
        "MUSTER_MAX_MESSAGE_BYTES": "max_message_bytes",
        "MUSTER_SENDER_MESSAGES_PER_HOUR": "sender_messages_per_hour",
        "MUSTER_CHAT_COPIES_PER_HOUR": "chat_copies_per_hour",
        "MUSTER_ATTACHMENT_LINK_ABOVE": "attachment_link_above",
    }
    for key, field in fields.items():
        if key in env:
            assert int(env[key]) == getattr(defaults, field), key
    bounce = {
        "MUSTER_BOUNCE_SCORE_LIMIT": "bounce_score_limit",
        "MUSTER_SOFT_BOUNCE_SCORE": "soft_bounce_score",
        "MUSTER_BOUNCE_DECAY_DAYS": "bounce_decay_days",
    }
    for key, field in bounce.items():
        if key in env:
            assert float(env[key]) == getattr(defaults, field), key


def test_outbound_event_schemas_are_committed_and_match_the_models() -> None:
    """Every integration event Muster puts on the bus has its schema in the
    repository (events_schema/out/), equal to what the models generate, and no
    other file is there."""
    built = contracts.build_out_schemas()
    assert built, "no outbound events"
    on_disk = {p.name for p in contracts.EVENTS_OUT_DIR.glob("*.json")}
    assert on_disk == set(built), "run `make contracts` and commit events_schema/out/"
    for name, schema in built.items():
        assert json.loads((contracts.EVENTS_OUT_DIR / name).read_text()) == json.loads(contracts.dump(schema))
