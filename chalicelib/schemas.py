"""Boundary models: API bodies and integration events (R13).

The same classes validate REST bodies and EventBridge ``detail`` payloads, and
generate both ``events_schema/*.json`` and the OpenAPI document, so the three can
never drift (tests/unit/test_contracts.py fails if the files on disk do).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from chalicelib.relay.addresses import idna_domain
from chalicelib.vocab import DETAIL_TYPES, EXTERNAL_ID, SIGNUP_STATUSES

SignupStatus = Literal["registered", "confirmed", "attended", "cancelled", "missed", "blocked"]
DeliveryMode = Literal["each", "digest"]
ModerationMode = Literal["none", "first_post", "all"]

# An integration's own identifier: safe in keys, URLs and schedule names.
ExternalId = Annotated[str, StringConstraints(pattern=EXTERNAL_ID.pattern)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]

# Deliberately simple: one @, no spaces or control characters, a dotted domain.
# The local part may be UTF-8 (RFC 6531); the domain is checked in its A-label
# (punycode) form, so internationalized domains are accepted. The address is
# stored as given: matching normalizes both sides (relay.addresses).
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def _email(value: str) -> str:
    value = value.strip()
    local, at, domain = value.rpartition("@")
    ascii_domain = idna_domain(domain) if at else None
    if len(value) > 254 or ascii_domain is None or not _EMAIL.match(f"{local}@{ascii_domain}"):
        raise ValueError("not a valid email address")
    return value


Email = Annotated[str, AfterValidator(_email)]


class Strict(BaseModel):
    # Schemas are built on first validation, not at import (cold start).
    model_config = ConfigDict(extra="forbid", str_max_length=2000, defer_build=True)


class ChatSettings(Strict):
    enabled: bool | None = Field(
        default=None, description="Chat for this event; null inherits the deployment default."
    )
    open_before_hours: float | None = Field(
        default=None, ge=0, le=24 * 60, description="Hours before a shift starts that its chat opens (default 48)."
    )
    close_after_hours: float | None = Field(
        default=None,
        ge=0,
        le=24 * 366,
        description="Hours after a shift ends that its chat closes (default 168); explicit null keeps it open until chat is turned off or the event is cancelled.",
    )
    default_delivery: DeliveryMode | None = Field(
        default=None,
        description=(
            "How people follow this event's chats unless they choose otherwise: 'each' (every message) or "
            "'digest' (one email a day). null: every message, or a daily digest in chats larger than the "
            "deployment's MUSTER_DIGEST_ABOVE."
        ),
    )

    moderation: ModerationMode | None = Field(
        default=None,
        description=(
            "Which messages wait for an organizer's approval before they are shared: 'none' (default), "
            "'first_post' (each person's first message), or 'all'. Organizers' own messages are never held."
        ),
    )
    report_threshold: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=(
            "Distinct reporters after which an author's further messages in a chat are held for approval "
            "(default: the deployment's MUSTER_REPORT_THRESHOLD, 3)."
        ),
    )

    @property
    def close_after_given(self) -> bool:
        return "close_after_hours" in self.model_fields_set


# ---- per-chat rate limits (issue 10) ------------------------------------------


class ChatLimits(Strict):
    sender_messages_per_hour: StrictInt | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Messages one sender may post to one of this event's chats per hour; null: the deployment's "
        "MUSTER_SENDER_MESSAGES_PER_HOUR.",
    )
    chat_copies_per_hour: StrictInt | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Copies one of this event's chats may send per hour (messages times recipients); null: the "
        "deployment's MUSTER_CHAT_COPIES_PER_HOUR.",
    )


class Person(Strict):
    first_name: Name
    last_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    email: Email


class Organizer(Person):
    id: ExternalId


class Timeslot(Strict):
    id: ExternalId
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    chat_enabled: bool | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Timeslot:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class EventBody(Strict):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    timezone: str
    chat: ChatSettings = Field(default_factory=ChatSettings)
    limits: ChatLimits | None = Field(
        default=None, description="Rate limits for this event's chats (R12); absent or null: the deployment's."
    )
    organizers: list[Organizer] = Field(default_factory=list, max_length=50)
    timeslots: list[Timeslot] = Field(default_factory=list, max_length=500)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown IANA time zone") from exc
        return value

    @field_validator("organizers", "timeslots")
    @classmethod
    def _unique_ids(cls, value: list[Organizer] | list[Timeslot]) -> list[Organizer] | list[Timeslot]:
        ids = [item.id for item in value]
        if len(ids) != len(set(ids)):
            raise ValueError("ids must be unique")
        return value


class SignupBody(Strict):
    timeslot_id: ExternalId
    status: SignupStatus
    person: Person
    referred_by: Annotated[str, StringConstraints(max_length=200)] | None = None


class DeliveryBody(Strict):
    delivery: DeliveryMode | None = Field(
        description="'each': every message as it is sent; 'digest': one email a day with that day's messages; "
        "null: the chat's default."
    )


# ---- integration events (EventBridge detail) --------------------------------

class _Envelope(Strict):
    integration: ExternalId = Field(description="The integration that owns the records (as for API keys).")
    event_id: ExternalId


class EventCreated(_Envelope):
    event: EventBody


class EventUpdated(EventCreated):
    pass


class EventCancelled(_Envelope):
    pass


class SignupCreated(_Envelope):
    signup_id: ExternalId
    signup: SignupBody


class SignupUpdated(SignupCreated):
    pass


INTEGRATION_EVENTS: dict[str, type[Strict]] = {  # keys: vocab.DETAIL_TYPES
    "EventCreated": EventCreated,
    "EventUpdated": EventUpdated,
    "EventCancelled": EventCancelled,
    "SignupCreated": SignupCreated,
    "SignupUpdated": SignupUpdated,
}

# ---- responses --------------------------------------------------------------


class ParticipantView(BaseModel):
    id: str = Field(description="The organizer or signup id the integration gave.")
    kind: Literal["organizer", "signup"]
    display_name: str
    status: str
    active: bool
    muted: bool
    left: bool = Field(default=False, description="Left the chat: muted, and no kickoff on a new signup.")
    delivery: DeliveryMode | None = Field(default=None, description="Their own choice; null: the chat's default.")


class ChatView(BaseModel):
    state: Literal["scheduled", "open", "closed", "disabled"]
    opens_at: datetime
    closes_at: datetime | None
    address: str
    participants: list[ParticipantView] | None = Field(
        default=None, description="Present on the chat resource; never carries addresses."
    )


class TimeslotView(Timeslot):
    chat: ChatView


class EventView(BaseModel):
    id: str
    title: str
    timezone: str
    cancelled: bool
    chat: ChatSettings
    limits: ChatLimits | None = None
    organizers: list[Organizer]
    timeslots: list[TimeslotView]


class SignupView(SignupBody):
    id: str
    event_id: str
    delivery: DeliveryMode | None = Field(
        default=None, description="How this person follows the chat, if they (or the integration) chose; null: the chat's default."
    )
    muted: bool = False
    left: bool = Field(default=False, description="Left the chat (muted; no kickoff on a new signup).")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


# ---- suppressions (issue 10) -------------------------------------------------


class SuppressedRecord(BaseModel):
    """One of the integration's own records, by its own ids (never an address)."""

    event_id: str
    kind: Literal["organizer", "signup"]
    id: str = Field(description="The organizer or signup id the integration gave.")


class SuppressionState(BaseModel):
    email: str | None = Field(
        default=None, description="The address the query named (null when asked by signup): never any other."
    )
    suppressed: bool = Field(description="No chat mail goes to this address.")
    reason: Literal["hard_bounce", "complaint", "soft_bounces"] | None = None
    since: datetime | None = None
    score: float = Field(description="Soft-bounce score: +0.5 a soft bounce; suppressed at 5; back to 0 after 7 days without bounces.")
    score_limit: float
    last_bounce_at: datetime | None = None
    lifted_at: datetime | None = Field(default=None, description="When a suppression of this address was last lifted.")
    records: list[SuppressedRecord] = Field(description="Your organizers and signups with this address.")


class SuppressionItem(SuppressedRecord):
    reason: Literal["hard_bounce", "complaint", "soft_bounces"]
    since: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


assert tuple(sorted(INTEGRATION_EVENTS)) == DETAIL_TYPES
assert SignupStatus.__args__ == SIGNUP_STATUSES  # type: ignore[attr-defined]


# ---- private two-person threads (issue 10) ------------------------------------


class PrivateThreadBody(Strict):
    """Open an organizer's private conversation with one signup of the shift."""

    organizer_id: ExternalId = Field(description="An organizer of the event (its id in the event's organizers).")
    signup_id: ExternalId = Field(description="An active signup (registered, confirmed, attended) of this shift.")


class PrivateThreadView(BaseModel):
    thread_id: str = Field(description="Opaque and stable: the same pair always gets the same thread.")
    relay_address: str = Field(description="The pair's own relay address; only the two of them receive its mail.")
    organizer_id: str
    signup_id: str
    created: bool = Field(description="False when the thread already existed (nothing was sent again).")

