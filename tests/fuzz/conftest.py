"""Fuzz suite settings and the log watch.

``GATEWAY_FUZZ_FRAMES`` (default 5,000) is the number of OCPP frames per run, over
both subprotocols; the OCPI and admin requests scale with it. ``GATEWAY_FUZZ_SEED``
(default fixed, so CI always sends the same input) picks another input to explore. A
soak: ``GATEWAY_FUZZ_FRAMES=100000 ./scripts/test tests/fuzz`` (the per-test timeout
grows with the count).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

DEFAULT_FRAMES = 5_000
DEFAULT_SEED = 20261124
# Seconds of test timeout per 1,000 frames beyond the default count (soak runs).
SOAK_SECONDS_PER_1000 = 8


@dataclass(frozen=True)
class FuzzConfig:
    frames: int
    seed: int

    @property
    def scale(self) -> float:
        return self.frames / DEFAULT_FRAMES


def _config() -> FuzzConfig:
    frames = int(os.environ.get("GATEWAY_FUZZ_FRAMES", DEFAULT_FRAMES))
    seed = int(os.environ.get("GATEWAY_FUZZ_SEED", DEFAULT_SEED))
    if frames < 1:
        raise pytest.UsageError("GATEWAY_FUZZ_FRAMES must be at least 1")
    return FuzzConfig(frames, seed)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    config = _config()
    if config.frames <= DEFAULT_FRAMES:
        return
    seconds = 120 + config.frames // 1000 * SOAK_SECONDS_PER_1000
    for item in items:
        if "tests/fuzz/" in item.nodeid:
            item.add_marker(pytest.mark.timeout(seconds))


@pytest.fixture
def fuzz_config() -> FuzzConfig:
    return _config()


class LogWatch(logging.Handler):
    """Keeps every record at ERROR or above, and every record carrying a traceback,
    from any logger (the gateway's, aiohttp's server, asyncio's "exception was never
    retrieved")."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or record.stack_info:
            self.records.append(record)

    def report(self) -> str:
        lines = []
        for record in self.records[:20]:
            lines.append(f"{record.levelname} {record.name}: {record.getMessage()[:300]}")
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                lines.append(f"    {type(exc).__name__}: {str(exc)[:300]}")
        return "\n".join(lines)


@pytest.fixture
def log_watch() -> Iterator[LogWatch]:
    watch = LogWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
