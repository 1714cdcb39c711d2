"""The in-process client the integration tests drive the app with: handlers called
from several threads at once (as the fault matrix and the race tests do) must leave
the process environment exactly as it was."""

from __future__ import annotations

import os
import threading

from tests.integration.world import World


def _hammer(world: World, threads: int = 12, rounds: int = 4) -> None:
    for _ in range(rounds):
        gate = threading.Barrier(threads)
        statuses: list[int] = []

        def call(gate: threading.Barrier = gate, statuses: list[int] = statuses) -> None:
            gate.wait()
            statuses.append(world.client.http.get("/openapi.json").status_code)

        workers = [threading.Thread(target=call) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert statuses == [200] * threads


def test_concurrent_calls_leave_the_environment_as_it_was(world: World) -> None:
    import time

    from chalicelib.blueprints import api

    real = api.document

    def slow() -> object:
        time.sleep(0.02)  # long enough that the calls overlap
        return real()

    world.patch("chalicelib.blueprints.api.document", slow)
    before = os.environ
    marker = dict(os.environ)
    _hammer(world)
    assert os.environ is before  # not a stage's copy left behind by interleaved restores
    assert dict(os.environ) == marker
