"""R5 for issue 11's outbound paths: the kickoff with its Bring a Friend line, the
digest's, and every integration event detail Muster emits.

Participants get random addresses and names that are, or contain, addresses;
the records the event builders read carry them too (as a careless builder could
pick them up). No kickoff, digest listing or detail may hold any of them, and a
referral code never shows the signup id it names."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.relay.compose import render_kickoff
from chalicelib.relay.reftokens import read_ref, sign_ref
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import CHAT, WHEN

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECRET = b"a-secret-of-at-least-thirty-two-bytes!"
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
addresses = st.builds(
    lambda lp, d, tld: f"{lp}@{d}.{tld}",
    st.text(alphabet=_ALNUM, min_size=1, max_size=12),
    st.text(alphabet=_ALNUM, min_size=1, max_size=10),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=5),
)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{3,40}", fullmatch=True)


@SETTINGS
@given(
    people=st.lists(st.tuples(addresses, st.text(max_size=20), ids), min_size=1, max_size=6),
    event=ids,
    template=st.sampled_from(
        ["https://signup.example/e?ref={ref}", "https://x.example/{ref}", "https://a.example:8443/j/{ref}?utm=chat"]
    ),
)
def test_kickoff_with_a_friend_link_leaks_nothing_and_the_code_is_opaque(
    people: list[tuple[str, str, str]], event: str, template: str
) -> None:
    real = [a for a, _, _ in people]
    for address, name, signup_id in people:
        ref = sign_ref(SECRET, deployment="test:muster.test", event=f"acme/{event}", signup_id=signup_id)
        assert (
            signup_id not in ref
            and read_ref(SECRET, ref, deployment="test:muster.test", event=f"acme/{event}") == signup_id
        )
        assert read_ref(SECRET, ref, deployment="test:muster.test", event=f"acme/{event}x") is None
        link = template.replace("{ref}", ref)
        kickoff = render_kickoff(
            chat=CHAT,
            recipient_name=f"{name} {address}",
            shift_label="Canvass",
            organizer=False,
            message_id="<k@muster.test>",
            date=WHEN,
            members=[f"{n} <{a}>" for a, n, _ in people] + [a for a in real],
            invite_url=link,
        )
        assert find_leaks(kickoff, real) == []
        text = (
            email.message_from_bytes(kickoff, policy=email.policy.default)
            .get_body(("plain",))
            .get_content()
            .replace("\r\n", "\n")
        )
        assert f"Bring a friend: {link}\n" in text


@SETTINGS
@given(
    people=st.lists(st.tuples(addresses, st.text(max_size=12).map(lambda t: f"Ñ{t}"), ids), min_size=2, max_size=5),
    event=ids,
    after=st.booleans(),
    action=st.sampled_from(
        [
            "remove",
            "restore",
            "block",
            "unblock",
            "close",
            "reopen",
            "hold",
            "release",
            "auto_hold",
            "approve",
            "reject",
            "expire",
            "report",
            "private",
        ]
    ),
)
def test_every_emitted_detail_leaks_nothing(
    people: list[tuple[str, str, str]], event: str, after: bool, action: str
) -> None:
    from chalicelib.services import signals

    real = [a for a, _, _ in people]
    opened = datetime(2026, 12, 10, 9, tzinfo=UTC)
    chat = SimpleNamespace(
        integration="acme",
        chat_id="c0ffee",
        event_id=event,
        timeslot_id="t1",
        opens_at=opened,
        ends_at=opened,
        opened_at=opened,
        closed_at=opened,
        state="closed",
        closed_reason="organizer",
        version=3,
        title=people[0][1],
        email=real[0],
        first_name=people[0][1],
    )
    author = people[0]
    log = SimpleNamespace(
        message_id="17a-msg",
        author_key=f"s-{author[2]}",
        size=1200,
        rendered_size=1500,
        recipients=len(people),
        sender_hash="h",
        email=author[0],
        first_name=author[1],
    )
    signals._buffer.clear()
    signals.emit(signals.relayed(log, chat, opened + timedelta(hours=1 if after else -1), private=False))
    signals.chat_opened(chat, opened, len(people))
    signals.chat_changed(chat, "open")
    chat.state = "open"
    signals.chat_changed(chat, "closed")
    for what in ("mute", "unmute", "leave"):
        signals.participant(what, chat, f"s-{people[1][2]}", opened)
    signals.steward(
        action, integration="acme", chat=chat, target=f"s-{people[1][2]}", via="control", record_key="k", at=opened
    )
    signals.referral(chat, people[1][2], author[2], opened)
    signals.next_step_clicked(chat, "volunteer", "click-1", opened)
    details = [body for _, body in signals._buffer.values()]
    signals._buffer.clear()
    assert len(details) >= 8
    for body in details:
        assert find_leaks(body.encode(), real) == []
        # Every name starts with Ñ, which no id, time or number contains.
        assert "Ñ" not in json.dumps(json.loads(body), ensure_ascii=False)
