"""Integration fixtures: the whole app against moto, in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.integration.world import World


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        w = World.create()
        try:
            yield w
        finally:
            w.close()
