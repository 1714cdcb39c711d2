"""Boundary models: API bodies and integration events (R13).

The same classes validate REST bodies and EventBridge ``detail`` payloads, and
generate both ``events_schema/*.json`` and the OpenAPI document, so the three can
never drift (tests/unit/test_contracts.py fails if the files on disk do).

Validation is strict and exactly as strict as the published schemas: types are
never coerced (``0`` is not a time, ``0`` is not ``false``, ``false`` is not ``0``),
every string has its limits in the schema, and the rules are the schema's own
patterns. Bodies are validated as JSON (:meth:`Strict.from_json`), which is what
lets a strict model read ISO 8601 strings as datetimes. The few rules JSON Schema
cannot say (unique ids in a list, a shift's end after its start, a domain that
has an IDNA form) are in the field descriptions; tests/e2e/test_api_fuzz.py holds
the server to exactly these.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from chalicelib.relay.addresses import idna_domain
from chalicelib.relay.bot import RESERVED as RESERVED_KEYWORDS
from chalicelib.vocab import DETAIL_TYPES, EXTERNAL_ID, SIGNUP_STATUSES


def _whole(value: object) -> object:
    """JSON Schema's ``integer`` includes 3.0: accept a float with no fraction as
    that integer (the spec allows it, so the server does); never a bool or a string."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema means it (3 and 3.0), strictly otherwise. Bounds go
# before the validator so that the published schema carries them:
# Annotated[StrictInt, Field(ge=..., le=...), WHOLE].
WHOLE = BeforeValidator(_whole)

SignupStatus = Literal["registered", "confirmed", "attended", "cancelled", "missed", "blocked"]
DeliveryMode = Literal["each", "digest"]
ModerationMode = Literal["none", "first_post", "all"]

# An integration's own identifier: safe in keys, URLs and schedule names.
ExternalId = Annotated[str, StringConstraints(pattern=EXTERNAL_ID.pattern)]

# Characters that show nothing: C0/C1 controls, spaces, soft hyphen, zero-width and
# bidi marks, BOM. Written as escapes that ECMA-262, Rust's regex (pydantic) and
# Python's re all read the same way, so the published pattern is the server's rule.
_INVISIBLE = r"\x00-\x20\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff"
VISIBLE = f"[^{_INVISIBLE}]"  # a text must contain at least one of these


# Free texts: limits apply to the text as sent; names are stored trimmed.
Name = Annotated[str, StringConstraints(max_length=100, pattern=VISIBLE), AfterValidator(str.strip)]
Title = Annotated[str, StringConstraints(max_length=200, pattern=VISIBLE), AfterValidator(str.strip)]
LastName = Annotated[str, StringConstraints(max_length=100), AfterValidator(str.strip)]
Reference = Annotated[str, StringConstraints(max_length=200)]
# Bring a Friend (issue 11): an https URL template with exactly one {ref}, no
# whitespace, quotes or angle brackets (it is printed in mail as is).
INVITE_URL_PATTERN = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s<>\"'{}]*)?(\{ref\}[^\s<>\"'{}]*)$"


def _invite_url(value: str) -> str:
    if value.count("{ref}") != 1:
        raise ValueError("invite_url must contain {ref} exactly once")
    return value


InviteUrl = Annotated[str, StringConstraints(max_length=500, pattern=INVITE_URL_PATTERN), AfterValidator(_invite_url)]

# An address: one @, a local part without spaces, controls or the RFC 5322
# specials, and a dotted domain whose labels are ASCII letters, digits and hyphens,
# or (internationalized) contain a non-ASCII character. The address is stored as
# given: matching normalizes both sides (relay.addresses).
_SPECIALS = r'<>()\[\],;:"\\@'
_LOCAL = f"[^{_INVISIBLE}{_SPECIALS}]{{1,64}}"
# Negated classes, not ranges: the same set, and far cheaper for generators.
_U_CHAR = r"[^\x00-\x2c\x2e\x2f\x3a-\x40\x5b-\x60\x7b-\xa0]"  # LDH or non-ASCII
_LABEL = f"(?:[A-Za-z0-9-]{{1,63}}|{_U_CHAR}*[^\\x00-\\xa0]{_U_CHAR}*)"
EMAIL_PATTERN = f"^{_LOCAL}@{_LABEL}(?:\\.{_LABEL})+$"
EMAIL_RULES = (
    "An email address of at most 254 characters matching the pattern. Its domain must also have an "
    "IDNA 2008 form (each label letters, marks, digits and hyphens, at most 63 characters as punycode)."
)


def _idna(value: str) -> str:
    if idna_domain(value.rpartition("@")[2]) is None:
        raise ValueError("not a valid email address: the domain has no IDNA form")
    return value


Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=EMAIL_PATTERN),
    AfterValidator(_idna),
    Field(description=EMAIL_RULES),
]


PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"
PHONE_RULES = (
    "A mobile number in E.164 form (+, country code, number; no spaces). It must also be a valid number "
    "for its country (libphonenumber's metadata); refused with 422 otherwise."
)


def _valid_phone(value: str) -> str:
    import phonenumbers  # on first use: cold starts

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("not a valid phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


Phone = Annotated[
    str,
    StringConstraints(max_length=16, pattern=PHONE_PATTERN),
    AfterValidator(_valid_phone),
    Field(description=PHONE_RULES),
]
Channel = Literal["email", "sms", "both"]
# JSON Schema's spelling of Person's rule: an email unless the channel is sms,
# a phone when the channel is sms or both.
# (present and not null: "required" alone admits null).
_CHANNEL_RULES: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"channel": {"const": "sms"}}, "required": ["channel"]},
            "else": {"required": ["email"], "properties": {"email": {"type": "string"}}},
        },
        {
            "if": {"properties": {"channel": {"enum": ["sms", "both"]}}, "required": ["channel"]},
            "then": {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
        },
    ]
}


def _email(value: str) -> str:
    """One address checked as the API checks it (for query parameters); ValueError if not."""
    from pydantic import TypeAdapter

    return str(TypeAdapter(Email).validate_python(value))


# RFC 3339 date-time with an offset, years 1970-2099 (so windows of up to a year
# around a shift stay within what every store and scheduler handles).
DATETIME_PATTERN = (
    r"^(?:19[7-9][0-9]|20[0-9][0-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_DATETIME_RE = re.compile(DATETIME_PATTERN)


def _rfc3339(value: Any) -> Any:
    # The strictness is here (the field itself is lax, because after a "before"
    # validator pydantic would no longer read strings as datetimes): JSON must bring
    # a string of exactly this form; code building a view passes a datetime.
    if isinstance(value, datetime) or (isinstance(value, str) and _DATETIME_RE.fullmatch(value)):
        return value
    raise ValueError("not a date-time like 2030-05-01T09:00:00Z (RFC 3339 with an offset, years 1970-2099)")


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    Field(strict=False, json_schema_extra={"pattern": DATETIME_PATTERN}),
]


@cache
def time_zones() -> tuple[str, ...]:
    """The IANA zone names the API accepts: those of the pinned ``tzdata`` release,
    so the published enum, the server and every machine agree."""
    return tuple(sorted(files("tzdata").joinpath("zones").read_text(encoding="ascii").split()))


def _known_zone(value: str) -> str:
    if value not in time_zones():
        raise ValueError("unknown IANA time zone")
    ZoneInfo(value)  # loads from the system's database, else the tzdata package
    return value


TimeZone = Annotated[
    str,
    AfterValidator(_known_zone),
    WithJsonSchema({"type": "string", "enum": list(time_zones()), "description": "An IANA time zone name."}),
]

# Hours: 0, or from 0.01 (36 s) up to a bound. Smaller magnitudes would only be
# rounding noise, and DynamoDB cannot store numbers below 1e-130.
MIN_HOURS = 0.01


MAX_OPEN_BEFORE = 24 * 60
MAX_CLOSE_AFTER = 24 * 366


def _resolution(value: float) -> float:
    if 0 < value < MIN_HOURS:
        raise ValueError(f"must be 0 or at least {MIN_HOURS}")
    return value


def _hours_schema(max_hours: int) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"const": 0}, {"type": "number", "minimum": MIN_HOURS, "maximum": max_hours}]})


OpenHours = Annotated[
    float,
    Field(ge=0, le=MAX_OPEN_BEFORE, allow_inf_nan=False),
    AfterValidator(_resolution),
    _hours_schema(MAX_OPEN_BEFORE),
]
CloseHours = Annotated[
    float,
    Field(ge=0, le=MAX_CLOSE_AFTER, allow_inf_nan=False),
    AfterValidator(_resolution),
    _hours_schema(MAX_CLOSE_AFTER),
]


class Strict(BaseModel):
    # Schemas are built on first validation, not at import (cold start).
    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=2000, defer_build=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        """Validate a JSON document strictly (the only way bodies and events come in)."""
        return cls.model_validate_json(raw)  # strict by the model config

    @classmethod
    def from_data(cls, data: Any) -> Self:
        """Validate already-decoded JSON (an EventBridge ``detail``) exactly as a body."""
        return cls.from_json(json.dumps(data))


class ChatSettings(Strict):
    enabled: bool | None = Field(default=None, description="Chat for this event; null inherits the deployment default.")
    open_before_hours: OpenHours | None = Field(
        default=None, description="Hours before a shift starts that its chat opens (default 48): 0, or 0.01 to 1440."
    )
    close_after_hours: CloseHours | None = Field(
        default=None,
        description="0, or 0.01 to 8784. "
        "Hours after a shift ends that its chat closes (default 168); explicit null keeps it open until chat is turned off or the event is cancelled.",
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
    report_threshold: Annotated[StrictInt, Field(ge=1, le=1000), WHOLE] | None = Field(
        default=None,
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
    sender_messages_per_hour: Annotated[StrictInt, Field(ge=1, le=10_000), WHOLE] | None = Field(
        default=None,
        description="Messages one sender may post to one of this event's chats per hour; null: the deployment's "
        "MUSTER_SENDER_MESSAGES_PER_HOUR.",
    )
    chat_copies_per_hour: Annotated[StrictInt, Field(ge=1, le=10_000_000), WHOLE] | None = Field(
        default=None,
        description="Copies one of this event's chats may send per hour (messages times recipients); null: the "
        "deployment's MUSTER_CHAT_COPIES_PER_HOUR.",
    )


class Person(Strict):
    """``email`` is required unless ``channel`` is ``sms``; ``phone`` is required
    when ``channel`` is ``sms`` or ``both`` (refused with 422 otherwise)."""

    model_config = ConfigDict(json_schema_extra=_CHANNEL_RULES)

    first_name: Name = Field(description="At most 100 characters, at least one of them visible; stored trimmed.")
    last_name: LastName | None = Field(default=None, description="At most 100 characters; stored trimmed.")
    email: Email | None = Field(default=None, description=EMAIL_RULES + " Required unless channel is 'sms'.")
    phone: Phone | None = Field(
        default=None, description=PHONE_RULES + " Required when channel is 'sms' or 'both'; stored only on the record."
    )
    channel: Channel = Field(
        default="email",
        description="How they follow the chat: 'email' (default), 'sms' (text messages) or 'both'.",
    )

    @model_validator(mode="after")
    def _reachable(self) -> Person:
        if self.channel != "sms" and self.email is None:
            raise ValueError("email is required unless channel is 'sms'")
        if self.channel in {"sms", "both"} and self.phone is None:
            raise ValueError("phone is required when channel is 'sms' or 'both'")
        return self


class Organizer(Person):
    id: ExternalId


class Timeslot(Strict):
    """A shift. ``ends_at`` must be later than ``starts_at`` (refused with 422 otherwise)."""

    id: ExternalId
    starts_at: Instant
    ends_at: Instant = Field(description="Later than starts_at.")
    chat_enabled: bool | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Timeslot:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


# ---- keyword bot (issue 12) ---------------------------------------------------

KeywordKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{2,20}$")]
KeywordAnswer = Annotated[str, StringConstraints(min_length=1, max_length=320, pattern=f"{VISIBLE}")]
Keywords = Annotated[
    dict[KeywordKey, KeywordAnswer],
    Field(
        max_length=20,
        description=(
            "At most 20 keywords (2 to 20 letters or digits, any case, stored upper case; each once whatever "
            "its case) with their answers (1 to 320 characters), answered privately to whoever sends the "
            "keyword alone (mail: as the subject or the first line) to one of the event's chats. "
            "Reserved words are refused with 422: " + ", ".join(sorted(RESERVED_KEYWORDS)) + "."
        ),
    ),
]


def _keywords(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    upper = {k.upper(): v for k, v in value.items()}
    if len(upper) != len(value):
        raise ValueError("each keyword once, whatever its case")
    reserved = sorted(k for k in upper if k in RESERVED_KEYWORDS)
    if reserved:
        raise ValueError(f"reserved keyword: {', '.join(reserved)}")
    return upper


# ---- next steps and the debrief (issue 11) -------------------------------------

# A label: 1-80 characters, no control characters, at least one visible one.
LABEL_PATTERN = rf"^[^\x00-\x1f\x7f-\x9f]*[^{_INVISIBLE}][^\x00-\x1f\x7f-\x9f]*$"
# An https URL: no spaces, controls, quotes or angle brackets.
_URL_REST = r'[^\x00-\x20\x7f-\xa0"<>\\^`{|}]'
URL_PATTERN = rf"^https://[A-Za-z0-9._~%!$&'()*+,;=-]+(?::[0-9]{{1,5}})?(?:[/?#]{_URL_REST}*)?$"
URL_RULES = "An https URL of at most 2000 characters: an ASCII host (punycode for IDNs), no user name or password."


def _https_url(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("not a valid https URL") from None
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        raise ValueError("not an https URL with a host (and no user name or password)")
    return value


class NextStep(Strict):
    id: ExternalId
    label: Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=LABEL_PATTERN)] = Field(
        description="1-80 characters, no control characters."
    )
    url: Annotated[str, StringConstraints(max_length=2000, pattern=URL_PATTERN), AfterValidator(_https_url)] = Field(
        description=URL_RULES
    )


class Debrief(Strict):
    after_hours: Annotated[
        float, Field(ge=0, le=168, allow_inf_nan=False), AfterValidator(_resolution), _hours_schema(168)
    ] = Field(description="Hours after each shift ends that Muster posts the debrief into its chat: 0, or 0.01 to 168.")
    text: Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=VISIBLE)] = Field(
        description="The prompt, 1-1000 characters (at least one visible)."
    )


def _unique_step_ids(value: list[Any]) -> list[Any]:
    ids = [getattr(item, "id", item) for item in value]
    if len(ids) != len(set(ids)):
        raise ValueError("ids must be unique")
    return value


class EventBody(Strict):
    title: Title = Field(description="At most 200 characters, at least one of them visible; stored trimmed.")
    timezone: TimeZone
    chat: ChatSettings = Field(default_factory=ChatSettings)
    limits: ChatLimits | None = Field(
        default=None, description="Rate limits for this event's chats (R12); absent or null: the deployment's."
    )
    keywords: Keywords | None = None
    organizers: list[Organizer] = Field(
        default_factory=list, max_length=50, description="At most 50; each id once (refused with 422 otherwise)."
    )
    timeslots: list[Timeslot] = Field(
        default_factory=list, max_length=500, description="At most 500; each id once (refused with 422 otherwise)."
    )
    next_steps: Annotated[list[NextStep], AfterValidator(_unique_step_ids)] = Field(
        default_factory=list,
        max_length=5,
        description="Calls to action shown in the kickoff and the debrief, each as a signed, click-counting link: "
        "at most 5; each id once (refused with 422 otherwise).",
    )
    debrief: Debrief | None = Field(
        default=None,
        description="A prompt Muster posts into each chat of the event once, after_hours after its shift ends.",
    )

    @field_validator("keywords")
    @classmethod
    def _check_keywords(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _keywords(value)

    invite_url: InviteUrl | None = Field(
        default=None,
        description="Bring a Friend: an https URL (at most 500 characters) with {ref} exactly once, for example "
        "your signup page. Each participant's kickoff and digest carry it with {ref} replaced by their own signed "
        "referral code; a signup sent back with that code as referred_by is attributed to them.",
    )

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
    referred_by: Reference | None = Field(default=None, description="At most 200 characters.")


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
    keywords: dict[str, str] | None = None
    organizers: list[Organizer]
    timeslots: list[TimeslotView]
    next_steps: list[NextStep] = Field(default_factory=list)
    debrief: Debrief | None = None
    invite_url: str | None = None


class SignupView(SignupBody):
    id: str
    event_id: str
    delivery: DeliveryMode | None = Field(
        default=None,
        description="How this person follows the chat, if they (or the integration) chose; null: the chat's default.",
    )
    muted: bool = False
    left: bool = Field(default=False, description="Left the chat (muted; no kickoff on a new signup).")
    referrer: str | None = Field(
        default=None,
        description="The signup id whose Bring a Friend code referred_by was (null: no code, or not a valid one "
        "for this event).",
    )


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
    score: float = Field(
        description="Soft-bounce score: +0.5 a soft bounce; suppressed at 5; back to 0 after 7 days without bounces."
    )
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


# ---- organizer announcements (issue 11) ------------------------------------------


class AnnouncementBody(Strict):
    """An organizer's message into a chat (or every chat of the event), sent as that
    organizer's message. Posting the same body again is the same announcement (sent
    once); an ``Idempotency-Key`` header, when given, names the announcement instead."""

    organizer_id: ExternalId = Field(description="An organizer of the event: the message goes out as theirs.")
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000, pattern=VISIBLE)] = Field(
        description="The message, 1-5000 characters (at least one visible). Plain text."
    )
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=VISIBLE)] | None = Field(
        default=None, description="1-200 characters; default 'Announcement'."
    )
    next_steps: Annotated[list[ExternalId], AfterValidator(_unique_step_ids)] = Field(
        default_factory=list,
        max_length=5,
        description="Ids from the event's next_steps, shown as signed links: at most 5, each once (422 for an id the "
        "event does not have).",
    )


class AnnouncementMessage(BaseModel):
    timeslot_id: str
    message_id: str = Field(description="Stable: a retried POST answers the same id and sends nothing again.")
    recipients: int = Field(description="Copies queued (0 when a retry found it already sent).")
    created: bool = Field(description="False when this announcement had been posted before (nothing sent again).")


class AnnouncementSkipped(BaseModel):
    timeslot_id: str
    reason: Literal["chat_not_open", "not_an_organizer"]


class AnnouncementView(BaseModel):
    messages: list[AnnouncementMessage]
    skipped: list[AnnouncementSkipped] = Field(
        default_factory=list, description="Shifts of the event whose chat could not take it (event-wide posts only)."
    )
