"""The one clock every service reads.

In AWS it is the system clock. The local twin can move it forward
(``MUSTER_CLOCK_FILE`` holds an offset in seconds) so a shift 48 hours away can be
opened without waiting.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta


def offset_seconds() -> float:
    path = os.environ.get("MUSTER_CLOCK_FILE")
    if not path:
        return 0.0
    try:
        with open(path, encoding="ascii") as fh:
            return float(fh.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_seconds())


def lambda_deadline(context: object, margin_seconds: float) -> float | None:
    """When to stop starting new work, in wall-clock epoch seconds (not the movable
    clock above): what Lambda says is left of the invocation, less ``margin_seconds``
    (or a quarter of what is left, for short timeouts). None outside Lambda."""
    import time

    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    seconds = float(remaining()) / 1000
    return time.time() + seconds - min(margin_seconds, seconds / 4)
