"""Fixtures of the central system's tests."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector off (after a full collection): what is freed is freed by
    reference counting, as the connection-memory tests require."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
