"""How many turns the event loop gave other work while something ran (tests of work
that must let the chargers' answers through between its chunks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


async def turns_during(work: Awaitable[_T]) -> tuple[_T, int]:
    """``work``'s result and how many times another task ran while it was awaited."""
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_work())
    await asyncio.sleep(0)  # the other task's first turn, before the work starts
    started = turns
    try:
        result = await work
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return result, turns - started
