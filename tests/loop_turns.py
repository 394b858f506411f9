"""How many turns the event loop gave other work while something ran (tests of work
that must let the chargers' answers through between its chunks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")


@contextlib.asynccontextmanager
async def counting_turns() -> AsyncIterator[Callable[[], int]]:
    """Another task, taking a turn whenever the loop lets it, while the block runs; the
    block gets a function that tells how many turns it has had so far (from 0)."""
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_work())
    await asyncio.sleep(0)  # the other task's first turn, before the block starts
    started = turns
    try:
        yield lambda: turns - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def turns_during(work: Awaitable[_T]) -> tuple[_T, int]:
    """``work``'s result and how many times another task ran while it was awaited."""
    async with counting_turns() as turns:
        result = await work
        return result, turns()
