"""The environment every offline run uses (tests, benchmarks): dummy credentials,
a fixed region, no endpoint or profile that could reach real AWS. Apply it before
anything imports boto3 or chalicelib."""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "MUSTER_STAGE": "test",
    "MUSTER_RELAY_DOMAIN": "muster.test",
    "MUSTER_SECRET": "test-secret-0123456789abcdef",
    "MUSTER_PUBLIC_URL": "https://api.muster.test",
    "MUSTER_MAX_SEND_RATE": "1000",  # moto has no SES v2 GetAccount
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "MusterTest",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def use_offline_aws(**overrides: str) -> None:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(key, None)
    os.environ.update({**OFFLINE_ENV, **overrides})
