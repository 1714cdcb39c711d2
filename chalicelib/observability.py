"""Powertools Logger, Metrics and Tracer shared by every entry point (R14).

The service name deliberately differs from the Chalice app name: a Logger named
like the app would print every line twice. Log only hashed addresses.

The Tracer is built on first use: importing the X-Ray SDK costs ~150 ms, which
every API cold start would otherwise pay (see docs/performance.md). The relay
paths that trace call :func:`get_tracer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def traced(name: str) -> Iterator[Callable[[str, str], None]]:
    """A Tracer subsegment around a unit of work; yields ``annotate(key, value)``.

    Lambda's own segment is a facade that the X-Ray SDK refuses to change
    (``FacadeSegmentMutationException``), so annotations go on a subsegment of
    ours. Tracing must never fail the work it observes: annotation errors are
    swallowed.
    """
    tracer = get_tracer()
    if tracer.disabled:
        yield lambda key, value: None
        return
    with tracer.provider.in_subsegment(name) as subsegment:

        def annotate(key: str, value: str) -> None:
            try:
                if subsegment is not None:
                    subsegment.put_annotation(key, value)
            except Exception:  # noqa: S110  (tracing never breaks a relay)
                pass

        yield annotate
