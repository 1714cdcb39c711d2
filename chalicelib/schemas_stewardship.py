"""Boundary models of the stewardship API (R15, issue 10): kept beside
:mod:`chalicelib.schemas` and published in the same OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from chalicelib.schemas import Email, ExternalId, Strict


class HoldBody(Strict):
    hold: StrictBool = Field(
        description="true: every new message waits for an organizer's approval; false: stop holding"
    )


def _one_way(schema: dict[str, Any]) -> None:
    """The JSON Schema says what the validator does: the fields are never null,
    and a body names the person one way, by signup or by address."""
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options:
            prop.update(next(o for o in options if o.get("type") != "null"))
        prop.pop("default", None)
    schema["oneOf"] = [
        {"required": ["event_id", "signup_id"], "not": {"required": ["email"]}},
        {"required": ["email"], "not": {"anyOf": [{"required": ["event_id"]}, {"required": ["signup_id"]}]}},
    ]


class BlockBody(Strict):
    """Whom to block: one of your signups (event_id + signup_id), or an address you hold."""

    model_config = ConfigDict(json_schema_extra=_one_way)

    event_id: ExternalId | None = None
    signup_id: ExternalId | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def one_person(self) -> BlockBody:
        given = {name for name in self.model_fields_set}
        nulls = sorted(name for name in given if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"'{nulls[0]}' may not be null: leave it out")
        if given not in ({"event_id", "signup_id"}, {"email"}):
            raise ValueError("give either event_id and signup_id, or email")
        return self


class StewardResult(BaseModel):
    changed: bool = Field(description="false when the action had already been taken (idempotent)")
    message: str
    block_id: str | None = None
    outcome: str | None = None


class HeldView(BaseModel):
    message_id: str
    author: str = Field(description="The author's signup or organizer id in your system")
    reason: Literal["hold", "all", "first_post", "reported"]
    state: Literal["held", "approved", "rejected", "expired"]
    excerpt: str | None = Field(description="The start of the anonymized message")
    held_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None


class HeldList(BaseModel):
    held: list[HeldView]


class ReportView(BaseModel):
    message_id: str
    author: str = Field(description="The reported author's signup or organizer id in your system")
    reports: int = Field(description="Distinct people who reported this message (never who)")
    reasons: list[str]


class ReportList(BaseModel):
    reports: list[ReportView]


class BlockView(BaseModel):
    block_id: str
    event_id: str | None = None
    signup_id: str | None = None
    organizer_id: str | None = None
    at: datetime


class BlockList(BaseModel):
    blocks: list[BlockView]


class ActionView(BaseModel):
    action: str
    at: datetime
    actor: str = Field(
        description="o-<organizer id> (a control in an organizer's copy), api:<integration>, attendee or system"
    )
    via: Literal["control", "api", "system"]
    event_id: str | None = None
    timeslot_id: str | None = None
    target: str | None = Field(description="s-<signup id>, o-<organizer id>, a message id or a block id")
    detail: str | None = None


class ActionList(BaseModel):
    actions: list[ActionView]
