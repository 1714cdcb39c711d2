"""The ride board (issue 12): ride offers and needs within one chat, matched and
introduced through a private two-person thread.

- One entry per person per chat, ``CH#<chat>``/``RIDE#<participant key>``
  (:class:`RideEntry`), written with a conditional put: asking again (a retry, or
  the same command twice) finds it and finishes whatever is unfinished instead of
  adding a second one. A different entry needs ``RIDE CANCEL`` first.
- Matching: an offer of N seats takes up to N needs from the same place (case-
  and whitespace-insensitive), first come first served (``created_at``). Each
  match is one DynamoDB transaction on both entries: the offer's
  ``seats_left > 0`` (decremented) and the need's "not yet matched". Two needs
  racing for the last seat: one transaction wins, the other's condition fails and
  that need stays open. An offer and a need posted at the same moment each write
  themselves before they look for the other, so at least one sees the other, and
  the need's condition lets only one match happen.
- Each matched pair gets a private thread (:func:`chalicelib.services.private.open_pair`,
  idempotent, intros exactly once through the fan-out's claims). Whoever asks
  again re-opens the pairs of their matches, so a crash between the match and the
  introduction is repaired by the retry.
- Listings and answers name places and display names only; places were checked
  (:func:`chalicelib.relay.bot.place_problem`) before they were stored.
"""

from __future__ import annotations

from collections import Counter as Tally
from datetime import timedelta

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.errors import ApiError
from chalicelib.models import Chat, Participant, RideEntry, transactions
from chalicelib.observability import logger, metrics
from chalicelib.relay import bot as words
from chalicelib.relay.names import display_name
from chalicelib.services.fanout import FanOut
from chalicelib.services.private import member_active, open_pair
from chalicelib.services.roster import participants
from chalicelib.settings import Settings

ENTRY_DAYS = 30  # entries outlive any chat window's use of them (TTL)


class RideBoard:
    def __init__(self, settings: Settings, fanout: FanOut | None = None) -> None:
        self.settings = settings
        self.fanout = fanout

    # -- commands ----------------------------------------------------------------

    def post(self, chat: Chat, key: str, command: words.RideOffer | words.RideNeed) -> str:
        """Put an offer or need on the board, match it, introduce the pairs; the answer."""
        offer = isinstance(command, words.RideOffer)
        seats = command.seats if isinstance(command, words.RideOffer) else 0
        entry = RideEntry(
            f"CH#{chat.chat_id}",
            f"RIDE#{key}",
            chat_id=chat.chat_id,
            participant_key=key,
            kind="offer" if offer else "need",
            place=command.place,
            place_key=words.place_key(command.place),
            seats=seats,
            seats_left=seats,
            created_at=clock.now(),
            expires=timedelta(days=ENTRY_DAYS),
        )
        try:
            entry.save(condition=RideEntry.pk.does_not_exist())
            metrics.add_metric(name="RideEntries", unit="Count", value=1)
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            entry = RideEntry.get(entry.pk, entry.sk, consistent_read=True)
            same = entry.kind == ("offer" if offer else "need") and entry.place_key == words.place_key(command.place)
            if not same or (offer and int(entry.seats) != seats):
                return words.other_entry_answer(entry.kind, entry.place)
        people = {p.participant_key: p for p in participants(chat.chat_id)}
        self._match(chat, entry, people)
        entry.refresh(consistent_read=True)
        matches = self._introduce(chat, entry, people)
        if offer:
            return words.offer_answer(int(entry.seats), int(entry.seats_left), entry.place, matches)
        return words.need_answer(entry.place, matches)

    def cancel(self, chat: Chat, key: str) -> str:
        try:
            entry = RideEntry.get(f"CH#{chat.chat_id}", f"RIDE#{key}", consistent_read=True)
        except DoesNotExist:
            return words.cancel_answer(None, None, 0)
        entry.delete()
        return words.cancel_answer(entry.kind, entry.place, len(entry.matched or ()))

    def listing(self, chat: Chat) -> str:
        """Open offers (free seats) and needs by place, no identities."""
        active = {p.participant_key for p in participants(chat.chat_id) if member_active(p)}
        offers: Tally[str] = Tally()
        needs: Tally[str] = Tally()
        shown: dict[str, str] = {}
        for e in self._entries(chat.chat_id):
            if e.participant_key not in active:
                continue
            shown.setdefault(e.place_key, e.place)
            if e.kind == "offer" and int(e.seats_left) > 0:
                offers[e.place_key] += int(e.seats_left)
            elif e.kind == "need" and not e.matched:
                needs[e.place_key] += 1
        return words.board_answer(
            [(shown[k], n) for k, n in sorted(offers.items())], [(shown[k], n) for k, n in sorted(needs.items())]
        )

    # -- matching ------------------------------------------------------------------

    @staticmethod
    def _entries(chat_id: str) -> list[RideEntry]:
        return list(RideEntry.query(f"CH#{chat_id}", RideEntry.sk.startswith("RIDE#"), consistent_read=True))

    def _match(self, chat: Chat, entry: RideEntry, people: dict[str, Participant]) -> None:
        """Match ``entry`` with the board's counterparts, first come first served."""
        me = people.get(entry.participant_key)
        if not member_active(me):
            return
        assert me is not None
        wanted = "need" if entry.kind == "offer" else "offer"

        def eligible(e: RideEntry) -> bool:
            other = people.get(e.participant_key)
            return (
                e.kind == wanted
                and e.place_key == entry.place_key
                and member_active(other)
                and other is not None
                and other.address_hash != me.address_hash  # one person, two roles: never themselves
                and (int(e.seats_left) > 0 if wanted == "offer" else not e.matched)
            )

        candidates = sorted(filter(eligible, self._entries(chat.chat_id)), key=lambda e: (e.created_at, e.sk))
        for other in candidates:
            if entry.kind == "offer":
                result = self._pair(offer=entry, need=other)
                if result == "offer_full":
                    return
            else:
                result = self._pair(offer=other, need=entry)
                if result in {"matched", "need_taken"}:
                    return

    def _pair(self, *, offer: RideEntry, need: RideEntry) -> str:
        """One match as one transaction: "matched", "offer_full" or "need_taken"."""
        try:
            with TransactWrite(connection=transactions()) as tx:
                tx.update(
                    RideEntry(offer.pk, offer.sk),
                    actions=[RideEntry.seats_left.add(-1), RideEntry.matched.add({need.participant_key})],
                    condition=(RideEntry.seats_left > 0) & (RideEntry.kind == "offer"),
                )
                tx.update(
                    RideEntry(need.pk, need.sk),
                    actions=[RideEntry.matched.add({offer.participant_key})],
                    condition=(RideEntry.kind == "need") & RideEntry.matched.does_not_exist(),
                )
        except TransactWriteError as exc:
            reasons = [r.code if r else None for r in (exc.cancellation_reasons or [])]
            if "ConditionalCheckFailed" not in reasons:
                raise
            return "offer_full" if reasons and reasons[0] == "ConditionalCheckFailed" else "need_taken"
        metrics.add_metric(name="RidesMatched", unit="Count", value=1)
        logger.info("ride matched", extra={"chat_id": offer.chat_id})
        return "matched"

    def _introduce(self, chat: Chat, entry: RideEntry, people: dict[str, Participant]) -> list[words.Match]:
        """Open (or find) the private thread of each of ``entry``'s matches."""
        matches = []
        for other_key in sorted(entry.matched or ()):
            offer_key, need_key = (
                (entry.participant_key, other_key) if entry.kind == "offer" else (other_key, entry.participant_key)
            )
            other = people.get(other_key)
            if other is None:
                continue
            try:
                info = open_pair(
                    chat.chat_id,
                    offer_key,
                    need_key,
                    about="ride",
                    place=entry.place,
                    settings=self.settings,
                    fanout=self.fanout,
                )
            except ApiError as exc:  # the other one left, or the chat closed meanwhile
                logger.info("ride pair not introduced", extra={"chat_id": chat.chat_id, "reason": exc.code})
                continue
            name = display_name(other.first_name, other.last_name, organizer=other.role == "organizer")
            matches.append(words.Match(name=name, address=info.relay_address))
        return matches
