"""Cold start: what `import app` (every Lambda function's first line) must not load.

The relay core, the services behind the inbound, delivery, scheduling, feedback and
settings-page handlers, pydantic, the X-Ray SDK and email.policy's header registry are
imported on first use by the handlers that need them (docs/performance.md, cold start).
The time itself is measured by bench/cold_start.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DEFERRED = [
    "chalicelib.services.fanout",
    "chalicelib.services.relay",
    "chalicelib.services.chats",
    "chalicelib.services.people",
    "chalicelib.services.digest",
    "chalicelib.services.stewardship",
    "chalicelib.services.moderation",
    "chalicelib.services.private",
    "chalicelib.services.suppressions",
    "chalicelib.services.bounces",
    "chalicelib.relay.stewardmail",
    "chalicelib.relay.anonymize",
    "chalicelib.relay.parse",
    "pydantic",
    "aws_xray_sdk",
    "email.policy",
    "aws_lambda_powertools.utilities.batch",
    "chalicelib.services.keys",
    "chalicelib.services.files",
    "chalicelib.models",
    "pynamodb",
    "botocore.session",
    "boto3",
]


def test_import_app_loads_none_of_the_deferred_modules() -> None:
    code = "import json, sys, app; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "app" in loaded and "chalicelib.blueprints.inbound" in loaded
    assert sorted(m for m in DEFERRED if m in loaded) == []


def test_each_deferred_handler_still_finds_its_service() -> None:
    """The first call of each lazy accessor imports and builds the real service."""
    code = (
        "import app\n"
        "from chalicelib.blueprints import delivery, inbound, scheduling\n"
        "print(type(delivery.fanout()).__name__, type(inbound.relay()).__name__, type(scheduling.chats()).__name__)"
    )
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["FanOut", "RelayService", "ChatService"]
