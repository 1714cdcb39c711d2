"""Signed control tokens (R15): each field is bound; anything else is refused."""

from __future__ import annotations

import pytest

from chalicelib.relay.controltokens import read_control, sign_control, verify_control
from chalicelib.relay.tokens import sign_token

SECRET = b"a-secret-of-at-least-thirty-two-bytes!"
DEP = "prod:chat.example.org"
NOW = 1_800_000_000


def token(**over: object) -> str:
    fields: dict[str, object] = {
        "deployment": DEP,
        "action": "remove",
        "chat_id": "c1",
        "actor": "o-org1",
        "target": "s-s9",
        "expires_at": NOW + 60,
    }
    fields.update(over)
    secret = fields.pop("secret", SECRET)
    return sign_control(secret, **fields)  # type: ignore[arg-type]


def test_a_genuine_token_reads_back_its_claims() -> None:
    claims = read_control(SECRET, token(), deployment=DEP, now=NOW)
    assert claims is not None
    assert (claims.action, claims.chat_id, claims.actor, claims.target) == ("remove", "c1", "o-org1", "s-s9")


def _flip(t: str, at: int) -> str:
    ch = t[at]
    return t[:at] + ("A" if ch != "A" else "B") + t[at + 1 :]


@pytest.mark.parametrize(
    ("name", "make", "expect"),
    [
        ("payload tampered", lambda: _flip(token(), 3), {}),
        ("signature tampered", lambda: _flip(token(), len(token()) - 2), {}),
        ("signature missing", lambda: token().split(".")[0], {}),
        ("expired", lambda: token(expires_at=NOW), {}),
        ("another deployment", lambda: token(deployment="dev:muster.test"), {}),
        ("another secret", lambda: token(secret=b"another-secret-of-thirty-two-bytes!!"), {}),
        ("unknown version", lambda: "YzJ8eA.eA", {}),
        (
            "a mute token",
            lambda: sign_token(SECRET, chat_id="c1", participant_key="o-org1", purpose="remove", expires_at=NOW + 60),
            {},
        ),
        ("replayed on another chat", token, {"chat_id": "c2"}),
        ("replayed by another organizer", token, {"actor": "o-org2"}),
        ("replayed on another target", token, {"target": "s-s8"}),
        ("replayed as another action", token, {"action": "block"}),
        ("too long", lambda: "A" * 700 + "." + "B" * 43, {}),
        ("not ASCII", lambda: token() + "\u00e9", {}),
        ("empty", lambda: "", {}),
    ],
)
def test_tokens_that_must_not_act(name: str, make: object, expect: dict[str, str]) -> None:
    t = make()  # type: ignore[operator]
    assert verify_control(SECRET, t, deployment=DEP, now=NOW, **expect) is None, name


def test_every_bound_field_must_match_when_given() -> None:
    t = token()
    assert verify_control(
        SECRET, t, deployment=DEP, now=NOW, chat_id="c1", actor="o-org1", target="s-s9", action="remove"
    )


@pytest.mark.parametrize("bad", ["", "a|b", "line\nbreak", "caf\u00e9"])
def test_fields_that_could_confuse_the_payload_cannot_be_signed(bad: str) -> None:
    with pytest.raises(ValueError):
        token(chat_id=bad)


def test_unknown_actions_cannot_be_signed() -> None:
    with pytest.raises(ValueError):
        token(action="delete_everything")
