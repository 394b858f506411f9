"""Starting a coroutine in the caller's turn of the event loop, as Python 3.12's eager
tasks do (this code runs on 3.11): most of a charger's CALLs (a Heartbeat, a MeterValues
outside a transaction) are answered without waiting for anything, and then need no task,
no scheduling and no turn of the loop of their own (issue 15, tests/bench/README.md).

Imports nothing of the gateway.
"""

from __future__ import annotations

import asyncio
import contextvars
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
    # The task steps a generator (asyncio takes one as a coroutine): one frame between
    # the task and ``coro``, where a coroutine awaiting an awaitable would put two.
    return loop.create_task(_resumed(coro, waiting_for), context=context)


def _resumed(coro: Coroutine[Any, Any, T], waiting_for: Any) -> Generator[Any, Any, T]:
    """Goes on with ``coro``, stepped by hand until it yielded ``waiting_for`` to the event
    loop (a future, usually): passes that up to the task, then forwards to ``coro`` what
    the task sends or throws back (the future's completion, a cancellation) until it
    returns, as ``await`` itself would have."""
    while True:
        try:
            sent = yield waiting_for
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # a cancellation too: the coroutine gets it
            try:
                waiting_for = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                waiting_for = coro.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
