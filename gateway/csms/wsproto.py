"""A charger's WebSocket once its handshake is done: served on the connection's transport
by a small protocol of our own, out of aiohttp's HTTP layer (issue 15).

Served by aiohttp to the end, every idle charger kept its upgrade request (the parsed
message and its headers), the HTTP protocol object with its parser and deques, two tasks
and their coroutine frames, the WebSocket response with its queue, and the handler's
frame: about 12 kB of the 16.7 kB of Python objects per idle charger. Here an idle
charger holds the transport, a ``ChargerSocket``, aiohttp's frame parser and its
``OcppConnection``; no task runs while it is silent.

The frames are parsed by aiohttp's own reader (limits, close codes and UTF-8 checks as
before); the socket is the reader's queue, so each message is handled as it is parsed.
Text and binary messages and the peer's CLOSE are handled in arrival order by a task that
exists only while some are waiting, as the receive loop did. Close codes are those of
``aiohttp.web.WebSocketResponse.receive``: 1009 for a message over the limit, 1002 for a
protocol error, 1007 for invalid UTF-8.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final, Protocol

# The compiled reader takes only its own queue type (or a subclass): ChargerSocket is one.
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.http_websocket import WebSocketError, WebSocketReader, WSCloseCode, WSMsgType

from gateway import logs

if TYPE_CHECKING:
    from aiohttp.http_websocket import WSMessage, WSMessageTextBytes

    from gateway.csms.connection import OcppConnection

log = logging.getLogger(__name__)


class WebSocket(Protocol):
    """What an ``OcppConnection`` uses of its WebSocket."""

    @property
    def closed(self) -> bool: ...

    async def send_str(self, data: str) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class SocketOwner(Protocol):
    """What a ``ChargerSocket`` needs of the endpoint that made it."""

    # Seconds a close waits for the peer's CLOSE (or for its own to be flushed) before
    # the connection is aborted.
    close_timeout: float

    async def socket_ended(self, sock: ChargerSocket) -> None:
        """The connection ended (a close started, or it is gone) and every message that
        came before was handled."""


_OP_TEXT: Final = 0x1
_OP_BINARY: Final = 0x2
_OP_CLOSE: Final = 0x8
_OP_PING: Final = 0x9
_OP_PONG: Final = 0xA
_FIN: Final = 0x80
_HEAD_7 = struct.Struct("!BB").pack
_HEAD_16 = struct.Struct("!BBH").pack
_HEAD_64 = struct.Struct("!BBQ").pack
_CLOSE_CODE = struct.Struct("!H").pack
# Larger frames go out as header and payload, not joined in a copy.
_JOIN_BELOW: Final = 16 * 1024

# Messages waiting to be handled, in bytes (plus an overhead each, so that a flood of
# empty messages counts): above the limit the socket stops reading until half of it is
# left, like aiohttp's queue (twice its 64 kB chunk).
_INBOX_LIMIT: Final = 2 * 64 * 1024
_MESSAGE_OVERHEAD: Final = 128

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CLOSE = WSMsgType.CLOSE
_PING = WSMsgType.PING

# The codes a close may carry on the wire (RFC 6455 7.4): an answer echoes the peer's
# when it is one of them.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(
    range(3000, 5000)
)

# States of the connection, in the order they come.
_HANDSHAKE: Final = 0  # the 101 answer not yet written: bytes kept unparsed
_OPEN: Final = 1
_ENDING: Final = 2  # the peer's CLOSE (or a protocol error) waits behind its messages
_CLOSING: Final = 3  # our CLOSE is written: nothing more is sent or handled
_LOST: Final = 4  # connection_lost

# Items of the inbox: a text message, None for a binary message, the code of the peer's
# CLOSE, or the parser's error.
_Item = str | None | int | BaseException


class ChargerSocket(WebSocketDataQueue, asyncio.Protocol):
    """One charger's WebSocket after the handshake: the transport's protocol, and the
    queue of aiohttp's frame parser (``feed_data`` gets each message as it is parsed)."""

    __slots__ = (
        "__weakref__",
        "_abort_handle",
        "_drain_waiter",
        "_early",
        "_ended",
        "_inbox",
        "_owner",
        "_queued",
        "_reader",
        "_reading_held",
        "_serving",
        "_state",
        "_task",
        "_transport",
        "_write_paused",
        "address",
        "charger_id",
        "conn",
        "reason",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        owner: SocketOwner,
        charger_id: str,
        *,
        max_msg_size: int,
        address: str | None,
    ) -> None:
        # WebSocketDataQueue.__init__ is not called: its buffer, waiter and flow control
        # go unused (messages are handled in feed_data below); its fields stay empty, and
        # its size stays 0, so the parser never stalls on it.
        self._transport: asyncio.Transport | None = transport
        self._owner = owner
        self.charger_id = charger_id
        # Where the charger connects from while its unauthenticated connection counts
        # against the address (gateway.csms.admission), else None.
        self.address = address
        self._reader: WebSocketReader | None = WebSocketReader(
            self, max_msg_size, compress=False, decode_text=True
        )
        self.conn: OcppConnection | None = None
        self.reason = "connection closed"
        self._state = _HANDSHAKE
        self._early = b""
        # Created by the first message waiting (an empty deque is 0.6 kB).
        self._inbox: deque[_Item] | None = None
        self._queued = 0
        self._reading_held = False
        # Set once the endpoint has the connection registered (or refused): messages
        # wait until then.
        self._serving = False
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._abort_handle: asyncio.TimerHandle | None = None

    # -- the surface OcppConnection uses ---------------------------------------------

    @property
    def closed(self) -> bool:
        """True once a CLOSE is written (ours, or our answer to the peer's) or the
        connection is gone."""
        return self._state >= _CLOSING

    async def send_str(self, data: str) -> None:
        transport = self._transport
        if self._state >= _CLOSING or transport is None or transport.is_closing():
            # What aiohttp raises too (ConnectionError: answers to a gone charger are
            # dropped by the connection).
            raise ConnectionResetError("Cannot write to closing transport")
        _write(transport, _OP_TEXT, data.encode())
        if self._write_paused:
            await self._drain()

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        """Send a CLOSE: the connection's end is handled now (its messages so far first);
        the TCP connection closes on the charger's answer, or is aborted after
        ``close_timeout``. False when a close had already started."""
        if self._state >= _CLOSING:
            return False
        # A control frame carries 125 bytes at most (RFC 6455 5.5), the code's 2 included.
        self._send_close(code, message[:123])
        return True

    # -- set-up by the endpoint ------------------------------------------------------

    def start(self, tail: bytes) -> None:
        """The 101 answer is written: parse what came with the handshake and since."""
        data, self._early = tail + self._early, b""
        if self._state == _HANDSHAKE:
            self._state = _OPEN
            if data:
                self._parse(data)

    def serve(self, conn: OcppConnection | None) -> None:
        """Messages go to ``conn`` from now on (None: the connection is being refused,
        its messages are dropped); its end is handled here too."""
        self.conn = conn
        self._serving = True
        if self._task is None and (self._inbox or self._state >= _CLOSING):
            self._task = asyncio.create_task(self._serve())

    def lost(self) -> bool:
        return self._state == _LOST

    def give_back(self) -> bytes:
        """The upgrade failed: what arrived since, for aiohttp to parse (the parser and
        this socket, which hold each other, are parted)."""
        data, self._early = self._early, b""
        self._reader = None
        return data

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._state == _HANDSHAKE:
            self._early += data
        else:
            # Once a close started only the peer's CLOSE matters (_receive drops the rest).
            self._parse(data)

    def eof_received(self) -> None:
        # The transport then closes (connection_lost).
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writers()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._state = _LOST
        self._transport = None
        # The parser holds this socket as its queue: the cycle ends here.
        self._reader = None
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        self._wake_writers()
        self._ending()

    # -- WebSocketDataQueue: what the parser gives --------------------------------------

    def feed_data(self, data: WSMessage | WSMessageTextBytes, size: int) -> None:
        kind = data.type
        if kind is _TEXT:
            self._receive(data.data)
        elif kind is _BINARY:
            self._receive(None)
        elif kind is _PING:
            transport = self._transport
            if self._state < _CLOSING and transport is not None and not transport.is_closing():
                _write(transport, _OP_PONG, data.data)
        elif kind is _CLOSE:
            if self._state == _CLOSING:
                self._drop()  # the answer to ours: the close handshake is complete
            else:
                self._receive(int(data.data))
        # A PONG needs nothing (no pings are sent).

    def feed_eof(self) -> None:
        pass

    def set_exception(
        self, exc: BaseException, exc_cause: BaseException | None = None
    ) -> None:
        # The parser's error (it reads nothing more): a close with its code once the
        # messages before it are handled.
        if self._state < _CLOSING:
            self._receive(exc)

    # -- inside ------------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        reader = self._reader
        if reader is not None:
            reader.feed_data(data)

    def _receive(self, item: _Item) -> None:
        if self._state != _OPEN:
            return  # after a CLOSE or an error, nothing more is handled
        inbox = self._inbox
        if self._serving and self._task is None and not inbox:
            # No message waits before this one and none is being handled: handled now,
            # in this callback, without a task of its own (issue 15: one task and one
            # loop turn less per message; tests/bench/README.md has the figures).
            if type(item) is str:
                self._handle_now(item)
                return
            if type(item) is int:
                self._answer_close(item)
                return
        if type(item) is int or isinstance(item, BaseException):
            self._state = _ENDING
        if inbox is None:
            inbox = self._inbox = deque()
        inbox.append(item)
        if type(item) is str or item is None:
            # A binary message counts too (kept as None, it is answered with an error
            # each): a flood of tiny ones must stop reading as text does.
            self._queued += (0 if item is None else len(item)) + _MESSAGE_OVERHEAD
            if self._queued > _INBOX_LIMIT and not self._reading_held:
                self._reading_held = True
                if self._transport is not None:
                    self._transport.pause_reading()
        if self._serving and self._task is None:
            self._task = asyncio.create_task(self._serve())

    async def _serve(self, rest: Awaitable[None] | None = None) -> None:
        """Handle the messages waiting, in order (``rest``: what is left of the one
        handled in the callback, first); once the connection is gone and none is left,
        its end."""
        # The task runs in the transport's context: its log lines (and those of the
        # tasks it starts) name the charger like the handler's did.
        logs.charger_id.set(self.charger_id)
        try:
            if rest is not None:
                await self._finish(rest)
            while inbox := self._inbox:
                item = inbox.popleft()
                if type(item) is str:
                    self._dequeued(len(item))
                    await self._handle(item)
                elif item is None:
                    self._dequeued(0)
                    await self._handle(None)
                elif type(item) is int:
                    self._answer_close(item)
                elif isinstance(item, BaseException):
                    self._protocol_error(item)
            # No await between the emptiness check above and the end of the task: a
            # message that arrives later starts another one. The empty deque is dropped
            # (0.6 kB per idle charger).
            self._inbox = None
            if self._state >= _CLOSING and not self._ended:
                self._ended = True
                await self._owner.socket_ended(self)
        finally:
            self._task = None

    def _ending(self) -> None:
        # A close started or the connection is gone: its end is handled once the messages
        # before are (by the task handling them, if one runs).
        if self._serving and self._task is None and not self._ended:
            self._task = asyncio.create_task(self._serve())

    def _handle_now(self, text: str) -> None:
        """A text message, in the transport's callback: what the connection leaves to
        await (an error frame to send, say) is awaited by a task, which then handles the
        messages that came meanwhile."""
        conn = self.conn
        if conn is None:
            return  # the connection is being refused
        # Log lines of the message, and the tasks it starts (the connection's worker),
        # name the charger; the callback's context is left as it was.
        token = logs.charger_id.set(self.charger_id)
        try:
            rest = conn.receive(text)
            if rest is not None:
                self._task = asyncio.create_task(self._serve(rest))
        except Exception:
            self._failed()
        finally:
            logs.charger_id.reset(token)

    async def _handle(self, text: str | None) -> None:
        # Messages that came before a close (ours, or the connection's loss) are still
        # handled, as the receive loop did; their answers may find the connection gone.
        conn = self.conn
        if conn is None:
            return  # the connection is being refused
        try:
            rest = conn.refuse_binary() if text is None else conn.receive(text)
        except Exception:
            self._failed()
            return
        if rest is not None:
            await self._finish(rest)

    async def _finish(self, rest: Awaitable[None]) -> None:
        """Await what the connection left of a message (its answer, typically)."""
        try:
            await rest
        except ConnectionError:
            # Its answer found the connection gone: the next messages are still handled.
            log.info("charger %s: connection gone before an answer could be sent", self.charger_id)
        except Exception:
            self._failed()

    def _failed(self) -> None:
        """A message could not be handled (a bug): logged, and the connection closed."""
        log.exception("charger %s: a message could not be handled; closing", self.charger_id)
        if self._inbox is not None:
            self._inbox.clear()
        self._queued = 0
        if self._state < _CLOSING:
            self._send_close(WSCloseCode.INTERNAL_ERROR, b"")
            self._drop()

    def _dequeued(self, size: int) -> None:
        self._queued -= size + _MESSAGE_OVERHEAD
        if self._reading_held and self._queued <= _INBOX_LIMIT // 2:
            self._reading_held = False
            if self._transport is not None and self._state < _CLOSING:
                self._transport.resume_reading()

    def _answer_close(self, code: int) -> None:
        """The peer's CLOSE: answered with its code, then the connection is closed."""
        if self._state >= _CLOSING:
            return
        self._send_close(code if code in _SENDABLE else WSCloseCode.OK, b"")
        self._drop()

    def _protocol_error(self, exc: BaseException) -> None:
        self.reason = f"websocket error: {exc}"
        if self._state >= _CLOSING:
            return
        code = exc.code if isinstance(exc, WebSocketError) else WSCloseCode.INTERNAL_ERROR
        log.info("charger %s: closing (%s): %s", self.charger_id, code, exc)
        self._send_close(code, b"")
        # aiohttp closed at once too: the parser cannot read the peer's answer.
        self._drop()

    def _send_close(self, code: int, message: bytes) -> None:
        self._state = _CLOSING
        transport = self._transport
        if transport is not None and not transport.is_closing():
            _write(transport, _OP_CLOSE, _CLOSE_CODE(code) + message)
        self._arm_abort()
        self._ending()

    def _drop(self) -> None:
        """Close the transport (what was written is flushed first, within the bound)."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        self._arm_abort()

    def _arm_abort(self) -> None:
        if self._abort_handle is None and self._transport is not None:
            loop = asyncio.get_running_loop()
            self._abort_handle = loop.call_later(self._owner.close_timeout, self._abort)

    def _abort(self) -> None:
        # The charger did not answer our CLOSE (or does not read what was written).
        self._abort_handle = None
        if self._transport is not None:
            log.info("charger %s: no close from the charger; connection aborted", self.charger_id)
            self._transport.abort()

    async def _drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        # Shielded: a sender cancelled while it waits must not cancel the others' wait.
        await asyncio.shield(waiter)
        if self._state == _LOST:
            raise ConnectionResetError("Connection lost")

    def _wake_writers(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)


def _write(transport: asyncio.Transport, opcode: int, payload: bytes | bytearray) -> None:
    """One unmasked frame (a server's, RFC 6455 5.1), never fragmented."""
    length = len(payload)
    if length < 126:
        header = _HEAD_7(_FIN | opcode, length)
    elif length < 65536:
        header = _HEAD_16(_FIN | opcode, 126, length)
    else:
        header = _HEAD_64(_FIN | opcode, 127, length)
    if length < _JOIN_BELOW:
        transport.write(header + payload)
    else:
        transport.writelines((header, payload))
