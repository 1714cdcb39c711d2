"""R12: SES sends are paced to the account's rate, shared by every delivery
invocation through one counter item per second (against moto's DynamoDB)."""

from __future__ import annotations

from collections import Counter

import pytest

from chalicelib.adapters.mail import Mailer, classify
from chalicelib.services.pacing import SendPacer
from tests.integration.world import World


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_800_000_000.25
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_two_invocations_share_the_accounts_rate(world: World) -> None:
    clock = FakeTime()
    pacers = [SendPacer(4, sleep=clock.sleep, now=lambda: clock.now) for _ in range(2)]
    sends: Counter[int] = Counter()
    for i in range(12):
        assert pacers[i % 2].acquire()
        sends[int(clock.now)] += 1

    assert sum(sends.values()) == 12
    assert max(sends.values()) <= 4  # never more than the account's rate in any second
    assert len(sends) >= 3 and clock.slept  # so they waited for the next seconds


def test_a_pacer_gives_up_rather_than_wait_past_its_deadline(world: World) -> None:
    clock = FakeTime()
    pacer = SendPacer(1, sleep=clock.sleep, now=lambda: clock.now)
    assert pacer.acquire(deadline=clock.now + 10)
    assert not pacer.acquire(deadline=clock.now + 0.1)  # the next token is in the next second
    assert clock.slept == []


def test_the_send_rate_comes_from_ses_or_the_fallback(world: World) -> None:
    class Account:
        def get_account(self) -> dict:
            return {"SendQuota": {"MaxSendRate": 14.0, "Max24HourSend": 50000.0}}

    assert Mailer(client=Account()).max_send_rate(fallback=1) == 14.0
    # moto has no SES v2 GetAccount (and a role may lack ses:GetAccount): the fallback.
    assert Mailer().max_send_rate(fallback=3) == 3


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        ("TooManyRequestsException", "Maximum sending rate exceeded.", "transient"),
        ("Throttling", "", "transient"),
        ("MessageRejected", "Address blacklisted.", "permanent"),
        ("BadRequestException", "Illegal address", "permanent"),
        ("MessageRejected", "Email address is not verified. The following identities failed the check", "deployment"),
        ("AccessDeniedException", "not authorized to perform ses:SendEmail", "deployment"),
        ("SendingPausedException", "Sending is paused for this account.", "deployment"),
        ("NotFoundException", "Configuration set muster-prod does not exist.", "deployment"),
        ("SomethingNewException", "", "deployment"),  # unknown: park, never drop
    ],
)
def test_ses_errors_are_sorted_into_retry_record_or_park(code: str, message: str, kind: str) -> None:
    assert classify(code, message) == kind
