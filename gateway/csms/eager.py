"""Starting a coroutine in the caller's turn of the event loop, as Python 3.12's eager
tasks do (this code runs on 3.11): most of a charger's CALLs (a Heartbeat, a MeterValues
outside a transaction) are answered without waiting for anything, and then need no task,
no scheduling and no turn of the loop of their own (issue 15, tests/bench/README.md).

Imports nothing of the gateway.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
    """Run ``coro`` now, up to where it first waits, in a copy of the current context.

    None when it finished without waiting (its result is dropped: this is for coroutines
    that handle their own outcome); else a task that carries it on from there, in the
    same context, as ``asyncio.create_task(coro)`` would have from its start. An exception
    it raises before it first waits is raised here.
    """
    context = contextvars.copy_context()
    try:
        waiting_for = context.run(coro.send, None)
    except StopIteration:
        return None
    loop = asyncio.get_running_loop()
    return loop.create_task(_resumed(coro, waiting_for), context=context)


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, T], waiting_for: Any) -> Generator[Any, None, T]:
    """Goes on with ``coro``, stepped by hand until it yielded ``waiting_for`` to the event
    loop (a future, usually): passes that up to the task, then hands the task over to
    ``coro`` itself (``yield from``, which forwards in C what the task sends or throws).

    A task sends None when what it waited for is done, which is what resumes ``coro`` (a
    future's ``__await__`` then reads its result); what it throws (a cancellation) is
    thrown into ``coro`` where it waits.
    """
    try:
        yield waiting_for
    except BaseException as exc:  # a cancellation too: the coroutine gets it
        try:
            waiting_for = coro.throw(exc)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        return (yield from _resumed(coro, waiting_for))
    return (yield from coro)  # type: ignore[no-any-return]
