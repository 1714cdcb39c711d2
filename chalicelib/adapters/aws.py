"""Lazy, cached boto3 clients. Nothing is created at import time, which keeps
cold starts short and lets moto patch botocore before the first client exists."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def s3_presigner(region: str) -> Any:
    """An S3 client for presigned URLs: SigV4 and the bucket's regional endpoint
    (the default global one answers buckets outside us-east-1 with a redirect
    that breaks the signature), unless an endpoint is configured (the twin's moto)."""
    import os

    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client(  # type: ignore[call-overload]
        "s3",
        region_name=region,
        endpoint_url=None if custom else f"https://s3.{region}.amazonaws.com",
        config=_CONFIG.merge(Config(signature_version="s3v4")),
    )


def reset() -> None:
    """Forget every client (tests and the local twin switch endpoints)."""
    client.cache_clear()
    s3_presigner.cache_clear()


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
