"""The triggers AWS would fire, as loops:

- EventBridge Scheduler: every half second, fire the one-time ``at()`` schedules
  that are due by the (movable) twin clock into their Lambda targets, deleting
  each (``ActionAfterCompletion=DELETE``);
- SQS event source mappings: several pollers per queue (``MUSTER_TWIN_POLLERS``)
  each receive a batch and hand it to a worker process, so batches are handled
  concurrently as Lambda scales an event source mapping out; ``batchItemFailures``
  stay for redelivery after the visibility timeout, then the DLQ. With the
  duplicate switch each batch goes to two workers at the same time; a record
  either of them handled is deleted (as the first consumer to finish would);
- EventBridge rules and SNS subscriptions: events land on twin-owned SQS queues
  and are handed to their handlers (async invocation: up to 3 attempts);
- scheduled rules (the sweeper): run every ``rate()`` of twin time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3

from chalicelib import clock
from chalicelib.settings import Settings
from infra.twin.lambdas import eventbridge_event, function_name_from_arn, scheduled_event, sns_event, sqs_event
from infra.twin.resources import Consumer, Periodic, Topology

log = logging.getLogger("twin.dispatch")
TICK = 0.5
IDLE_MIN, IDLE_MAX = 0.02, 0.5  # a poller's back-off on an empty queue (seconds)
ASYNC_ATTEMPTS = 3  # Lambda's async invocation: the first try and two retries


def schedule_time(schedule: dict[str, Any]) -> datetime | None:
    expr = str(schedule.get("ScheduleExpression", ""))
    if not (expr.startswith("at(") and expr.endswith(")")):
        return None
    tz = ZoneInfo(schedule.get("ScheduleExpressionTimezone") or "UTC")
    return datetime.fromisoformat(expr[3:-1]).replace(tzinfo=tz).astimezone(UTC)


class Dispatcher:
    def __init__(
        self,
        lambdas: Any,
        topology: Topology,
        settings: Settings,
        *,
        pollers: int = 1,
        duplicates: bool = False,
        events_log: Path | None = None,
    ) -> None:
        """``lambdas`` runs handlers (``infra.twin.workers.WorkerPool``); the
        integration events Muster puts on the bus are appended to ``events_log``."""
        self.events_log = events_log
        self.lambdas = lambdas
        self.pollers = max(1, pollers)
        self.duplicates = duplicates
        self.topology = topology
        self.settings = settings
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.fired: list[tuple[str, str]] = []
        started = clock.now()
        self._last_run: dict[str, datetime] = {p.handler: started for p in topology.periodic}

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._spawn("scheduler", self._schedule_loop)
        if self.topology.events_out_url:
            self._spawn("signals", self._signals_loop)
        for consumer in self.topology.consumers:
            for n in range(self.pollers if consumer.kind == "sqs" else 1):
                self._spawn(f"consume-{consumer.handler}-{n}", self._consume_loop, consumer)

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"twin-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- integration events out (issue 11) ----------------------------------------------

    def _signals_loop(self) -> None:
        """Put the outbox on the bus every second (the sweeper does it every 5 minutes in
        AWS), and append what the CRM rule's queue received to ``events.jsonl``."""
        from chalicelib.services import signals

        sqs = boto3.client("sqs")
        while not self.stopping.is_set():
            try:
                signals.drain()
                self.log_events(sqs)
            except Exception:
                log.exception("integration events tick failed (will retry)")
            self.stopping.wait(1.0)

    def log_events(self, sqs: Any, rounds: int = 100) -> int:
        """Everything the CRM rule's queue holds (up to ``rounds`` receives of 10), not
        one receive a tick: under load the twin puts more than 10 events a second on
        the bus, and an undrained queue makes every moto SQS call slower. At least
        once, as a CRM's consumer is: a crash between the append and the delete (or
        a refused delete) logs those events again, each with its idempotency key."""
        logged = 0
        for _ in range(rounds):
            got = sqs.receive_message(QueueUrl=self.topology.events_out_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                break
            if self.events_log is not None:
                with self.events_log.open("a", encoding="utf-8") as fh:
                    for m in got:
                        fh.write(json.dumps(json.loads(m["Body"]), sort_keys=True) + "\n")
            sqs.delete_message_batch(
                QueueUrl=self.topology.events_out_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)],
            )
            logged += len(got)
        return logged

    # -- Scheduler and scheduled rules -------------------------------------------------

    def _schedule_loop(self) -> None:
        client = boto3.client("scheduler")
        while not self.stopping.is_set():
            try:
                self.fire_due_schedules(client)
                self.run_periodic()
            except Exception:
                log.exception("scheduler tick failed (will retry)")
            self.stopping.wait(TICK)

    def fire_due_schedules(self, client: Any = None) -> int:
        client = client or boto3.client("scheduler")
        group = self.settings.schedule_group
        now = clock.now()
        fired = 0
        names: list[str] = []
        kwargs: dict[str, Any] = {"GroupName": group}
        while True:
            page = client.list_schedules(**kwargs)
            names += [item["Name"] for item in page.get("Schedules", []) if item.get("State", "ENABLED") == "ENABLED"]
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        for name in names:
            try:
                schedule = client.get_schedule(Name=name, GroupName=group)
            except Exception:
                log.debug("schedule %s vanished before we read it", name)
                continue
            when = schedule_time(schedule)
            if when is None or when > now:
                continue
            target = schedule["Target"]
            handler = function_name_from_arn(target["Arn"])
            payload = json.loads(target.get("Input") or "{}")
            if schedule.get("ActionAfterCompletion", "NONE") == "DELETE":
                try:
                    client.delete_schedule(Name=name, GroupName=group)
                except Exception:
                    log.warning("schedule %s vanished before firing", name)
                    continue
            log.info("schedule %s due at %s: invoking %s", name, when.isoformat(), handler)
            self.lambdas.invoke_logged(handler, payload)
            self.fired.append((name, handler))
            fired += 1
        return fired

    def run_periodic(self) -> None:
        now = clock.now()
        for job in self.topology.periodic:
            if now - self._last_run[job.handler] >= timedelta(seconds=job.seconds):
                self._last_run[job.handler] = now
                self.run_now(job, now)

    def run_now(self, job: Periodic, now: datetime | None = None) -> None:
        self.lambdas.invoke_logged(job.handler, scheduled_event(job.rule_name, now or clock.now()))

    # -- queues ------------------------------------------------------------------------

    def _consume_loop(self, consumer: Consumer) -> None:
        # Short polls with a local back-off: moto applies one request at a time
        # (infra.twin.motoserver), so a long poll would hold up every other call.
        sqs = boto3.client("sqs")
        idle = IDLE_MIN
        while not self.stopping.is_set():
            try:
                got = sqs.receive_message(
                    QueueUrl=consumer.queue_url,
                    MaxNumberOfMessages=consumer.batch_size,
                    WaitTimeSeconds=0,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                if self.stopping.is_set():
                    return
                log.exception("receiving from %s failed (will retry)", consumer.queue_name)
                self.stopping.wait(1.0)
                continue
            if not got:
                self.stopping.wait(idle)
                idle = min(IDLE_MAX, idle * 2)
                continue
            idle = IDLE_MIN
            try:
                self.handle(consumer, got, sqs)
            except Exception:
                log.exception("dispatching %s to %s failed", consumer.queue_name, consumer.handler)

    def handle(self, consumer: Consumer, messages: list[dict[str, Any]], sqs: Any) -> None:
        done: list[dict[str, Any]] = []
        if consumer.kind == "sqs":
            event = sqs_event(messages, consumer.queue_name)
            outcomes = (
                self.lambdas.invoke_twice(consumer.handler, event)
                if self.duplicates
                else [self.lambdas.invoke_logged(consumer.handler, event)]
            )
            # A record is done when any delivery of it handled it.
            failed = {m["MessageId"] for m in messages}
            for ok, result in outcomes:
                if ok:
                    failed &= (
                        {f.get("itemIdentifier") for f in result.get("batchItemFailures", [])}
                        if isinstance(result, dict)
                        else set()
                    )
            if failed:
                log.warning("%s: %d of %d records left for redelivery", consumer.handler, len(failed), len(messages))
            done = [m for m in messages if m["MessageId"] not in failed]
        else:
            for m in messages:
                try:
                    if consumer.kind == "eventbridge":
                        event = eventbridge_event(m["Body"])
                    else:
                        event = sns_event(json.loads(m["Body"]), consumer.subscription_arn)
                except ValueError:
                    log.error("%s: dropped a message that is not a %s event", consumer.queue_name, consumer.kind)
                    done.append(m)
                    continue
                ok, _ = self.lambdas.invoke_logged(consumer.handler, event)
                attempts = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                if ok or attempts >= ASYNC_ATTEMPTS:
                    if not ok:
                        log.error("%s: giving up on an event after %d attempts", consumer.handler, attempts)
                    done.append(m)
        for m in done:
            try:
                sqs.delete_message(QueueUrl=consumer.queue_url, ReceiptHandle=m["ReceiptHandle"])
            except Exception:
                log.exception("could not delete a handled message from %s", consumer.queue_name)
