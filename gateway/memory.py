"""Giving the memory a burst freed back to the operating system.

Imports the standard library only. The composition root (``gateway.app``) builds the
release (:func:`releaser`: the caches kept for speed, the store's, then the trimmer) and
hands it to whoever sees bursts end (the OCPP endpoint, when thousands of chargers have
closed).

Why: once 10,000 chargers close together, their objects are freed, but glibc's malloc
keeps the pages of its heaps for reuse (only the top of the main heap is given back,
and only past ``M_TRIM_THRESHOLD``), so the process's RSS stays tens of MiB above what it
holds (``tests/bench/README.md``, RSS after close). ``malloc_trim(0)`` releases every
whole free page of every heap (glibc 2.8 and later). Python's own allocator gives back
its 1 MiB blocks by itself once they are empty; this is for glibc's share.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def native_trimmer() -> Callable[[], None] | None:
    """``malloc_trim(0)`` of the C library when it is glibc, else None (musl, macOS,
    Windows: nothing to call, nothing done). Blocking for a few milliseconds on a large
    heap: call it off the event loop."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


def releaser(
    *caches: Callable[[], Awaitable[None]], native: Callable[[], None] | None
) -> Callable[[], Awaitable[None]]:
    """One release after a burst: each of ``caches`` gives back what it keeps only for
    speed (the store's page caches), in turn, then ``native`` (:func:`native_trimmer`),
    in a thread, returns the pages all of that freed to the system."""

    async def release() -> None:
        for cache in caches:
            await cache()
        if native is not None:
            # malloc_trim holds the allocator's lock for a few ms on a large heap: in a
            # thread, the event loop goes on meanwhile.
            await asyncio.to_thread(native)

    return release
