"""The ``backend`` fixture of a contract module whose store SQLite may write from a process
(the trail, the status history: gateway.storage.sqlite_process): the module runs on that
too (``sqlite-process``, conftest's ``Location``). Imported by such a module as
``backend``; not in conftest, where it would be a second fixture of that name."""

from __future__ import annotations

import pytest


@pytest.fixture(
    params=["sqlite", "sqlite-process", pytest.param("redis", marks=pytest.mark.redis)],
    name="backend",
)
def backend_with_writer_processes(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name
