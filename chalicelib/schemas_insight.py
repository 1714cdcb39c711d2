"""Boundary models of issue 11: the integration events Muster puts on EventBridge
(``events_schema/out/``) and the KPI API's responses.

Every event detail carries ``version`` and ``idempotency`` (deterministic: the
same fact, retried, has the same key, so a CRM can dedupe) and the ids an
integration knows (its own event, timeslot, signup and organizer ids) plus the
opaque chat id. Never content, addresses or names: tests/property/test_no_leaks.py
greps every emitted detail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SOURCE = "muster"
VERSION: Literal[1] = 1


class Detail(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    version: Literal[1] = VERSION
    idempotency: str = Field(
        max_length=200, description="The same fact, emitted again, has the same key: dedupe on it."
    )
    integration: str
    chat_id: str = Field(description="Muster's opaque chat id (one per shift).")
    event_id: str
    timeslot_id: str
    at: datetime


class ChatOpened(Detail):
    opens_at: datetime
    ends_at: datetime
    members: int = Field(ge=0, description="People sent the kickoff at opening.")


class ChatClosed(Detail):
    reason: Literal["window", "organizer", "cancelled", "removed"]


class ChatReopened(Detail):
    pass


class MessageRelayed(Detail):
    """One per message (never per copy)."""

    message_id: str
    author_kind: Literal["signup", "organizer"]
    author_id: str = Field(description="The integration's signup id or organizer id of the author.")
    size: int = Field(ge=0, description="Bytes of the inbound message.")
    rendered_size: int = Field(ge=0, description="Bytes of the anonymized copy.")
    recipients: int = Field(ge=0)
    after_event: bool = Field(description="Posted after the shift ended.")
    private: bool = Field(default=False, description="In an organizer's private two-person conversation.")


class _Person(Detail):
    kind: Literal["signup", "organizer"]
    id: str = Field(description="The integration's signup or organizer id.")


class ParticipantMuted(_Person):
    pass


class ParticipantUnmuted(_Person):
    pass


class ParticipantLeft(_Person):
    pass


class NextStepClicked(Detail):
    step_id: str
    signup_id: str | None = Field(default=None, description="Only when the deployment enables per-person attribution.")


class ReferralAttributed(Detail):
    signup_id: str = Field(description="The new signup.")
    referrer_signup_id: str = Field(description="The signup whose Bring a Friend link it came through.")


class ModerationAction(Detail):
    """What an organizer (or the integration's key) did to a person or a message (R15)."""

    action: Literal[
        "removed",
        "restored",
        "blocked",
        "unblocked",
        "closed",
        "reopened",
        "held",
        "released",
        "approved",
        "rejected",
        "expired",
        "reported",
    ]
    via: Literal["control", "api", "system"]
    target_kind: Literal["signup", "organizer", "message", "chat", "block"]
    target_id: str = Field(description="The signup or organizer id, the message id, the chat id or the block id.")
    # An unblock names no chat.
    chat_id: str | None = None  # type: ignore[assignment]
    event_id: str | None = None  # type: ignore[assignment]
    timeslot_id: str | None = None  # type: ignore[assignment]


OUT_EVENTS: dict[str, type[Detail]] = {
    "ChatOpened": ChatOpened,
    "ChatClosed": ChatClosed,
    "ChatReopened": ChatReopened,
    "MessageRelayed": MessageRelayed,
    "ParticipantMuted": ParticipantMuted,
    "ParticipantUnmuted": ParticipantUnmuted,
    "ParticipantLeft": ParticipantLeft,
    "NextStepClicked": NextStepClicked,
    "ReferralAttributed": ReferralAttributed,
    "ModerationAction": ModerationAction,
}


# ---- KPI API ---------------------------------------------------------------------


class Spread(BaseModel):
    median: float | None = Field(description="null when there is nothing to measure")
    p90: float | None


class StepClicks(BaseModel):
    step_id: str
    clicks: int


class KpiReport(BaseModel):
    model_config = ConfigDict(defer_build=True)

    from_: str = Field(alias="from", description="First day (UTC) a chat opened, YYYY-MM-DD")
    to: str
    event_id: str | None = None
    chats_opened: int
    chats_with_messages: int
    share_with_messages: float = Field(description="Of the chats opened, the share with at least one message (0-1).")
    chats_after_event: int
    share_after_event: float = Field(description="The share with a message after the shift ended (0-1).")
    messages_per_chat: Spread
    posters_per_chat: Spread = Field(description="Distinct people who posted, per chat.")
    first_message_seconds: Spread = Field(description="From opening to the first message, over chats with one.")
    members: int = Field(description="People sent a kickoff.")
    mute_rate: float = Field(description="Muted (at any time) / members.")
    leave_rate: float = Field(description="Left / members.")
    referrals: int = Field(description="Signups attributed to a Bring a Friend link.")
    referred_posted: int
    share_referred_posted: float = Field(description="Of the referred signups, the share who posted.")
    next_step_clicks: list[StepClicks]


class KpiChatRow(BaseModel):
    model_config = ConfigDict(defer_build=True)

    chat_id: str
    event_id: str
    timeslot_id: str
    opened_on: str
    opened_at: datetime | None
    messages: int
    after_event: int
    posters: int
    first_message_seconds: float | None
    members: int
    muted: int
    left: int
    referrals: int
    referred_posted: int
    next_step_clicks: int


class KpiChats(BaseModel):
    model_config = ConfigDict(defer_build=True)

    from_: str = Field(alias="from")
    to: str
    event_id: str | None = None
    chats: list[KpiChatRow]
