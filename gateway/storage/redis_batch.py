"""Redis commands batched into pipelines on one connection.

Every awaited redis-py command costs a few hundred µs of event-loop CPU (pool
acquisition, locks, timeouts, a parser coroutine per reply), and concurrent commands
queue for the pool's connections. :class:`CommandBatcher` instead queues each command
(packed at once, so an argument it cannot encode fails its caller only) with a future
for its answer, and a flusher writes everything queued so far as *one*
non-transactional pipeline: one ``write`` for the whole batch, the answers parsed as
they arrive (RESP2, :class:`RespParser`) and each handed to its own future.

- **When.** The first command queued while the connection is idle schedules a flush
  with ``loop.call_soon``: commands queued by the tasks of the same event-loop
  iteration go together, and a lone command is not delayed. One batch is in flight at
  a time (at most ``max_batch`` commands, about ``max_bytes``); what is queued
  meanwhile goes in the next batch, sent as soon as the previous one is answered (the
  tasks that its answers wake run first, so their follow-up commands join it).
- **Order.** Commands are sent in the order they were queued, on one connection:
  Redis runs them in that order, so a caller's write followed by its read sees the
  write. The batch is not a MULTI: each command (each Lua script) is atomic on its own.
- **Errors.** An error reply fails only its own command, with :class:`StorageError`.
  ``NOSCRIPT`` (the server's script cache was flushed, or the script was never
  loaded) means the script did not run: it is sent again as ``EVAL`` with its body
  (which loads it), in the next batch, after the rest of its batch. Every script given
  to the batcher is also loaded (``SCRIPT LOAD``) first thing on each new connection.
- **Connection loss** (closed, reset, garbled, or no complete answer to a batch
  within ``timeout`` seconds). A command of the batch in flight that has no answer
  yet may or may not have been applied. Its caller said, when queueing it, whether it
  is safe to send again (``retry``): a read, or a write whose repetition gives the
  same result (see ``gateway.storage.redis`` for which are), is queued again in front
  of the rest, in its original order; a checked write (``retry`` is a script) is sent
  again as that script, which finds out whether the first one was applied and then
  answers as it did. Any other command fails with :class:`StorageUnavailable`. A
  write is sent again only if no later command of the lost batch writes the same
  record (the same ``guard``): repeating it could otherwise undo that later write
  (which then decides the record), so it fails instead. Commands still queued were
  never sent: they wait for the new connection whatever ``retry`` says.
- **Outage.** Reconnection is tried at once, then with a capped exponential
  backoff (from ``RETRY_FIRST_DELAY``, doubling, at most ``RETRY_MAX_DELAY``), for as
  long as commands wait. A command that waits for a connection longer than
  ``retry_seconds`` (counted from when it first found the connection gone) fails with
  :class:`StorageUnavailable`; with ``retry_seconds`` 0, nothing is sent again and the
  queued commands get one reconnection attempt. One warning is logged when the
  connection is lost with commands waiting, one info line when it is back (no
  traceback). A
  server that stops answering without closing is given ``timeout`` seconds first.
  When nothing fails, none of this adds work: the hot path is the one above.
- **Cancellation.** A caller cancelled before its command was sent drops the command;
  after, the answer is discarded (and the command is not sent again).
- :meth:`CommandBatcher.close` refuses new commands, sends and answers those already
  queued, then closes the connection.

The connection itself is opened by redis-py (URL parsing, TLS, AUTH, SELECT,
``CLIENT SETNAME``), whose asyncio transport is then handed to the batcher's own
protocol; redis-py's client, pool and parser are not used for commands.

**Sentinel** (:class:`SentinelTarget`). The connections are then made by redis-py's
``SentinelConnectionPool``: each one, the first and every reconnection, asks the
Sentinels for the current master's address first, so that after a failover the
reconnection finds the new master. A master demoted to replica keeps answering, but
refuses writes with ``READONLY``; such a command did not run (a script fails at its
first write, and the scripts write nothing before it), so it is sent again (within
``retry_seconds``, in its place, whatever its ``retry``) once the rest of its batch is
answered, and the connection is dropped to ask the Sentinels again (after a pause,
50 ms doubling to 1 s while it keeps landing on a replica). Without Sentinel a
``READONLY`` reply is an error reply like any other (there is nowhere else to go).
And the batcher listens to every Sentinel's ``+switch-master`` event (the Sentinel
client spec's "subscribe to Sentinel events"): a failover is over, so it leaves the
old master once the batch in flight is answered, rather than when the Sentinels get
round to reconfiguring it (seconds later: a master that is still alive keeps
acknowledging writes until then, and they are lost when it turns replica). Pub/sub
subscriptions hear of it too (:meth:`CommandBatcher.on_master_moved`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio.client import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.retry import Retry as RedisRetry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.storage.base import StorageError, StorageUnavailable

log = logging.getLogger(__name__)

Arg = str | bytes | int | float
"""A command argument: text (UTF-8), bytes, or a number (sent as its decimal text)."""

DEFAULT_MAX_BATCH: Final = 512
DEFAULT_MAX_BYTES: Final = 1 << 20
# Reconnection during an outage: first retry after 50 ms, doubling, at most 1 s apart.
RETRY_FIRST_DELAY: Final = 0.05
RETRY_MAX_DELAY: Final = 1.0
# Bound on connecting to and hearing from one Sentinel: a dead one must not hold the
# question to the next for the whole socket timeout.
SENTINEL_TIMEOUT: Final = 2.0


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """Redis Sentinel: where to ask for the master's address (``addresses``: host and
    port of each Sentinel), the master's name there (``service``, as in ``sentinel
    monitor <service> ...``), the Sentinels' own password (their ``requirepass``, not
    the master's) and whether they speak TLS (with the URL's ``ssl_*`` options)."""

    addresses: tuple[tuple[str, int], ...]
    service: str
    password: str | None = None
    tls: bool = False


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, called by its SHA-1 (``EVALSHA``) and loaded when missing."""

    body: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())


@dataclass(slots=True)
class BatcherStats:
    """Counters of one batcher (for tests and diagnostics)."""

    batches: int = 0  # pipelines written
    commands: int = 0  # commands written, retries included
    largest_batch: int = 0
    noscript_retries: int = 0
    connections: int = 0  # connections opened
    connections_lost: int = 0  # connections dropped with commands in flight or not
    resent: int = 0  # commands of a lost batch sent again (retry)
    reconnect_failures: int = 0  # connection attempts that failed
    expired: int = 0  # commands failed after waiting retry_seconds for a connection


class ReplyError:
    """An error reply (``-ERR ...``), as the parser returns it (not raised)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ReplyError({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplyError) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)


class ProtocolError(Exception):
    """The server sent something that is not RESP2."""


def pack(args: Sequence[Arg]) -> bytes:
    """One command as RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        if isinstance(arg, str):  # a StrEnum too: its value
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"a Redis command argument cannot be a {type(arg).__name__}")
        append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RespParser:
    """Incremental RESP2 reply parser: ``feed`` bytes, get the replies completed.

    Bulk and simple strings come back as ``bytes``, integers as ``int``, null as
    ``None``, arrays as ``list``, errors as :class:`ReplyError`. A partial reply is
    kept (arrays resume where they stopped, so a huge reply costs no rescans).
    """

    __slots__ = ("_buf", "_stack")

    def __init__(self) -> None:
        self._buf = bytearray()
        # Arrays being filled, innermost last: [items so far, expected length].
        self._stack: list[tuple[list[Any], int]] = []

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        end = len(buf)
        stack = self._stack
        out: list[Any] = []
        pos = 0
        value: Any
        try:
            while pos < end:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                kind = buf[pos]
                if kind == 36:  # $ bulk string
                    size = int(buf[pos + 1 : eol])
                    if size < 0:
                        value = None
                        pos = eol + 2
                    else:
                        stop = eol + 2 + size
                        if stop + 2 > end:
                            break  # the rest is still on its way
                        value = bytes(buf[eol + 2 : stop])
                        pos = stop + 2
                elif kind == 58:  # : integer
                    value = int(buf[pos + 1 : eol])
                    pos = eol + 2
                elif kind == 42:  # * array
                    size = int(buf[pos + 1 : eol])
                    pos = eol + 2
                    if size > 0:
                        stack.append(([], size))
                        continue
                    value = None if size < 0 else []
                elif kind == 43:  # + simple string
                    value = bytes(buf[pos + 1 : eol])
                    pos = eol + 2
                elif kind == 45:  # - error
                    value = ReplyError(buf[pos + 1 : eol].decode(errors="replace"))
                    pos = eol + 2
                else:
                    raise ProtocolError(f"unexpected reply type byte {kind!r}")
                while stack:
                    items, size = stack[-1]
                    items.append(value)
                    if len(items) < size:
                        break
                    value = items
                    stack.pop()
                else:
                    out.append(value)
        except ValueError as exc:  # int() of a garbled header
            raise ProtocolError(str(exc)) from None
        del buf[:pos]
        return out


def _sentinel_pool(
    target: SentinelTarget, options: dict[str, Any]
) -> tuple[Sentinel, SentinelConnectionPool]:
    """A pool whose connections ask the Sentinels for the master's address each time
    they connect (``options``: the URL's, without its host and port)."""
    connection_class = options.pop("connection_class", None)
    if connection_class is not None and issubclass(connection_class, UnixDomainSocketConnection):
        raise StorageError("Redis: a unix socket URL cannot be used with Sentinel")
    tls = connection_class is not None and issubclass(connection_class, SSLConnection)
    for name in ("host", "port", "path"):
        options.pop(name, None)
    timeout = min(options.get("socket_timeout") or SENTINEL_TIMEOUT, SENTINEL_TIMEOUT)
    asking: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "password": target.password,
        "protocol": 2,
        # One try per Sentinel and question (redis-py's default retries each with a
        # backoff of seconds): the batcher's own backoff tries again.
        "retry": RedisRetry(NoBackoff(), 0),
    }
    if target.tls:
        accepted = inspect.signature(Redis.__init__).parameters
        asking["ssl"] = True
        asking.update({k: v for k, v in options.items() if k.startswith("ssl_") and k in accepted})
    manager = Sentinel(list(target.addresses), sentinel_kwargs=asking)  # type: ignore[no-untyped-call, unused-ignore]
    pool = SentinelConnectionPool(  # type: ignore[no-untyped-call, unused-ignore]
        target.service,
        manager,
        connection_class=SentinelManagedSSLConnection if tls else SentinelManagedConnection,
        **options,
    )
    return manager, pool


Retry = bool | Script
"""Whether a command whose answer was lost may be sent again: False, True (as it is),
or a script to send instead, with the same KEYS and ARGV, that checks whether the
first was applied (see the module docstring)."""


class _Command:
    """A queued command: its packed bytes, its caller's future (None: internal), for an
    EVALSHA the script and arguments to send it again as EVAL, whether it may be sent
    again after a connection loss (``retry``), the record it writes (``guard``), and
    when it stops waiting for a connection (``deadline``, loop time; set on its first
    outage)."""

    __slots__ = ("argv", "deadline", "future", "guard", "packed", "retry", "script")

    def __init__(
        self,
        packed: bytes,
        future: asyncio.Future[Any] | None,
        script: Script | None = None,
        argv: tuple[Sequence[Arg], Sequence[Arg]] | None = None,
        retry: Retry = False,
        guard: object = None,
    ) -> None:
        self.packed = packed
        self.future = future
        self.script = script
        self.argv = argv
        self.retry = retry
        self.guard = guard
        self.deadline: float | None = None

    def again(self) -> _Command:
        """The command to send after its answer was lost (``retry`` is not False)."""
        check = self.retry
        if check is True or check is False:
            return self
        assert self.argv is not None
        keys, args = self.argv
        packed = pack(("EVALSHA", check.sha, len(keys), *keys, *args))
        command = _Command(packed, self.future, check, self.argv, check, self.guard)
        command.deadline = self.deadline
        return command


class _Link(asyncio.Protocol):
    """One connection (the transport redis-py opened), feeding the batcher's replies."""

    def __init__(self, batcher: CommandBatcher, conn: AbstractConnection) -> None:
        self.batcher = batcher
        self.conn = conn  # redis-py's, kept to close it (its streams) properly
        self.transport: asyncio.WriteTransport | None = None
        self.parser = RespParser()

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.parser.feed(data)
        except ProtocolError as exc:
            self.batcher._drop(self, f"unreadable answer ({exc})")
            return
        self.batcher._answers(self, replies)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.batcher._drop(self, f"connection lost ({exc or 'closed by the server'})")


class CommandBatcher:
    """Pipelines the commands of many concurrent callers on one Redis connection.

    Create with :meth:`connect` inside the event loop that will use it.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        timeout: float,
        scripts: Iterable[Script] = (),
        max_batch: int = DEFAULT_MAX_BATCH,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retry_seconds: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if retry_seconds < 0:
            raise ValueError("retry_seconds cannot be negative")
        self._loop = asyncio.get_running_loop()
        self._pool = pool  # only makes connections: URL options, TLS, AUTH, SELECT...
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._outage_since: float | None = None  # loop time the connection was lost
        self._expiry: asyncio.TimerHandle | None = None  # fails commands waited too long
        self._scripts = tuple(scripts)
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._queue: deque[_Command] = deque()  # not sent yet, in order
        self._inflight: deque[_Command] = deque()  # sent, awaiting their answers in order
        # Of the batch in flight, did not run: to send again (True: as EVAL, NOSCRIPT;
        # False: as it is, READONLY from a demoted master).
        self._not_run: list[tuple[_Command, bool]] = []
        self._link: _Link | None = None
        self._connecting: asyncio.Task[None] | None = None
        # One timer checks the batch in flight (not one per batch): see _watch.
        self._watchdog: asyncio.TimerHandle | None = None
        self._sent_at = 0.0  # when the batch in flight was written (loop time)
        # Called with each batch's round trip in seconds (metrics: storage write latency).
        self.observe: Callable[[float], None] | None = None
        self._flush_scheduled = False
        self._closing = False
        self._closed = False
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._last_error = ""  # of the last failed connection attempt
        # Sentinel (see the module docstring): asks for the master; READONLY reconnects.
        self._sentinel: Sentinel | None = None
        self._replica_seen = False  # a READONLY reply in the batch in flight
        self._replica_delay = 0.0  # pause before asking the Sentinels again
        self._moved: str | None = None  # the master moved: leave after the batch in flight
        self._master: tuple[str, int] | None = None  # as the last +switch-master said
        self._moved_listeners: list[Callable[[], None]] = []
        self._sentinel_watchers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.stats = BatcherStats()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        socket_timeout: float = 10.0,
        client_name: str | None = None,
        scripts: Iterable[Script] = (),
        max_batch: int = DEFAULT_MAX_BATCH,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retry_seconds: float = 0.0,
        sentinel: SentinelTarget | None = None,
    ) -> CommandBatcher:
        """A batcher connected to the Redis at ``url`` (any URL redis-py accepts).

        ``socket_timeout`` bounds connecting and the wait for each batch's answers;
        ``client_name`` is the connection's ``CLIENT SETNAME``; ``retry_seconds`` how
        long a command waits for a lost connection to come back. With ``sentinel`` the
        master's address comes from the Sentinels, and ``url`` (which may be empty)
        gives only the rest: user, password, database, TLS (``rediss://``) and query
        options, e.g. ``redis://:secret@/0``. StorageError if the server cannot be
        reached.
        """
        try:
            options: dict[str, Any] = dict(parse_url(url)) if url or sentinel is None else {}
        except ValueError as exc:
            raise StorageError(f"Redis: bad URL: {exc}") from exc
        options.setdefault("socket_timeout", socket_timeout)
        options.setdefault("socket_connect_timeout", socket_timeout)
        options.setdefault("client_name", client_name)
        options["protocol"] = 2  # RespParser reads RESP2 only
        manager: Sentinel | None = None
        if sentinel is None:
            pool = ConnectionPool(**options)
        else:
            manager, pool = _sentinel_pool(sentinel, options)
        batcher = cls(
            pool,
            timeout=socket_timeout,
            scripts=scripts,
            max_batch=max_batch,
            max_bytes=max_bytes,
            retry_seconds=retry_seconds,
        )
        batcher._sentinel = manager
        try:
            link = await batcher._open()
        except BaseException:
            await batcher._close_sentinel()
            raise
        batcher._use(link)
        if manager is not None:
            batcher._sentinel_watchers = [
                asyncio.create_task(batcher._watch_sentinel(client), name="redis-sentinel-events")
                for client in list(manager.sentinels)
            ]
        return batcher

    async def _close_sentinel(self) -> None:
        watchers, self._sentinel_watchers = self._sentinel_watchers, []
        for task in watchers:
            task.cancel()
        for task in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        manager, self._sentinel = self._sentinel, None
        if manager is not None:
            with contextlib.suppress(Exception):  # closing anyway: nothing to report
                await manager.aclose()

    @property
    def sentinel(self) -> bool:
        """Whether the connections are made through Sentinel."""
        return self._sentinel is not None

    def on_master_moved(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` each time the Sentinels announce a new master (never without
        Sentinel); returns what stops it."""
        self._moved_listeners.append(callback)
        return lambda: self._moved_listeners.remove(callback)

    async def _watch_sentinel(self, sentinel: Redis) -> None:
        """Listen to one Sentinel's ``+switch-master`` for as long as the batcher lives
        (a Sentinel that is down is tried again, 50 ms doubling to 1 s apart)."""
        delay = RETRY_FIRST_DELAY
        while True:
            pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe("+switch-master")
                delay = RETRY_FIRST_DELAY
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        self._switch_master(message["data"])
            except (RedisError, OSError):
                pass  # down or unreachable: the other Sentinels are heard meanwhile
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call, unused-ignore]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    def _switch_master(self, data: bytes) -> None:
        """``<service> <old ip> <old port> <new ip> <new port>`` from a Sentinel."""
        parts = data.decode(errors="replace").split()
        if self._sentinel is None or len(parts) != 5 or not parts[4].isdigit():
            return
        pool = self._pool
        if not isinstance(pool, SentinelConnectionPool) or parts[0] != pool.service_name:
            return
        master = (parts[3], int(parts[4]))
        if master == self._master:
            return  # every Sentinel announces it
        self._master = master
        log.warning("Redis: the Sentinels moved the master to %s:%d", *master)
        link = self._link
        if (
            link is not None
            and (getattr(link.conn, "host", None), getattr(link.conn, "port", None)) != master
        ):
            if self._inflight:
                self._moved = "the master moved"  # once the batch in flight is answered
            else:
                self._drop(link, "the master moved")
        for callback in list(self._moved_listeners):
            callback()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (every new command is refused)."""
        return self._closing

    @property
    def pool(self) -> ConnectionPool:
        """Makes connections with the batcher's options (URL, TLS, AUTH, SELECT...), for
        what cannot share the batcher's connection (pub/sub subscriptions)."""
        return self._pool

    # -- callers --------------------------------------------------------------------------

    def command(self, *args: Arg, retry: bool = False, guard: object = None) -> asyncio.Future[Any]:
        """Queue one command; its future gets the reply (StorageError for an error reply).

        ``retry``: the command may be sent again when its answer is lost (a read, or a
        write that gives the same result when repeated); ``guard``: the record a write
        writes (any hashable; see the module docstring). StorageError at once after
        :meth:`close`; TypeError for an argument of another type.
        """
        return self._enqueue(pack(args), None, None, retry, guard)

    def evalsha(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg],
        *,
        retry: Retry = False,
        guard: object = None,
    ) -> asyncio.Future[Any]:
        """Queue a script call (``EVALSHA``, or ``EVAL`` when the server lacks it).

        ``retry`` and ``guard`` as for :meth:`command`; ``retry`` may also be the
        script to send instead when the answer was lost (same KEYS and ARGV).
        """
        packed = pack(("EVALSHA", script.sha, len(keys), *keys, *args))
        return self._enqueue(packed, script, (keys, args), retry, guard)

    def _enqueue(
        self,
        packed: bytes,
        script: Script | None,
        argv: tuple[Sequence[Arg], Sequence[Arg]] | None,
        retry: Retry,
        guard: object,
    ) -> asyncio.Future[Any]:
        if self._closing:
            raise StorageError("the Redis store is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.append(_Command(packed, future, script, argv, retry, guard))
        if not self._flush_scheduled and not self._inflight:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return future

    async def close(self) -> None:
        """Refuse new commands, finish the queued ones, then close the connection."""
        self._closing = True
        while self._queue or self._inflight or self._not_run or self._connecting:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._idle_waiters.append(waiter)
            await waiter
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._cancel_expiry()
        link, self._link = self._link, None
        if link is not None:
            await self._dispose(link)
        await self._close_sentinel()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- the flusher ------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._inflight:
            return  # the batch's last answer schedules the next flush
        queue = self._queue
        link = self._link
        if not queue or link is None or link.transport is None:
            if queue and self._connecting is None and not self._closed:
                self._connecting = self._loop.create_task(self._reconnect())
            self._wake_idle_waiters()
            return
        batch = self._inflight
        parts: list[bytes] = []
        size = 0
        while queue and len(parts) < self._max_batch and size < self._max_bytes:
            command = queue.popleft()
            if command.future is not None and command.future.done():
                continue  # cancelled before it was sent
            batch.append(command)
            parts.append(command.packed)
            size += len(command.packed)
        if not parts:
            self._wake_idle_waiters()
            return
        stats = self.stats
        stats.batches += 1
        stats.commands += len(parts)
        stats.largest_batch = max(stats.largest_batch, len(parts))
        try:
            link.transport.write(b"".join(parts))
        except Exception as exc:  # e.g. uvloop: the transport closed under us
            self._drop(link, f"cannot send ({exc})")
            return
        self._sent_at = self._loop.time()
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._sent_at + self._timeout, self._watch)

    def _answers(self, link: _Link, replies: list[Any]) -> None:
        """Hand each reply to its command (they come in the order the commands went)."""
        if link is not self._link:
            return
        inflight = self._inflight
        for reply in replies:
            if not inflight:
                self._drop(link, "an answer to no command")
                return
            command = inflight.popleft()
            future = command.future
            if reply.__class__ is ReplyError:
                if command.script is not None and reply.message.startswith("NOSCRIPT"):
                    self._not_run.append((command, True))
                elif self._sentinel is not None and reply.message.startswith("READONLY"):
                    self._replica_seen = True
                    self._not_run.append((command, False))
                elif future is not None and not future.done():
                    future.set_exception(StorageError(f"Redis: {reply.message}"))
            elif future is not None and not future.done():
                future.set_result(reply)
        if not inflight:
            if self._replica_seen:
                self._replica_delay = min(
                    max(RETRY_FIRST_DELAY, self._replica_delay * 2), RETRY_MAX_DELAY
                )
                self._drop(link, "the server is a read-only replica now (a failover)")
                return
            self._replica_delay = 0.0
            if self._moved is not None:
                self._drop(link, self._moved)
                return
            if self.observe is not None:
                self.observe(self._loop.time() - self._sent_at)
            self._batch_done()

    def _batch_done(self) -> None:
        self._requeue_not_run()
        # Not at once: the tasks the answers woke run first and may queue more.
        self._schedule_flush()

    def _requeue_not_run(self) -> None:
        """Commands that did not run are sent again first, in their order. NOSCRIPT: as
        EVAL (loads the script). READONLY: as they are, while ``retry_seconds`` lasts."""
        if not self._not_run:
            return
        again = []
        now = self._loop.time()
        for command, as_eval in self._not_run:
            if not as_eval:
                future = command.future
                if future is None or future.done():
                    continue  # a script preload, or its caller is gone
                if command.deadline is None:
                    command.deadline = now + self._retry_seconds
                if command.deadline <= now:
                    self.stats.expired += 1
                    future.set_exception(
                        StorageUnavailable("Redis: the server is a read-only replica")
                    )
                    continue
                again.append(command)
                continue
            script, argv = command.script, command.argv
            assert script is not None
            assert argv is not None
            keys, args = argv
            packed = pack(("EVAL", script.body, len(keys), *keys, *args))
            evaled = _Command(packed, command.future, None, None, command.retry, command.guard)
            if command.retry is not True and command.retry is not False:
                evaled.argv = argv  # a checked command needs them to be checked again
            evaled.deadline = command.deadline
            again.append(evaled)
        self.stats.noscript_retries += sum(as_eval for _, as_eval in self._not_run)
        self._not_run = []
        self._queue.extendleft(reversed(again))

    def _wake_idle_waiters(self) -> None:
        if self._idle_waiters and not (self._queue or self._inflight or self._connecting):
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

    # -- the connection ---------------------------------------------------------------------

    def _watch(self) -> None:
        """Drop the connection if the batch in flight is older than the timeout."""
        self._watchdog = None
        link = self._link
        if not self._inflight or link is None:
            return  # re-armed by the next batch
        due = self._sent_at + self._timeout
        if self._loop.time() >= due - 0.001:
            self._drop(link, f"no answer within {self._timeout:g} s")
        else:
            self._watchdog = self._loop.call_at(due, self._watch)

    def _drop(self, link: _Link, why: str) -> None:
        """The link is unusable: send again (or fail) the commands in flight, and
        reconnect for the queue."""
        if link is not self._link:
            return
        self._link = None
        self._replica_seen = False
        self._moved = None
        self.stats.connections_lost += 1
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if link.transport is not None:
            link.transport.abort()
        lost, self._inflight = self._inflight, deque()
        self._resend(lost, f"Redis: {why}; the command may or may not have been applied")
        self._requeue_not_run()  # they did not run, and came before the lost ones
        if self._queue and self._outage_since is None and not self._closed:
            self._outage_since = self._loop.time()
            log.warning(
                "Redis: %s; reconnecting (commands wait up to %g s)", why, self._retry_seconds
            )
        self._background_task(self._dispose(link))
        self._schedule_flush()  # reconnects if commands are queued; else wakes close()

    def _resend(self, lost: deque[_Command], error: str) -> None:
        """Queue again, in front and in order, the commands of a lost batch that may be
        sent again; fail the others (see the module docstring)."""
        now = self._loop.time()
        written: set[object] = set()  # records written by a later command of the batch
        again: list[_Command] = []
        for command in reversed(lost):
            guard = command.guard
            resend = (
                command.retry is not False
                and self._retry_seconds > 0
                and (guard is None or guard not in written)
                and (command.deadline is None or command.deadline > now)
            )
            if guard is not None:
                written.add(guard)
            future = command.future
            if future is None:
                continue  # a script preload: loaded again on the next connection anyway
            if future.done():
                continue  # its caller is gone: nobody wants the answer
            if resend:
                if command.deadline is None:
                    command.deadline = now + self._retry_seconds
                again.append(command.again())
            else:
                future.set_exception(StorageUnavailable(error))
        self.stats.resent += len(again)
        self._queue.extendleft(again)  # reversed twice: the original order

    def _stamp_deadlines(self) -> float | None:
        """Give each queued command without one its deadline; fail those past theirs.

        Returns the earliest deadline left, or None when nothing waits.
        """
        now = self._loop.time()
        default = now + self._retry_seconds
        earliest: float | None = None
        kept: deque[_Command] = deque()
        error = self._last_error or "Redis: no answer while connecting"
        if self._retry_seconds > 0:
            error += f"; no connection for {self._retry_seconds:g} s"
        for command in self._queue:
            future = command.future
            if future is None or future.done():
                continue  # a script preload (each connection queues its own), or cancelled
            if command.deadline is None:
                command.deadline = default
            if command.deadline <= now:
                self.stats.expired += 1
                future.set_exception(StorageUnavailable(error))
                continue
            kept.append(command)
            if earliest is None or command.deadline < earliest:
                earliest = command.deadline
        self._queue = kept
        return earliest

    def _arm_expiry(self, earliest: float) -> None:
        """Fail the waiting commands at their deadline even while a connection attempt
        hangs (it may take up to ``timeout``)."""
        self._cancel_expiry()
        self._expiry = self._loop.call_at(earliest, self._on_expiry)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _on_expiry(self) -> None:
        self._expiry = None
        if self._link is not None:
            return
        earliest = self._stamp_deadlines()
        if earliest is not None:
            self._arm_expiry(earliest)
        else:
            self._wake_idle_waiters()

    async def _open(self) -> _Link:
        """A new connection, handshake done by redis-py; StorageError if it fails."""
        conn: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call, unused-ignore]
        link = _Link(self, conn)
        try:
            await conn.connect()  # type: ignore[no-untyped-call, unused-ignore]
            # redis-py keeps its StreamWriter here (since the asyncio client exists).
            writer: asyncio.StreamWriter | None = getattr(conn, "_writer", None)
            if writer is None:
                raise StorageError("Redis: cannot take over redis-py's connection")
            transport = writer.transport  # asyncio's or uvloop's
            transport.set_protocol(link)
            link.transport = transport
        except BaseException as exc:
            await self._dispose(link)
            if isinstance(exc, StorageError) or not isinstance(exc, Exception):
                raise
            raise StorageError(f"Redis: {exc}") from exc
        self.stats.connections += 1
        return link

    def _use(self, link: _Link) -> None:
        self._link = link
        self._cancel_expiry()
        if self._outage_since is not None:
            log.info("Redis: connected again after %.1f s", self._loop.time() - self._outage_since)
            self._outage_since = None
        # Load every script first thing (a restarted server has none); the replies go
        # nowhere: a script that cannot load fails its own calls.
        preload = [_Command(pack(("SCRIPT", "LOAD", s.body)), None) for s in self._scripts]
        self._queue.extendleft(reversed(preload))
        self._schedule_flush()

    async def _reconnect(self) -> None:
        """Connect again while commands wait: at once, then with a capped exponential
        backoff; each command fails once it waited ``retry_seconds``."""
        delay = RETRY_FIRST_DELAY
        # What a command that expires now is told (a READONLY drop: where it came from).
        self._last_error = "Redis: the server is a read-only replica" if self._replica_delay else ""
        if self._retry_seconds > 0:  # a hanging attempt must not hold them past it
            earliest = self._stamp_deadlines()
            if earliest is not None:
                self._arm_expiry(earliest)
        try:
            if self._replica_delay:
                # The last connection was to a demoted master: the Sentinels may not
                # name the new one yet (and a hot loop would hammer them).
                await asyncio.sleep(self._replica_delay)
            while True:
                try:
                    link = await self._open()
                except StorageError as exc:
                    self.stats.reconnect_failures += 1
                    self._last_error = str(exc)
                    if self._outage_since is None:
                        self._outage_since = self._loop.time()
                        log.warning(
                            "Redis: cannot connect (%s); retrying for up to %g s",
                            exc,
                            self._retry_seconds,
                        )
                    earliest = self._stamp_deadlines()
                    if earliest is None or self._closed:
                        self._cancel_expiry()
                        return
                    self._arm_expiry(earliest)
                    await asyncio.sleep(min(delay, max(0.0, earliest - self._loop.time())))
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                    if not self._queue:  # every waiting command expired or was cancelled
                        self._cancel_expiry()
                        return
                    continue
                if self._closed:  # close() gave up waiting (cancelled): do not keep it
                    await self._dispose(link)
                else:
                    self._use(link)
                return
        finally:
            self._connecting = None
            self._schedule_flush()

    async def _dispose(self, link: _Link) -> None:
        if link.transport is not None:
            link.transport.close()
        with contextlib.suppress(Exception):  # closing anyway: nothing to report
            await link.conn.disconnect(nowait=True)  # closes redis-py's streams too

    def _background_task(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
