"""Handlers run in a pool of worker processes, each one a warm Lambda "container".

A worker imports ``app`` once (its initializer), keeps its own Powertools logger
and metrics, its own boto3 clients and PynamoDB connections, its own caches
(``@cache``'d services, the pacer, rendered messages), and runs one invocation
at a time, as a Lambda container does. The pool uses the ``forkserver`` start
method: the fork server is a fresh interpreter (it never inherits the twin's
threads) that preloads ``app``, and each worker is forked from it, so a worker
starts warm in a few milliseconds.

``WorkerPool`` is what triggers call (the dispatcher's pollers and schedules,
the SMTP listener); ``invoke`` blocks the calling thread until a worker returned,
so several pollers give several handlers running at once. ``invoke_twice`` gives
the same event to two workers at the same time (the duplicate switch).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

log = logging.getLogger("twin")

# Set in each worker process by _init.
_LAMBDAS: Any = None


class HandlerFailed(Exception):
    """The handler raised in its worker (the worker logged the traceback)."""


class FunctionNotFound(LookupError):
    pass


def _init(environment: dict[str, str], root: str, outbox: tuple[str, str, str], feedback_topic: str | None) -> None:
    """Run once per worker: the container's cold start."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the twin stops us
    os.environ.update(environment)
    if root not in sys.path:
        sys.path.insert(0, root)
    level = os.environ.get("MUSTER_TWIN_LOG", "INFO").upper()
    logging.basicConfig(level=level, format="twin %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from pathlib import Path

    from infra.twin.outbox import Outbox, capture

    publish = None
    if feedback_topic:

        def publish(notification: dict[str, Any]) -> None:
            import json

            from chalicelib.adapters import aws

            aws.client("sns").publish(TopicArn=feedback_topic, Message=json.dumps(notification))

    directory, log_path, relay_domain = outbox
    capture(Outbox(Path(directory), Path(log_path), relay_domain, publish))

    from chalicelib import models
    from chalicelib.adapters import aws
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    aws.reset()
    models.bind()

    from app import app
    from infra.twin.lambdas import Lambdas

    global _LAMBDAS
    _LAMBDAS = Lambdas(app)
    # A warm container has loaded what its first invocation loads lazily (the
    # batch utilities, the Tracer); a cold start is bench/cold_start.py's business.
    import aws_lambda_powertools.utilities.batch  # noqa: F401

    from chalicelib.observability import get_tracer

    get_tracer()


def _run(name: str, event: Any) -> tuple[str, Any]:
    """One invocation, in a worker: ``("ok", result)``, ``("missing", None)``
    or ``("error", traceback)``."""
    from infra.twin.lambdas import FunctionNotFound as Missing

    try:
        return "ok", _LAMBDAS.invoke(name, event)
    except Missing:
        return "missing", None
    except Exception:
        text = traceback.format_exc()
        logging.getLogger("twin").error("handler %r crashed in worker %d:\n%s", name, os.getpid(), text)
        return "error", text.strip().rsplit("\n", 1)[-1]


def _ping(hold: float) -> int:
    import time

    time.sleep(hold)  # busy long enough that the pool hands the next ping to another process
    return os.getpid()


class WorkerPool:
    def __init__(
        self,
        workers: int,
        environment: dict[str, str],
        root: str,
        outbox: tuple[str, str, str],
        handlers: set[str],
    ) -> None:
        self.size = workers
        self.handlers = handlers
        self.environment = environment
        self.root = root
        self.outbox = outbox
        self.invocations: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def start(self, feedback_topic: str | None = None) -> list[int]:
        """Start the fork server and every worker; their pids."""
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["app", "aws_lambda_powertools.utilities.batch"])
        self._pool = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=context,
            initializer=_init,
            initargs=(self.environment, self.root, self.outbox, feedback_topic),
        )
        # The pool forks a process per submit while none is idle; each ping holds its
        # process, so every worker starts and runs its initializer (warm) before the
        # twin is ready. On a loaded machine a fork can take longer than a ping: hold
        # longer and ping again until each process has answered.
        seen: set[int] = set()
        hold = 0.2
        for _ in range(6):
            pings = [self._pool.submit(_ping, hold) for _ in range(self.size)]
            seen |= {f.result(timeout=120) for f in pings}
            if len(seen) >= self.size:
                break
            hold *= 2
        return self.pids()

    def pids(self) -> list[int]:
        pool = self._pool
        return sorted(getattr(pool, "_processes", {}) or {}) if pool else []

    def has(self, name: str) -> bool:
        return name in self.handlers

    def stop(self, timeout: float = 5.0) -> None:
        """Let running invocations finish for up to ``timeout`` seconds, then
        stop the workers (a container killed mid-invocation, as Lambda may)."""
        pool = self._pool
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                log.warning("worker %s still busy after %.0f s: stopped", process.pid, timeout)
                process.terminate()
        for process in processes:
            process.join(2.0)

    def submit(self, name: str, event: Any) -> Future[tuple[str, Any]]:
        if self._pool is None:
            raise RuntimeError("the worker pool is not started")
        with self._lock:
            self.invocations[name] = self.invocations.get(name, 0) + 1
        return self._pool.submit(_run, name, event)

    def _result(self, name: str, future: Future[tuple[str, Any]]) -> Any:
        status, value = future.result()
        if status == "missing":
            raise FunctionNotFound(name)
        if status == "error":
            with self._lock:
                self.errors[name] = self.errors.get(name, 0) + 1
            raise HandlerFailed(value)
        return value

    def invoke(self, name: str, event: Any) -> Any:
        """Run handler ``name`` in a worker; ``HandlerFailed`` if it raised."""
        if name not in self.handlers:
            raise FunctionNotFound(name)
        return self._result(name, self.submit(name, event))

    def invoke_logged(self, name: str, event: Any) -> tuple[bool, Any]:
        """Invoke, and log (never raise) a crash: the twin stays up."""
        try:
            return True, self.invoke(name, event)
        except FunctionNotFound:
            log.error("no handler named %r in app.py: event dropped", name)
            return False, None
        except HandlerFailed as exc:
            log.warning("handler %r failed: %s", name, exc)
            return False, None
        except Exception:
            log.exception("invoking %r failed (the twin keeps running)", name)
            return False, None

    def invoke_twice(self, name: str, event: Any) -> list[tuple[bool, Any]]:
        """The same event to two workers at the same time (at-least-once delivery
        at its worst); each outcome as ``invoke_logged`` reports it."""
        if name not in self.handlers:
            log.error("no handler named %r in app.py: event dropped", name)
            return [(False, None), (False, None)]
        futures = [self.submit(name, event) for _ in range(2)]
        outcomes: list[tuple[bool, Any]] = []
        for future in futures:
            try:
                outcomes.append((True, self._result(name, future)))
            except HandlerFailed as exc:
                log.warning("handler %r failed (one of two deliveries): %s", name, exc)
                outcomes.append((False, None))
            except Exception:
                log.exception("invoking %r failed (the twin keeps running)", name)
                outcomes.append((False, None))
        return outcomes
