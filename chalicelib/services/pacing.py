"""Pace SES sends to the account's send rate, across every delivery Lambda (R12).

SES allows ``MaxSendRate`` messages per second for the whole account; past it,
sends are throttled. Concurrent delivery invocations share one budget: each
second has a counter item (``LIM#ses#<epoch second>``) and an invocation takes a
few tokens at a time with one conditional ``ADD``. When the second's budget is
spent, the invocation waits for the next second instead of discovering the
limit through throttling errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import UpdateError

from chalicelib.models import Counter


class SendPacer:
    def __init__(
        self,
        rate: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.rate = max(1, int(rate))
        # A quarter of a second's budget per claim: few writes, little waste.
        self.chunk = max(1, self.rate // 4)
        self._tokens = 0
        self._second = -1
        self._lock = threading.Lock()
        self._sleep = sleep
        self._now = now
        self.claims = 0  # DynamoDB writes made (benchmarks read it)

    def acquire(self, deadline: float | None = None) -> bool:
        """Take one send token, waiting for the next second if the budget is
        spent; False if ``deadline`` (epoch seconds) would pass first."""
        with self._lock:
            while True:
                now = self._now()
                second = int(now)
                if second != self._second:
                    self._second, self._tokens = second, 0
                if self._tokens > 0:
                    self._tokens -= 1
                    return True
                got = self._claim(second)
                if got:
                    self._tokens = got - 1
                    return True
                wait = second + 1 - now
                if deadline is not None and now + wait >= deadline:
                    return False
                self._sleep(wait)

    def _claim(self, second: int) -> int:
        """Take up to ``chunk`` tokens of ``second``'s budget; how many we got."""
        for want in dict.fromkeys((self.chunk, 1)):
            counter = Counter(f"LIM#ses#{second}", "RATE")
            self.claims += 1
            try:
                counter.update(
                    actions=[
                        Counter.hits.add(want),
                        Counter.expires.set(datetime.fromtimestamp(second, UTC) + timedelta(minutes=5)),
                    ],
                    condition=Counter.hits.does_not_exist() | (Counter.hits <= self.rate - want),
                )
                return want
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
        return 0
