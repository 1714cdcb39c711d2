"""EventBridge: integration events out (PutEvents, at most 10 entries a call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.adapters import aws

MAX_ENTRIES = 10  # PutEvents takes at most 10 entries per call
MAX_ENTRY_BYTES = 256 * 1024


@dataclass(frozen=True)
class Entry:
    detail_type: str
    detail: str  # JSON
    ref: str  # the caller's handle for this entry (the outbox key)


class EventBus:
    def __init__(self, *, name: str = "default", source: str = "muster", client: Any = None) -> None:
        self.name = name
        self.source = source
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("events")

    def put(self, entries: list[Entry]) -> list[str]:
        """Put every entry, ten per call. Returns the refs of the entries that
        EventBridge refused (``FailedEntryCount``: their ``ErrorCode``); raises
        only when a whole call fails (throttling, permissions: nothing was put)."""
        failed: list[str] = []
        for start in range(0, len(entries), MAX_ENTRIES):
            chunk = entries[start : start + MAX_ENTRIES]
            result = self.client.put_events(
                Entries=[
                    {"Source": self.source, "DetailType": e.detail_type, "Detail": e.detail, "EventBusName": self.name}
                    for e in chunk
                ]
            )
            if result.get("FailedEntryCount"):
                # The response's entries are in request order; a failed one has an ErrorCode.
                failed += [
                    e.ref for e, r in zip(chunk, result.get("Entries") or [], strict=False) if r.get("ErrorCode")
                ]
        return failed
