"""Events, shifts and signups: the integration's records (R1-R3, R13).

Both the REST API and the EventBridge path call these functions, so the two
integration paths cannot behave differently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clock
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.models import Block, Chat, Delivery, Event, Participant, SignupRef, Suppression, TimeslotMap
from chalicelib.relay.addresses import address_hash
from chalicelib.relay.names import display_name
from chalicelib.relay.sms import phone_hash, pseudo_address
from chalicelib.schemas import (
    ChatLimits,
    ChatSettings,
    ChatView,
    Debrief,
    DeliveryMode,
    EventBody,
    EventView,
    NextStep,
    Organizer,
    ParticipantView,
    SignupBody,
    SignupView,
    TimeslotView,
)
from chalicelib.schemas import Person as PersonBody
from chalicelib.services import referrals, sms_optout, suppressions
from chalicelib.services.chats import ChatService, chat_id_for, relay_local, window_for
from chalicelib.services.debrief import debrief_at
from chalicelib.services.nextsteps import dump_steps, steps_of
from chalicelib.services.roster import is_active, participants, relay_address
from chalicelib.settings import Settings, get_settings


def _person_fields(p: Participant) -> dict[str, Any]:
    """A record's person as the integration gave it (its own data, R5)."""
    return {
        "first_name": p.first_name,
        "last_name": p.last_name,
        "email": p.email or None,
        "phone": p.phone,
        "channel": p.channel or "email",
    }


def _event_key(integration: str, event_id: str) -> str:
    return f"EV#{integration}#{event_id}"


def _limits_view(event: Event) -> ChatLimits | None:
    sender, copies = event.sender_messages_per_hour, event.chat_copies_per_hour
    if sender is None and copies is None:
        return None
    return ChatLimits(
        sender_messages_per_hour=None if sender is None else int(sender),
        chat_copies_per_hour=None if copies is None else int(copies),
    )


class EventService:
    def __init__(self, settings: Settings | None = None, chats: ChatService | None = None) -> None:
        self.settings = settings or get_settings()
        self.chats = chats or ChatService(self.settings)

    # -- helpers ---------------------------------------------------------------

    def _load(self, integration: str, event_id: str) -> Event:
        try:
            return Event.get(_event_key(integration, event_id), "META", consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"no event '{event_id}'", "event_id") from None

    def _chat_id(self, integration: str, event_id: str, timeslot_id: str) -> str:
        return chat_id_for(integration, event_id, timeslot_id, self.settings.secret)

    def _person(self, pk: str, key: str, role: str, status: str, who: PersonBody | Participant) -> Participant:
        # Someone reached by SMS alone has no address: their number stands for it
        # in the address-keyed paths (one record per person, sender lookup).
        identity = who.email or pseudo_address(who.phone or "")
        channel = who.channel if who.channel in {"sms", "both"} else None
        return Participant(
            pk,
            f"P#{key}",
            participant_key=key,
            role=role,
            status=status,
            first_name=who.first_name,
            last_name=who.last_name,
            email=who.email or "",
            address_hash=address_hash(self.settings.secret, identity),
            phone=who.phone,
            phone_hash=phone_hash(self.settings.secret, who.phone) if who.phone else None,
            channel=channel,
            updated_at=clock.now(),
        )

    def _suppressed(self, digest: str) -> bool:
        try:
            Suppression.get(f"SUP#{digest}", "META")
        except DoesNotExist:
            return False
        return True

    @staticmethod
    def _blocked(digest: str) -> bool:
        try:
            Block.get(f"BLK#{digest}", "META")
        except DoesNotExist:
            return False
        return True

    @staticmethod
    def _kickoff_sent(chat_id: str, participant_key: str) -> bool:
        try:
            Delivery.get(f"MSG#kickoff-{chat_id}", f"TO#{participant_key}")
        except DoesNotExist:
            return False
        return True

    def _write_people(
        self, pk: str, wanted: list[Participant], existing: Iterable[Participant], prefix: str
    ) -> list[str]:
        """Make the ``prefix`` participants of partition ``pk`` exactly ``wanted``.

        Keeps each person's own choices (muted, left, delivery) and suppression;
        returns the keys that became active and did not leave (they may need a
        late kickoff).
        """
        old = {p.participant_key: p for p in existing if p.participant_key.startswith(prefix)}
        became_active: list[str] = []
        found_suppressed: list[Participant] = []
        with Participant.batch_write() as batch:
            for person in wanted:
                before = old.pop(person.participant_key, None)
                if before is not None:
                    person.muted = before.muted
                    person.left = before.left
                    person.delivery = before.delivery
                    person.suppressed = before.suppressed and before.address_hash == person.address_hash
                    same_person = before.address_hash == person.address_hash
                    # An organizer's decisions stay until an organizer undoes them (R15).
                    person.removed = before.removed if same_person else None
                    person.held = before.held if same_person else None
                    person.trusted = before.trusted if same_person else None
                    same = all(
                        getattr(before, a) == getattr(person, a)
                        for a in ("role", "status", "first_name", "last_name", "email", "phone", "channel")
                    )
                    if same:
                        continue
                if not person.suppressed:
                    person.suppressed = self._suppressed(person.address_hash)
                    if person.suppressed:
                        found_suppressed.append(person)
                person.blocked = self._blocked(person.address_hash) or None
                person.sms_stopped = (sms_optout.opted_out(person.phone_hash) or None) if person.phone_hash else None
                if is_active(person) and not person.left and (before is None or not is_active(before)):
                    became_active.append(person.participant_key)
                batch.save(person)
            for gone in old.values():
                batch.delete(gone)
        for person in found_suppressed:  # list it on the integration's suppressions page
            suppressions.remember(person.address_hash, pk, person.participant_key)
        return became_active

    # -- events ----------------------------------------------------------------

    def upsert_event(self, integration: str, event_id: str, body: EventBody) -> tuple[EventView, bool]:
        now = clock.now()
        key = _event_key(integration, event_id)
        try:
            previous: Event | None = Event.get(key, "META", consistent_read=True)
        except DoesNotExist:
            previous = None
        event = Event(
            key,
            "META",
            integration=integration,
            event_id=event_id,
            title=body.title,
            timezone=body.timezone,
            chat_enabled=body.chat.enabled,
            open_before_hours=body.chat.open_before_hours,
            close_after_hours=body.chat.close_after_hours,
            close_after_set=body.chat.close_after_given,
            timeslots=[
                TimeslotMap(id=t.id, starts_at=t.starts_at, ends_at=t.ends_at, chat_enabled=t.chat_enabled)
                for t in body.timeslots
            ],
            organizer_ids=[o.id for o in body.organizers],
            default_delivery=body.chat.default_delivery,
            moderation=body.chat.moderation,
            report_threshold=body.chat.report_threshold,
            sender_messages_per_hour=body.limits.sender_messages_per_hour if body.limits else None,
            chat_copies_per_hour=body.limits.chat_copies_per_hour if body.limits else None,
            keywords=body.keywords or None,  # issue 12: the keyword bot's answers
            invite_url=body.invite_url,
            cancelled=False,
            next_steps_json=dump_steps([step.model_dump() for step in body.next_steps]),  # issue 11
            debrief_after_hours=body.debrief.after_hours if body.debrief else None,
            debrief_text=body.debrief.text if body.debrief else None,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )
        event.save()
        organizers = [self._person(key, f"o-{o.id}", "organizer", "organizer", o) for o in body.organizers]
        self._write_people(key, organizers, Participant.query(key, Participant.sk.startswith("P#o-")), "o-")
        for slot in event.timeslots:
            self._sync_chat(event, slot, organizers)
        kept = {t.id for t in event.timeslots}
        for old in previous.timeslots if previous else []:
            if old.id not in kept:
                self._close(self._chat_id(integration, event_id, old.id), "removed")
        return self.view(integration, event_id), previous is None

    def _sync_chat(self, event: Event, slot: TimeslotMap, organizers: list[Participant]) -> None:
        chat_id = self._chat_id(event.integration, event.event_id, slot.id)
        pk = f"CH#{chat_id}"
        copies = [self._person(pk, o.participant_key, "organizer", "organizer", o) for o in organizers]
        current = Participant.query(pk, Participant.sk.startswith("P#o-"), consistent_read=True)
        new_organizers = self._write_people(pk, copies, current, "o-")
        window = window_for(event, slot, self.settings)
        before: list[str | None] = [None]  # the state this update found (None: a new chat)

        def apply(chat: Chat) -> bool:
            before[0] = chat.state if chat.version else None
            chat.title, chat.timezone = event.title, event.timezone
            chat.starts_at, chat.ends_at = slot.starts_at, slot.ends_at
            chat.opens_at, chat.closes_at = window.opens_at, window.closes_at
            chat.default_delivery = event.default_delivery
            chat.moderation = event.moderation
            chat.report_threshold = event.report_threshold
            chat.sender_messages_per_hour = event.sender_messages_per_hour  # R12 per-chat limits
            chat.chat_copies_per_hour = event.chat_copies_per_hour
            chat.debrief_at = debrief_at(event, slot)  # issue 11: moves with the shift
            chat.invite_url = event.invite_url
            if chat.closed_reason in {"cancelled", "removed"}:
                chat.closed_reason = None  # the event or shift is back
            return window.enabled

        def create() -> Chat:
            return Chat(
                pk,
                "META",
                chat_id=chat_id,
                integration=event.integration,
                event_id=event.event_id,
                timeslot_id=slot.id,
                title=event.title,
                timezone=event.timezone,
                relay_local=relay_local(event.title, chat_id),
                state="scheduled",
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                opens_at=window.opens_at,
                default_delivery=event.default_delivery,
                moderation=event.moderation,
                report_threshold=event.report_threshold,
                sender_messages_per_hour=event.sender_messages_per_hour,
                chat_copies_per_hour=event.chat_copies_per_hour,
                debrief_at=debrief_at(event, slot),
                invite_url=event.invite_url,
            )

        chat = self.chats.update(chat_id, apply, create=create)
        # Opening sends everyone the kickoff; an organizer added to an open chat gets theirs now.
        if chat is not None and chat.state == "open" and before[0] == "open" and new_organizers:
            self.chats.kickoff.kickoff(chat, new_organizers, batch="late")

    def _close(self, chat_id: str, reason: str) -> None:
        def close(chat: Chat) -> bool:
            chat.closed_reason = reason
            return False

        self.chats.update(chat_id, close)

    def cancel_event(self, integration: str, event_id: str) -> EventView:
        event = self._load(integration, event_id)
        event.update(actions=[Event.cancelled.set(True), Event.updated_at.set(clock.now())])
        for slot in event.timeslots:
            self._close(self._chat_id(integration, event_id, slot.id), "cancelled")
        return self.view(integration, event_id)

    def view(self, integration: str, event_id: str) -> EventView:
        event = self._load(integration, event_id)
        key = _event_key(integration, event_id)
        people = {p.participant_key: p for p in Participant.query(key, Participant.sk.startswith("P#o-"))}
        chat_ids = [self._chat_id(integration, event_id, t.id) for t in event.timeslots]
        chats = {c.chat_id: c for c in Chat.batch_get([(f"CH#{c}", "META") for c in chat_ids])}
        slots = []
        for slot, chat_id in zip(event.timeslots, chat_ids, strict=True):
            chat = chats[chat_id]
            slots.append(
                TimeslotView(
                    id=slot.id,
                    starts_at=slot.starts_at,
                    ends_at=slot.ends_at,
                    chat_enabled=slot.chat_enabled,
                    chat=self._chat_view(chat, None),
                )
            )
        chat_settings = ChatSettings(
            enabled=event.chat_enabled,
            open_before_hours=event.open_before_hours,
            default_delivery=event.default_delivery,  # type: ignore[arg-type]
        )
        if event.close_after_set:
            chat_settings.close_after_hours = event.close_after_hours
        return EventView(
            id=event.event_id,
            title=event.title,
            timezone=event.timezone,
            cancelled=event.cancelled,
            chat=chat_settings,
            limits=_limits_view(event),
            keywords=dict(event.keywords) if event.keywords else None,
            organizers=[
                Organizer(id=str(oid), **_person_fields(p))
                for oid in event.organizer_ids
                if (p := people.get(f"o-{oid}")) is not None
            ],
            timeslots=slots,
            next_steps=[NextStep(id=x.id, label=x.label, url=x.url) for x in steps_of(event)],
            debrief=Debrief(after_hours=float(event.debrief_after_hours), text=event.debrief_text)
            if event.debrief_after_hours is not None and event.debrief_text
            else None,
            invite_url=event.invite_url,
        )

    def _chat_view(self, chat: Chat, people: list[Participant] | None) -> ChatView:
        return ChatView(
            state=chat.state,  # type: ignore[arg-type]
            opens_at=chat.opens_at,
            closes_at=chat.closes_at,
            address=relay_address(chat, self.settings),
            participants=None
            if people is None
            else [
                ParticipantView(
                    id=p.participant_key[2:],
                    kind="organizer" if p.role == "organizer" else "signup",
                    display_name=display_name(p.first_name, p.last_name, organizer=p.role == "organizer"),
                    status=p.status,
                    active=is_active(p),
                    muted=p.muted,
                    left=p.left,
                    delivery=p.delivery,  # type: ignore[arg-type]
                )
                for p in people
            ],
        )

    def chat_view(self, integration: str, event_id: str, timeslot_id: str) -> ChatView:
        event = self._load(integration, event_id)
        if not any(t.id == timeslot_id for t in event.timeslots):
            raise NotFound(f"no timeslot '{timeslot_id}' in event '{event_id}'", "timeslot_id")
        chat_id = self._chat_id(integration, event_id, timeslot_id)
        chat = Chat.get(f"CH#{chat_id}", "META", consistent_read=True)
        return self._chat_view(chat, participants(chat_id))

    # -- signups ---------------------------------------------------------------

    def upsert_signup(
        self, integration: str, event_id: str, signup_id: str, body: SignupBody
    ) -> tuple[SignupView, bool]:
        event = self._load(integration, event_id)
        if not any(t.id == body.timeslot_id for t in event.timeslots):
            raise Unprocessable(
                f"event '{event_id}' has no timeslot '{body.timeslot_id}'", "timeslot_id", code="unknown_timeslot"
            )
        now = clock.now()
        key = _event_key(integration, event_id)
        try:
            ref: SignupRef | None = SignupRef.get(key, f"S#{signup_id}", consistent_read=True)
        except DoesNotExist:
            ref = None
        pkey = f"s-{signup_id}"
        if ref is not None and ref.timeslot_id != body.timeslot_id:
            old_chat = self._chat_id(integration, event_id, ref.timeslot_id)
            Participant(f"CH#{old_chat}", f"P#{pkey}").delete()
        referrer = referrals.referrer_of(self.settings, integration, event_id, signup_id, body.referred_by)
        SignupRef(
            key,
            f"S#{signup_id}",
            timeslot_id=body.timeslot_id,
            status=body.status,
            referred_by=body.referred_by,
            referrer=referrer,
            created_at=ref.created_at if ref else now,
            updated_at=now,
        ).save()
        chat_id = self._chat_id(integration, event_id, body.timeslot_id)
        pk = f"CH#{chat_id}"
        person = self._person(pk, pkey, "attendee", body.status, body.person)
        try:
            existing = [Participant.get(pk, f"P#{pkey}", consistent_read=True)]
        except DoesNotExist:
            existing = []
        became_active = self._write_people(pk, [person], existing, pkey)
        if referrer is not None:  # Bring a Friend (issue 11): on every PUT, idempotently
            referrals.attributed(Chat.get(pk, "META", consistent_read=True), signup_id, referrer, now)
        # Someone who left the chat gets no kickoff, however often they sign up again.
        if is_active(person) and not person.left and (became_active or not self._kickoff_sent(chat_id, pkey)):
            # Also when a retried PUT finds the signup unchanged: the first try
            # may have failed to queue the kickoff (R9). Queuing twice is safe.
            chat = Chat.get(pk, "META", consistent_read=True)
            if chat.state == "open":
                self.chats.kickoff.kickoff(chat, [pkey], batch="late")
        return self.signup_view(integration, event_id, signup_id), ref is None

    def _signup(self, integration: str, event_id: str, signup_id: str) -> tuple[SignupRef, str]:
        """The signup's pointer and its chat id (404 for an unknown event or signup)."""
        self._load(integration, event_id)
        try:
            ref = SignupRef.get(_event_key(integration, event_id), f"S#{signup_id}", consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"no signup '{signup_id}' in event '{event_id}'", "signup_id") from None
        return ref, self._chat_id(integration, event_id, ref.timeslot_id)

    def set_delivery(
        self, integration: str, event_id: str, signup_id: str, delivery: DeliveryMode | None
    ) -> SignupView:
        """How one signup follows its chat: every message, a daily digest, or
        (None) the chat's default. Takes effect from the next message."""
        _, chat_id = self._signup(integration, event_id, signup_id)
        record = Participant(f"CH#{chat_id}", f"P#s-{signup_id}")
        try:
            record.update(
                actions=[
                    Participant.delivery.set(delivery) if delivery else Participant.delivery.remove(),
                    Participant.updated_at.set(clock.now()),
                ],
                condition=Participant.pk.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise NotFound(f"no signup '{signup_id}' in event '{event_id}'", "signup_id") from None
            raise
        return self.signup_view(integration, event_id, signup_id)

    def signup_view(self, integration: str, event_id: str, signup_id: str) -> SignupView:
        ref, chat_id = self._signup(integration, event_id, signup_id)
        p = Participant.get(f"CH#{chat_id}", f"P#s-{signup_id}", consistent_read=True)
        return SignupView(
            id=signup_id,
            event_id=event_id,
            timeslot_id=ref.timeslot_id,
            status=ref.status,  # type: ignore[arg-type]
            person=PersonBody(**_person_fields(p)),
            referred_by=ref.referred_by,
            delivery=p.delivery,  # type: ignore[arg-type]
            muted=p.muted,
            left=p.left,
            referrer=ref.referrer,
        )
