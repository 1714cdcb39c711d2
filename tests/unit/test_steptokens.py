"""Next-step tokens (issue 11): bound to deployment, chat, step and (optionally)
reader; never valid as another purpose's token, nor the other way round."""

from __future__ import annotations

import pytest

from chalicelib.relay.controltokens import read_control, sign_control
from chalicelib.relay.steptokens import read_step, sign_step
from chalicelib.relay.tokens import sign_token, verify_token

SECRET = b"s" * 32
DEP = "test:muster.test"


def test_a_token_reads_back_what_it_names_and_nothing_else() -> None:
    token = sign_step(SECRET, deployment=DEP, chat_id="chat1", step_id="petition", reader="s-7")
    claims = read_step(SECRET, token, deployment=DEP)
    assert claims is not None and (claims.chat_id, claims.step_id, claims.reader) == ("chat1", "petition", "s-7")
    anonymous = read_step(
        SECRET, sign_step(SECRET, deployment=DEP, chat_id="chat1", step_id="petition"), deployment=DEP
    )
    assert anonymous is not None and anonymous.reader is None
    assert "https" not in token and "act.example" not in token  # no URL travels in a token


@pytest.mark.parametrize("n", range(0, 60, 7))
def test_any_changed_character_is_refused(n: int) -> None:
    token = sign_step(SECRET, deployment=DEP, chat_id="chat1", step_id="petition")
    n = n % len(token)
    changed = token[:n] + ("A" if token[n] != "A" else "B") + token[n + 1 :]
    assert read_step(SECRET, changed, deployment=DEP) is None


def test_other_secrets_deployments_and_purposes_are_refused() -> None:
    token = sign_step(SECRET, deployment=DEP, chat_id="chat1", step_id="petition")
    assert read_step(b"t" * 32, token, deployment=DEP) is None
    assert read_step(SECRET, token, deployment="prod:muster.test") is None
    control = sign_control(SECRET, deployment=DEP, action="close", chat_id="chat1", actor="o-1", expires_at=2**40)
    assert read_step(SECRET, control, deployment=DEP) is None
    assert read_control(SECRET, token, deployment=DEP, now=0) is None
    mute = sign_token(SECRET, chat_id="chat1", participant_key="s-7", purpose="mute", expires_at=2**40)
    assert read_step(SECRET, mute, deployment=DEP) is None
    assert verify_token(SECRET, token, now=0, purpose="mute") is None
    for junk in ("", ".", "x" * 500, "é.é", "a.b.c"):
        assert read_step(SECRET, junk, deployment=DEP) is None


def test_fields_that_could_forge_a_payload_are_refused_when_signing() -> None:
    with pytest.raises(ValueError):
        sign_step(SECRET, deployment=DEP, chat_id="chat1|x", step_id="petition")
    with pytest.raises(ValueError):
        sign_step(SECRET, deployment=DEP, chat_id="chat1", step_id="")
