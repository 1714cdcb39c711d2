"""The fault matrix's machinery: inject a fault, settle the world, judge R8/R9,
and keep `docs/fault-matrix.md` equal to what the run observed.

Every row of ``tests/integration/test_fault_matrix.py`` ends with :func:`judge`,
which reads the final state through public records (what SES sent, the Delivery
and MessageLog items, the queues) and returns the row's observed outcome as text.
That text, not a hand-written one, goes into the table.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.integration.world import World, _forget_services

DOC = Path(__file__).resolve().parents[2] / "docs" / "fault-matrix.md"
WRITE_ENV = "MUSTER_WRITE_FAULT_MATRIX"
BEGIN, END = "<!-- fault-matrix:begin -->", "<!-- fault-matrix:end -->"
HEADER = "| # | fault | injected at | how | then | observed outcome |\n|---|---|---|---|---|---|"


@dataclass(frozen=True)
class Row:
    id: str
    fault: str
    at: str
    how: str  # "error" (botocore ClientError), "Killed" (BaseException), "threads"
    then: str

    def line(self, outcome: str) -> str:
        cells = [self.id, self.fault, self.at, self.how, self.then, outcome]
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


@dataclass
class Matrix:
    rows: dict[str, Row]
    observed: dict[str, str] = field(default_factory=dict)

    def record(self, row_id: str, outcome: str) -> None:
        """Record a row's outcome and check it against the committed table (so a
        partial run, e.g. one row or one xdist worker's share, still checks drift)."""
        self.observed[row_id] = outcome
        if os.environ.get(WRITE_ENV):
            return
        line = self.rows[row_id].line(outcome)
        committed = committed_lines()
        assert committed.get(row_id) == line, (
            f"docs/fault-matrix.md is stale for row {row_id}; regenerate with "
            f"{WRITE_ENV}=1 .venv/bin/python -m pytest -q tests/integration/test_fault_matrix.py\n"
            f"  committed: {committed.get(row_id)}\n  observed:  {line}"
        )

    def table(self) -> str:
        lines = [HEADER] + [row.line(self.observed[row.id]) for row in self.rows.values()]
        return "\n".join(lines)

    def complete(self) -> bool:
        return set(self.observed) == set(self.rows)


def committed_text() -> str:
    return DOC.read_text(encoding="utf-8") if DOC.exists() else ""


def committed_lines() -> dict[str, str]:
    text = committed_text()
    inside = text.partition(BEGIN)[2].partition(END)[0]
    out: dict[str, str] = {}
    for line in inside.splitlines():
        m = re.match(r"\| ([A-Z]\d+) \|", line)
        if m:
            out[m.group(1)] = line
    return out


def with_table(text: str, table: str) -> str:
    """``text`` (the committed document) with the generated table in its slot."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


# -- injecting faults ------------------------------------------------------------


class Killed(BaseException):
    """The process dies here: nothing after this point runs. A BaseException, so
    no ``except Exception`` in the code under test can catch it; the caller then
    drops every in-process cache (:func:`restart`), as a new container would."""


def restart(world: World) -> None:
    """After a Killed: stop the injections and start from a cold container (the
    cached services, the rendered-copy cache); everything a retry reads is in AWS."""
    from chalicelib.services import copies

    world.unpatch()
    _forget_services()
    copies.rendered.cache_clear()


def client_error(code: str, message: str = "", operation: str = "Op", **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code}, **extra}, operation)


def aws_fault(
    world: World,
    operation: str,
    error: ClientError | BaseException,
    *,
    when: Callable[[dict[str, Any]], bool] = lambda params: True,
    times: int = 1,
    after: bool = False,
) -> list[dict[str, Any]]:
    """Fail the first ``times`` calls of ``operation`` (any client, PynamoDB's too)
    whose parameters match ``when``: before the call reaches AWS, or, with
    ``after``, once AWS has done it (a response lost on the way back). Returns
    the parameters of the calls that failed."""
    real = BaseClient._make_api_call
    hits: list[dict[str, Any]] = []

    def call(self: BaseClient, operation_name: str, params: dict[str, Any]) -> Any:
        if operation_name == operation and len(hits) < times and when(params):
            hits.append(params)
            if after:
                real(self, operation_name, params)
            raise error
        return real(self, operation_name, params)

    world.patch("botocore.client.BaseClient._make_api_call", call)
    return hits


def lapse_in_progress(world: World) -> None:
    """A killed inbound invocation's Powertools in-progress record lapses at its
    Lambda timeout (real time, not Muster's clock): expire it, as time would."""
    ddb = boto3.client("dynamodb")
    table = world.settings.idempotency_table_name
    for item in ddb.scan(TableName=table)["Items"]:
        if item.get("status", {}).get("S") == "INPROGRESS":
            ddb.update_item(
                TableName=table,
                Key={"id": item["id"]},
                UpdateExpression="SET in_progress_expiration = :past",
                ExpressionAttributeValues={":past": {"N": "1"}},
            )


def expire_leases(world: World) -> None:
    """A killed delivery's batch lease lapses after its Lambda timeout."""
    world.advance(0.1)


# -- judging the final state -------------------------------------------------------


@dataclass
class Final:
    copies: Counter[str]  # address -> copies of the message SES sent
    failed: dict[str, str]  # address -> recorded permanent failure reason
    active: list[str]
    logs: list[tuple[str, str]]  # (outcome, state) of the message's log entries
    queued: int  # batches of the message still in the delivery queue
    parked: int  # ... in the DLQ

    def relayed_text(self) -> str:
        once = sum(1 for a in self.active if self.copies[a] == 1)
        failed = sorted(self.failed.values())
        repeated = sum(1 for a in self.active if self.copies[a] > 1)
        parts = [f"{once}/{len(self.active)} one copy"]
        if failed:
            parts.append(f"{len(failed)} recorded failure ({', '.join(failed)})")
        if repeated:
            parts.append(f"{repeated} copy repeated (the one in flight)")
        return ", ".join(parts)


def final_state(world: World, chat_id: str, subject: str, active: list[str]) -> Final:
    from chalicelib.models import Delivery, MessageLog, Participant

    copies = Counter(s.to for s in world.sent() if subject in str(s.message["Subject"]))
    logs = [m for m in MessageLog.query(f"CH#{chat_id}", MessageLog.sk.startswith("M#"))]
    by_key = {p.participant_key: p.email for p in Participant.query(f"CH#{chat_id}", Participant.sk.startswith("P#"))}
    failed: dict[str, str] = {}
    for log in logs:
        for d in Delivery.query(f"MSG#{log.message_id}", Delivery.sk.startswith("TO#")):
            if d.status == "failed":
                failed[by_key[d.participant_key]] = str(d.reason)
    sqs = boto3.client("sqs")

    def held(name: str) -> int:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return sum(1 for m in got if any(log.message_id in m["Body"] for log in logs))

    return Final(
        copies=copies,
        failed=failed,
        active=active,
        logs=[(m.outcome, m.state) for m in logs],
        queued=held(world.settings.delivery_queue),
        parked=held(world.settings.delivery_queue + "-dlq"),
    )


def judge(final: Final, *, repeats: int = 0) -> str:
    """Assert R8 and R9 on the final state; return the observed outcome.

    Every active recipient ends with exactly one copy or a recorded permanent
    failure (``repeats`` recipients may hold one extra copy: the copies in flight
    when a process died between a send and its record); nobody else got one; the
    inbound message is in exactly one R9 state."""
    assert len(final.logs) == 1, f"the message has {len(final.logs)} log entries: {final.logs}"
    (outcome, state) = final.logs[0]
    extra = set(final.copies) - set(final.active)
    assert not extra, f"copies to people who are not active recipients: {extra}"
    if outcome != "relayed":
        assert state == "done" and not final.copies, (outcome, state, final.copies)
        return f"rejected: `{outcome}` (recorded); no copy sent"
    if state == "relaying" or final.queued or final.parked:
        # Parked for retry: the batches wait in SQS or the DLQ; nothing is lost,
        # nothing was recorded as failed for a fault that was not the recipient's.
        assert final.queued or final.parked, "relaying but no batch is queued: lost"
        where = "DLQ" if final.parked else "SQS"
        return f"parked in {where} ({final.parked or final.queued} batch); {sum(final.copies.values())} copies so far"
    for a in final.active:
        n = final.copies[a]
        assert n == 1 or (n == 0 and a in final.failed) or (n == 2 and repeats), (a, n, final.failed)
    assert not any(a in final.failed for a in final.active if final.copies[a]), "a sent copy is recorded as failed"
    repeated = sum(1 for a in final.active if final.copies[a] > 1)
    assert repeated <= repeats, f"{repeated} copies repeated, bound {repeats}"
    return f"relayed (`done`): {final.relayed_text()}"
