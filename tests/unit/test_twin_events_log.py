"""The twin's CRM log (``events.jsonl``) keeps up with a busy bus.

Under load the twin puts more than ten integration events a second on the bus; the
log used to take one receive (ten messages) a tick, so the CRM rule's queue grew
without end (965 behind after ten minutes of the soak) and moto's SQS, which walks
its whole queue on each receive, slowed every call of the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.settings import get_settings
from infra.twin.dispatcher import Dispatcher
from infra.twin.resources import Topology


def _queue_of_events(tmp_path: Path, count: int, **attributes: str) -> tuple[Any, str, Dispatcher, Path]:
    """The CRM rule's queue holding ``count`` events, and a dispatcher logging it (inside mock_aws)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="events-out", Attributes=attributes)["QueueUrl"]
    for n in range(count):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"detail-type": "MessageRelayed", "n": n}))
    topology: Any = Topology()
    topology.events_out_url = url
    log = tmp_path / "events.jsonl"
    return sqs, url, Dispatcher(lambdas=None, topology=topology, settings=get_settings(), events_log=log), log


def test_one_tick_logs_everything_the_queue_holds_each_once(tmp_path: Path) -> None:
    with mock_aws():
        sqs, url, dispatcher, log = _queue_of_events(tmp_path, 137)

        assert dispatcher.log_events(sqs) == 137
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert sorted(e["n"] for e in lines) == list(range(137))  # each once
        left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert left["Attributes"]["ApproximateNumberOfMessages"] == "0"
        assert dispatcher.log_events(sqs) == 0


def test_a_failed_delete_logs_those_events_again_and_loses_none(tmp_path: Path) -> None:
    """At least once, as a CRM's consumer is: a crash between the append and the
    delete leaves the events on the queue, and the next tick logs them again."""
    with mock_aws():
        sqs, _, dispatcher, log = _queue_of_events(tmp_path, 25, VisibilityTimeout="0")

        class Crash(Exception):
            pass

        real = sqs.delete_message_batch
        calls = [0]

        def delete_once_failing(**kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 1:
                raise Crash
            return real(**kwargs)

        sqs.delete_message_batch = delete_once_failing  # type: ignore[method-assign]
        with pytest.raises(Crash):
            dispatcher.log_events(sqs)
        assert dispatcher.log_events(sqs) == 25
        seen = [json.loads(line)["n"] for line in log.read_text().splitlines()]
        assert sorted(set(seen)) == list(range(25))  # none lost
        assert len(seen) == 25 + 10  # the ten whose delete failed, logged twice
        assert dispatcher.log_events(sqs) == 0
