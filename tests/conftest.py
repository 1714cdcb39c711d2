"""Shared test setup: safe AWS credentials before anything imports boto3."""

from __future__ import annotations

import os

# Never let a test reach real AWS: dummy credentials, a fixed region, moto only.
for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(key, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    MUSTER_STAGE="test",
    MUSTER_RELAY_DOMAIN="muster.test",
    MUSTER_SECRET="test-secret-0123456789abcdef",
    MUSTER_PUBLIC_URL="https://api.muster.test",
    POWERTOOLS_TRACE_DISABLED="1",
    POWERTOOLS_METRICS_NAMESPACE="MusterTest",
    POWERTOOLS_LOG_LEVEL="WARNING",
)
