"""Powertools Logger, Metrics and Tracer shared by every entry point (R14).

The service name deliberately differs from the Chalice app name: a Logger named
like the app would print every line twice. Log only hashed addresses.

The Tracer is built on first use: importing the X-Ray SDK costs ~150 ms, which
every API cold start would otherwise pay (see docs/performance.md). The relay
paths that trace call :func:`get_tracer`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "muster-core"
NAMESPACE = "Muster"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


@cache
def get_tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)
