"""R8 with tracing on, as in AWS: the inbound and delivery handlers run with
Powertools Tracer enabled under a Lambda X-Ray context (a facade segment the
SDK refuses to annotate) and a sampled trace header; the segments go to a local
UDP "daemon". Every other test disables tracing, so only this one can see a
tracing call that fails after the fan-out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from collections import Counter
    from tests.offline import use_offline_aws
    use_offline_aws(POWERTOOLS_TRACE_DISABLED="false")
    from moto import mock_aws
    from tests.integration.world import World, event_body, signup_body
    from tests.integration.test_relay import mail

    with mock_aws():
        world = World.create()
        world.put_event("e1", event_body(start_in_hours=10))
        for n in range(3):
            world.put_signup("e1", f"s{n}", signup_body(n))
        world.drain()
        chat = world.chat("e1", "t1")
        sender = "ann0@people.example"
        errors = []
        try:
            outcome = world.receive(mail(sender, chat["address"], subject="Traced"), sender=sender, to=[chat["address"]])
        except Exception as exc:  # the first attempt failed: Lambda retries the same event
            errors.append(type(exc).__name__)
            outcome = world.retry()
        world.drain()
        copies = Counter(s.to for s in world.sent() if "Traced" in str(s.message["Subject"]))
        print(json.dumps({"outcome": outcome, "copies": copies, "errors": errors}))
        world.close()
    """
)


def test_relay_and_delivery_with_tracing_enabled_send_each_copy_once() -> None:
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(5)
    port = daemon.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LAMBDA_TASK_ROOT": str(ROOT),
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
        "AWS_XRAY_CONTEXT_MISSING": "RUNTIME_ERROR",
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    assert result["errors"] == []
    assert result["outcome"] == {"outcomes": ["relayed"]}
    assert result["copies"] == {"olive0@org.example": 1, "ann1@people.example": 1, "ann2@people.example": 1}

    # The subsegments (with their annotations) really reached the daemon.
    segments = []
    try:
        while True:
            segments.append(daemon.recv(65536).decode().split("\n", 1)[1])
    except TimeoutError:
        pass
    finally:
        daemon.close()
    documents = [json.loads(s) for s in segments]
    annotated = {(d.get("name"), k) for d in documents for k in (d.get("annotations") or {})}
    assert ("relay", "outcome") in annotated
    assert ("deliver", "copies_sent") in annotated
