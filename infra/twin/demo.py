"""``make demo``: a scenario through the running twin, over real HTTP and SMTP.

Creates an event whose shift starts in 10 hours (so its chat opens at once), an
organizer and three attendees, posts a message from one attendee to the chat's
relay address, waits for the outbox and says where to look.
"""

from __future__ import annotations

import sys
import time

from infra.twin.client import TwinClient, TwinError, chat_message, event_body, signup_body

PEOPLE = [
    ("Alice", "Avery", "alice@volunteers.example"),
    ("Bob", "Brooks", "bob@volunteers.example"),
    ("Chloe", "Chen", "chloe@volunteers.example"),
]
ORGANIZER = {"id": "org-1", "first_name": "Olivia", "last_name": "Organizer", "email": "olivia@org.example"}


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> int:
    twin = TwinClient()
    try:
        twin.request("GET", "/openapi.json", auth=False, timeout=3)
    except OSError:
        say(f"The twin is not running at {twin.config.api_url}: start it with `make dev` (in another terminal).")
        return 1
    try:
        event_id = f"demo-{int(time.time())}"
        before = len(twin.outbox())
        twin.put_event(event_id, event_body("Food bank shift", 10, [ORGANIZER]))
        for n, (first, last, email) in enumerate(PEOPLE, 1):
            twin.put_signup(event_id, f"s{n}", signup_body(first, last, email))
        chat = twin.chat(event_id, "t1")
        say(f"Event {event_id}: chat is {chat['state']}, relay address {chat['address']}")
        kickoffs = twin.wait_for_copies(4, since=before, timeout=30)
        say(f"Kickoff mail: {len(kickoffs)} copies (one per participant)")

        first, last, email = PEOPLE[0]
        message = chat_message(
            f"{first} {last} <{email}>",
            chat["address"],
            "Who is bringing the van keys?",
            "Hi all, I can pick up the van keys at 8. Does anyone need a ride?\n\nAlice",
        )
        mark = len(twin.outbox())
        twin.send(message, email, [chat["address"]])
        say(f"{first} posted to {chat['address']} over SMTP")
        try:
            relayed = twin.wait_for_copies(3, since=mark, timeout=30)
            say(f"Relayed: {len(relayed)} copies (everyone but the author)")
        except TwinError:
            say("No relayed copies yet: is inbound_email in app.py? (see the twin's log)")
    except TwinError as err:
        say(f"Demo failed: {err}")
        return 1
    say("")
    say(f"Outbox:  {twin.config.outbox}/<recipient>/*.eml")
    say(f"Mailbox: {twin.config.mailbox_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
