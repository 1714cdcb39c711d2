"""Issue 11's pure parts: referral codes, the friend line in the digest, the KPI
statistics and date ranges, and the relay's MessageRelayed (built without pydantic)
against its model and published schema."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from jsonschema import Draft202012Validator

from chalicelib.relay.digest import DigestMessage
from chalicelib.relay.reftokens import read_ref, sign_ref
from chalicelib.schemas_insight import MessageRelayed
from chalicelib.services import kpis, signals
from tests.unit.test_digest import _digest, _parse, _stored

SECRET = b"0123456789abcdef0123456789abcdef"
SCOPE = {"deployment": "prod:chat.example.org", "event": "acme/e1"}


def test_a_code_names_its_signup_and_nothing_else_reads_it() -> None:
    ref = sign_ref(SECRET, signup_id="s-42", **SCOPE)
    assert read_ref(SECRET, ref, **SCOPE) == "s-42"
    assert sign_ref(SECRET, signup_id="s-42", **SCOPE) == ref  # the kickoff and every digest carry one link
    assert "s-42" not in ref and ref.replace("-", "").replace("_", "").isalnum()
    assert read_ref(SECRET, ref, deployment="prod:chat.example.org", event="acme/e2") is None  # another event
    assert read_ref(SECRET, ref, deployment="dev:chat.example.org", event="acme/e1") is None  # another deployment
    assert read_ref(SECRET, ref, deployment="prod:chat.example.org", event="other/e1") is None  # another integration
    assert read_ref(b"another-secret-of-32-bytes-xxxxx", ref, **SCOPE) is None
    for i in range(len(ref)):
        tampered = ref[:i] + ("A" if ref[i] != "A" else "B") + ref[i + 1 :]
        assert read_ref(SECRET, tampered, **SCOPE) in (None, "s-42") and read_ref(SECRET, tampered, **SCOPE) != "s-43"
    flipped = [ref[:i] + ("A" if ref[i] != "A" else "B") + ref[i + 1 :] for i in range(len(ref) - 1)]
    assert all(read_ref(SECRET, f, **SCOPE) is None for f in flipped)
    for junk in ("", "x", "!!!!", "é" * 10, "A" * 400):
        assert read_ref(SECRET, junk, **SCOPE) is None


def test_codes_are_short_enough_for_a_url() -> None:
    longest = sign_ref(SECRET, signup_id="a" * 100, **SCOPE)
    assert len(longest) <= 147
    with pytest.raises(ValueError):
        sign_ref(SECRET, signup_id="a" * 101, **SCOPE)


def test_the_digest_carries_the_readers_friend_link() -> None:
    link = "https://signup.example/e?ref=abc"
    text = _parse(_digest([DigestMessage(_stored(0))], invite_url=link)).get_body(("plain",)).get_content()
    assert f"Bring a friend: {link}" in text
    plain = _parse(_digest([DigestMessage(_stored(0))])).get_body(("plain",)).get_content()
    assert "Bring a friend" not in plain


def test_median_and_nearest_rank_p90() -> None:
    assert kpis.median([]) is None and kpis.p90([]) is None
    assert kpis.median([1, 3, 2, 10]) == 2.5 and kpis.p90([1, 3, 2, 10]) == 10.0
    values = [float(n) for n in range(1, 21)]  # rank ceil(18) = 18
    assert kpis.p90(values) == 18.0 and kpis.median(values) == 10.5
    assert kpis.p90([7.0]) == 7.0


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-12-02", "2026-12-01", "from"),
        ("2026-1-01", None, "from"),
        (None, "tomorrow", "to"),
        ("2025-01-01", "2026-01-02", "from"),
        ("2026-02-29", None, "from"),
    ],
)
def test_bad_ranges(start: str | None, end: str | None, field: str) -> None:
    with pytest.raises(kpis.RangeError) as err:
        kpis.parse_range(start, end, date(2026, 12, 2))
    assert err.value.field == field


def test_default_range_is_the_30_days_up_to_today() -> None:
    assert kpis.parse_range(None, None, date(2026, 12, 2)) == (date(2026, 11, 3), date(2026, 12, 2))
    assert kpis.parse_range("2024-01-01", "2024-12-31", date(2026, 12, 2)) == (date(2024, 1, 1), date(2024, 12, 31))


def test_message_relayed_is_built_without_pydantic_yet_matches_model_and_schema() -> None:
    opened = datetime(2026, 12, 10, 9, tzinfo=UTC)
    chat = SimpleNamespace(integration="acme", chat_id="c1", event_id="e1", timeslot_id="t1", ends_at=opened)
    log = SimpleNamespace(message_id="m1", author_key="o-org1", size=10, rendered_size=20, recipients=3)
    raw = signals.relayed(log, chat, opened + timedelta(minutes=1), private=True)
    model = MessageRelayed.model_validate_json(json.dumps(raw.body))
    assert (model.author_kind, model.author_id, model.after_event, model.private) == ("organizer", "org1", True, True)
    schema = json.loads((Path(__file__).resolve().parents[2] / "events_schema/out/MessageRelayed.json").read_text())
    Draft202012Validator(schema).validate(raw.body)
    assert raw.idempotency == signals.relayed(log, chat, opened, private=True).idempotency  # retried: same key
