"""Signed mute tokens (R11)."""

from __future__ import annotations

import base64

import pytest

from chalicelib.relay.tokens import TokenClaims, sign_token, verify_token

KEY = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000


def _token(**overrides: object) -> str:
    kwargs: dict[str, object] = {
        "chat_id": "c_7f3k",
        "participant_key": "p_91xz",
        "expires_at": NOW + 3600,
    }
    kwargs.update(overrides)
    return sign_token(KEY, **kwargs)  # type: ignore[arg-type]


def test_given_a_fresh_token_when_verified_then_claims_come_back() -> None:
    assert verify_token(KEY, _token(), now=NOW) == TokenClaims("c_7f3k", "p_91xz", "mute", NOW + 3600)


def test_given_a_token_then_it_is_url_safe() -> None:
    token = _token()
    assert all(ch.isalnum() or ch in "-_." for ch in token)


def test_given_an_expired_token_then_rejected() -> None:
    assert verify_token(KEY, _token(expires_at=NOW), now=NOW) is None
    assert verify_token(KEY, _token(expires_at=NOW - 1), now=NOW) is None


def test_given_a_tampered_payload_for_another_chat_then_rejected() -> None:
    body, sig = _token().split(".")
    payload = base64.urlsafe_b64decode(body + "==").replace(b"c_7f3k", b"c_other")
    forged = base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + sig

    assert verify_token(KEY, forged, now=NOW) is None


def test_given_a_token_signed_for_another_chat_then_its_claims_name_that_chat() -> None:
    other = verify_token(KEY, _token(chat_id="c_other"), now=NOW)
    assert other is not None and other.chat_id == "c_other"


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.def", "a" * 500, "🙂.🙂"])
def test_given_garbage_then_rejected(token: str) -> None:
    assert verify_token(KEY, token, now=NOW) is None


def test_given_a_flipped_signature_then_rejected() -> None:
    token = _token()
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert verify_token(KEY, flipped, now=NOW) is None


def test_given_the_wrong_key_or_purpose_then_rejected() -> None:
    assert verify_token(b"another-key-of-32-bytes-xxxxxxxx", _token(), now=NOW) is None
    assert verify_token(KEY, _token(purpose="close"), now=NOW) is None
    assert verify_token(KEY, _token(purpose="close"), now=NOW, purpose="close") is not None


def test_given_a_short_key_or_separator_in_ids_then_signing_refuses() -> None:
    with pytest.raises(ValueError):
        sign_token(b"short", chat_id="c", participant_key="p", expires_at=NOW)
    with pytest.raises(ValueError):
        _token(chat_id="c|x")
