"""Powertools Logger, Metrics and Tracer shared by every entry point (R14).

The service name deliberately differs from the Chalice app name: a Logger named
like the app would print every line twice. Log only hashed addresses.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "muster-core"
NAMESPACE = "Muster"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)
