"""gateway.csms.eager.start_eagerly: a coroutine run at once, carried on by a task only
when it waits, behaving as ``asyncio.create_task`` would have (results, exceptions,
cancellation, context)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from gateway.csms.eager import start_eagerly

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def test_a_coroutine_that_never_waits_runs_at_once_and_needs_no_task() -> None:
    ran: list[str] = []

    async def quick() -> None:
        ran.append("ran")

    before = len(asyncio.all_tasks())
    assert start_eagerly(quick()) is None
    assert ran == ["ran"]
    assert len(asyncio.all_tasks()) == before


async def test_it_runs_up_to_its_first_wait_before_returning_then_a_task_carries_it_on() -> None:
    steps: list[str] = []
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waits() -> int:
        steps.append("before")
        value = await gate
        steps.append(f"after {value}")
        await asyncio.sleep(0)  # a bare yield to the loop, as sleep(0) is
        steps.append("end")
        return value * 2

    task = start_eagerly(waits())
    assert task is not None
    assert steps == ["before"]
    gate.set_result(21)
    assert await task == 42
    assert steps == ["before", "after 21", "end"]


async def test_an_exception_before_the_first_wait_is_raised_by_the_call() -> None:
    async def fails() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        start_eagerly(fails())


async def test_an_exception_after_a_wait_is_the_tasks() -> None:
    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    task = start_eagerly(fails_later())
    assert task is not None
    with pytest.raises(KeyError, match="later"):
        await task


async def test_a_cancelled_task_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def waits_forever() -> None:
        try:
            await never
        finally:
            cleaned.append("finally ran")

    task = start_eagerly(waits_forever())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally ran"]
    assert never.cancelled()


async def test_a_coroutine_may_catch_the_cancellation_and_go_on() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def shrugs() -> str:
        try:
            await never
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            return "caught"
        return "not cancelled"

    task = start_eagerly(shrugs())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "caught"


async def test_it_runs_in_one_copy_of_the_callers_context_from_start_to_end() -> None:
    VAR.set("caller")
    seen: list[str] = []

    async def uses_context() -> None:
        seen.append(VAR.get())
        token = VAR.set("inside")
        await asyncio.sleep(0)
        seen.append(VAR.get())
        VAR.reset(token)  # a token of the first step, reset after a wait: same context
        seen.append(VAR.get())

    task = start_eagerly(uses_context())
    assert task is not None
    assert VAR.get() == "caller"  # the caller's context is left as it was
    await task
    assert seen == ["caller", "inside", "caller"]
    assert VAR.get() == "caller"


async def test_awaiting_another_task_inside_works() -> None:
    async def child() -> str:
        await asyncio.sleep(0)
        return "child done"

    async def parent() -> str:
        return await asyncio.create_task(child())

    task = start_eagerly(parent())
    assert task is not None
    assert await task == "child done"
