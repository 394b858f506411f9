"""The chargers' WebSocket after the handshake (gateway.csms.wsproto, issue 15).

First the socket alone, fed bytes as a transport would and answering on a fake one;
then through a real gateway, with a raw client that writes its own frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import weakref
from collections.abc import Awaitable
from typing import Any

import aiohttp
import pytest

from gateway import logs
from gateway.csms.endpoint import OcppEndpoint
from gateway.csms.wsproto import ChargerSocket
from tests.conftest import Gateway
from tests.sim import boot, connect

TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A client's frame: masked (RFC 6455 5.3)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = b"\x5a\x13\xc7\x88"  # fixed: parametrized ids are the same in every worker
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(data: str) -> bytes:
    return frame(TEXT, data.encode())


def close_frame(code: int | None = None, reason: bytes = b"") -> bytes:
    return frame(CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


def parse(data: bytes) -> list[tuple[int, bytes]]:
    """The server's frames (unmasked, never fragmented) in ``data``."""
    frames = []
    while data:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        assert data[0] & 0x80 and not data[1] & 0x80  # FIN, no mask
        start = 2
        if n == 126:
            n, start = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, start = struct.unpack("!Q", data[2:10])[0], 10
        frames.append((opcode, bytes(data[start : start + n])))
        data = data[start + n :]
    return frames


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0])


# -- the socket alone --------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.events: list[str] = []
        self.closing = False
        self.sock: ChargerSocket | None = None

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.out += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")

    def close(self) -> None:
        self._end("close")

    def abort(self) -> None:
        self._end("abort")

    def _end(self, how: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.events.append(how)
        assert self.sock is not None
        asyncio.get_running_loop().call_soon(self.sock.connection_lost, None)

    def frames(self) -> list[tuple[int, bytes]]:
        frames = parse(bytes(self.out))
        self.out.clear()
        return frames


class FakeOwner:
    def __init__(self) -> None:
        self.close_timeout = 5.0
        self.ended: list[str] = []
        self.done = asyncio.Event()

    async def socket_ended(self, sock: ChargerSocket) -> None:
        self.ended.append(sock.reason)
        sock.conn = None
        self.done.set()


class FakeConn:
    """Records what it gets; answers each text message with ``answer:<text>``."""

    charger_id = "CP-1"

    def __init__(self, sock: ChargerSocket, delay: float = 0.0) -> None:
        self.sock = sock
        self.delay = delay
        self.got: list[str | None] = []

    def receive(self, raw: str) -> Awaitable[None] | None:
        # As OcppConnection.receive: taken at once, the answer left to await.
        self.got.append(raw)
        return self._answer(raw)

    async def _answer(self, raw: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.sock.send_str(f"answer:{raw}")

    async def refuse_binary(self) -> None:
        self.got.append(None)


def make(max_msg_size: int = 1001, *, serve: bool = True) -> tuple[ChargerSocket, FakeTransport, FakeOwner, FakeConn]:
    transport, owner = FakeTransport(), FakeOwner()
    sock = ChargerSocket(transport, owner, "CP-1", max_msg_size=max_msg_size, address=None)  # type: ignore[arg-type]
    transport.sock = sock
    conn = FakeConn(sock)
    sock.start(b"")
    if serve:
        sock.serve(conn)  # type: ignore[arg-type]
    return sock, transport, owner, conn


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_messages_are_handled_in_order_and_no_task_is_left() -> None:
    sock, transport, _, conn = make()
    sock.data_received(text("a") + frame(BINARY, b"\x00") + text("b"))
    await settle()
    assert conn.got == ["a", None, "b"]
    assert transport.frames() == [(TEXT, b"answer:a"), (TEXT, b"answer:b")]
    # An idle socket holds no task and no queue.
    assert sock.task is None
    assert sock._inbox is None
    assert not sock.closed


class TakenAtOnce(FakeConn):
    """A connection that needs nothing awaited for some messages (a CALL it queues, an
    answer it hands over): ``receive`` returns None for those not starting with ``!``,
    and records the charger its log lines would name."""

    def __init__(self, sock: ChargerSocket) -> None:
        super().__init__(sock)
        self.named: list[str | None] = []

    def receive(self, raw: str) -> Awaitable[None] | None:
        self.got.append(raw)
        self.named.append(logs.charger_id.get())
        return self._answer(raw) if raw.startswith("!") else None


async def test_a_message_nothing_waits_before_is_taken_in_the_callback_without_a_task() -> None:
    sock, transport, _, _ = make(serve=False)
    conn = TakenAtOnce(sock)
    sock.serve(conn)  # type: ignore[arg-type]
    sock.data_received(text("a"))
    # Taken during data_received itself: no task was started, none is left.
    assert conn.got == ["a"]
    assert sock.task is None and sock._inbox is None
    # Named in the log lines of the message; the callback's own context is as it was.
    assert conn.named == ["CP-1"]
    assert logs.charger_id.get() is None
    # A message whose answer must be awaited holds back the ones after it: they wait
    # in the inbox and are taken, in order, once the answer is out.
    sock.data_received(text("!b") + text("c") + text("!d") + text("e"))
    assert conn.got == ["a", "!b"]
    assert sock.task is not None
    await settle()
    assert conn.got == ["a", "!b", "c", "!d", "e"]
    assert transport.frames() == [(TEXT, b"answer:!b"), (TEXT, b"answer:!d")]
    assert sock.task is None and sock._inbox is None
    # Back to the callback once nothing waits.
    sock.data_received(text("f"))
    assert conn.got[-1] == "f" and sock.task is None


async def test_messages_before_the_connection_is_served_wait_and_keep_their_order() -> None:
    sock, _, _, _ = make(serve=False)
    conn = TakenAtOnce(sock)
    sock.data_received(text("a") + text("b"))
    assert conn.got == []
    sock.serve(conn)  # type: ignore[arg-type]
    # The waiting ones are taken by a task; one arriving meanwhile queues behind them.
    sock.data_received(text("c"))
    assert conn.got == []
    await settle()
    assert conn.got == ["a", "b", "c"]
    assert sock.task is None


async def test_a_fragmented_message_with_a_ping_between_its_fragments() -> None:
    sock, transport, _, conn = make()
    middle = frame(CONT, b'"x",', fin=False)
    sock.data_received(frame(TEXT, b"[2,", fin=False) + middle[:3])
    sock.data_received(middle[3:] + frame(PING, b"hi"))
    assert transport.frames() == [(PONG, b"hi")]  # answered at once
    sock.data_received(frame(CONT, b"{}]"))
    await settle()
    assert conn.got == ['[2,"x",{}]']


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(text("x" * 1001), 1009, id="too-big"),  # the limit: max_msg_size - 1
        pytest.param(frame(TEXT, b"\xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(frame(TEXT, b"x", rsv=4), 1002, id="reserved-bit"),
        pytest.param(frame(CONT, b"x"), 1002, id="lone-continuation"),
        pytest.param(frame(PING, b"x", fin=False), 1002, id="fragmented-ping"),
        pytest.param(close_frame(1005), 1002, id="close-code-1005"),
        pytest.param(frame(0x3, b""), 1002, id="unknown-opcode"),
    ],
)
async def test_protocol_errors_close_with_aiohttps_codes(data: bytes, code: int) -> None:
    sock, transport, owner, conn = make()
    sock.data_received(text("before") + data + text("after"))
    await asyncio.wait_for(owner.done.wait(), 5)
    await settle()
    frames = transport.frames()
    # What came before the bad frame is answered, then the close; nothing after.
    assert frames[0] == (TEXT, b"answer:before")
    assert frames[1][0] == CLOSE and close_code(frames[1][1]) == code
    assert len(frames) == 2
    assert conn.got == ["before"]
    assert transport.events == ["close"]
    assert owner.ended[0].startswith("websocket error: ")


async def test_a_message_of_exactly_the_limit_is_handled() -> None:
    sock, _, _, conn = make()
    sock.data_received(text("x" * 1000))
    await settle()
    assert conn.got == ["x" * 1000]


@pytest.mark.parametrize(("code", "answer"), [(1000, 1000), (1001, 1001), (4001, 4001), (None, 1000)])
async def test_the_peers_close_is_answered_with_its_code(code: int | None, answer: int) -> None:
    sock, transport, owner, _ = make()
    sock.data_received(close_frame(code, b"bye"))
    assert transport.frames() == [(CLOSE, struct.pack("!H", answer))]
    assert transport.events == ["close"]
    assert sock.closed
    await asyncio.wait_for(owner.done.wait(), 5)
    assert owner.ended == ["connection closed"]
    with pytest.raises(ConnectionResetError):
        await sock.send_str("late")


async def test_answers_to_messages_before_the_peers_close_go_out_before_its_answer() -> None:
    sock, transport, owner, conn = make()
    conn.delay = 0.05
    sock.data_received(text("a") + text("b") + close_frame(1000) + text("after the close"))
    await asyncio.wait_for(owner.done.wait(), 5)
    assert transport.frames() == [(TEXT, b"answer:a"), (TEXT, b"answer:b"), (CLOSE, struct.pack("!H", 1000))]
    assert conn.got == ["a", "b"]


async def test_our_close_waits_for_the_peers_then_closes() -> None:
    sock, transport, owner, _ = make()
    assert await sock.close(code=1001, message=b"going")
    assert not await sock.close(code=1000)
    assert transport.frames() == [(CLOSE, struct.pack("!H", 1001) + b"going")]
    # The connection's end is handled at once; the TCP connection waits for the answer.
    await asyncio.wait_for(owner.done.wait(), 5)
    assert transport.events == []
    sock.data_received(text("ignored") + close_frame(1001))
    assert transport.events == ["close"]
    assert transport.frames() == []


async def test_a_peer_that_does_not_answer_our_close_is_aborted() -> None:
    sock, transport, owner, _ = make()
    owner.close_timeout = 0.05
    await sock.close(code=1000)
    await asyncio.sleep(0.2)
    assert transport.events == ["abort"]
    assert owner.ended == ["connection closed"]


async def test_messages_received_before_the_connection_is_lost_are_handled_first() -> None:
    sock, _, owner, conn = make()
    conn.delay = 0.02
    sock.data_received(text("a") + text("b"))
    sock.connection_lost(None)
    await asyncio.wait_for(owner.done.wait(), 5)
    assert conn.got == ["a", "b"]
    assert sock.task is None


async def test_messages_wait_until_the_connection_is_registered() -> None:
    sock, transport, owner, conn = make(serve=False)
    sock.data_received(text("a") + frame(PING) + close_frame(1000))
    await settle()
    # The ping is answered, the rest waits: nothing handled, the close not answered.
    assert transport.frames() == [(PONG, b"")]
    assert conn.got == []
    sock.serve(conn)  # type: ignore[arg-type]
    await asyncio.wait_for(owner.done.wait(), 5)
    assert conn.got == ["a"]
    assert transport.frames() == [(TEXT, b"answer:a"), (CLOSE, struct.pack("!H", 1000))]


async def test_bytes_before_the_handshake_is_written_are_parsed_after_the_tail() -> None:
    transport, owner = FakeTransport(), FakeOwner()
    sock = ChargerSocket(transport, owner, "CP-1", max_msg_size=1001, address=None)  # type: ignore[arg-type]
    transport.sock = sock
    conn = FakeConn(sock)
    whole = text("tail") + text("early")
    cut = len(text("tail")) + 3
    sock.data_received(whole[cut:])
    assert transport.out == b""  # nothing is written before the 101 answer
    sock.start(whole[:cut])
    sock.serve(conn)  # type: ignore[arg-type]
    await settle()
    assert conn.got == ["tail", "early"]


async def test_a_flood_pauses_reading_until_half_is_handled() -> None:
    sock, transport, _, conn = make(max_msg_size=70_000, serve=False)
    big = text("x" * 60_000)
    sock.data_received(big + big)
    assert transport.events == []
    sock.data_received(big)
    assert transport.events == ["pause"]
    sock.serve(conn)  # type: ignore[arg-type]
    await settle()
    assert len(conn.got) == 3
    assert transport.events == ["pause", "resume"]


async def test_a_flood_of_binary_messages_pauses_reading_too() -> None:
    sock, transport, _, conn = make(serve=False)
    tiny = frame(BINARY, b"\x00")
    # Each is refused with an error; none carries text, but each waits in the inbox.
    sock.data_received(tiny * 1000)
    assert transport.events == []
    sock.data_received(tiny * 100)
    assert transport.events == ["pause"]
    sock.serve(conn)  # type: ignore[arg-type]
    await settle()
    assert conn.got == [None] * 1100
    assert transport.events == ["pause", "resume"]


async def test_sends_wait_while_the_transport_is_paused() -> None:
    sock, _, _, _ = make()
    sock.pause_writing()
    first = asyncio.ensure_future(sock.send_str("1"))
    second = asyncio.ensure_future(sock.send_str("2"))
    await settle()
    assert not first.done() and not second.done()
    # A sender cancelled while it waits does not fail the others.
    first.cancel()
    await settle()
    assert not second.done()
    sock.resume_writing()
    await asyncio.wait_for(second, 1)
    sock.pause_writing()
    third = asyncio.ensure_future(sock.send_str("3"))
    await settle()
    sock.connection_lost(None)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(third, 1)


@pytest.mark.parametrize("when", ["at-once", "awaited"])
async def test_a_message_the_connection_fails_on_closes_with_1011(when: str) -> None:
    sock, transport, owner, conn = make()

    async def fails_later() -> None:
        raise RuntimeError("bug")

    def fails(raw: str) -> Awaitable[None] | None:
        if when == "at-once":
            raise RuntimeError("bug")
        return fails_later()

    conn.receive = fails  # type: ignore[method-assign]
    sock.data_received(text("a") + text("b"))
    await asyncio.wait_for(owner.done.wait(), 5)
    assert transport.frames() == [(CLOSE, struct.pack("!H", 1011))]
    assert transport.events == ["close"]


# -- through a gateway -----------------------------------------------------------------


class RawCharger:
    """A charger that writes its own frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(
        cls, gw: Gateway, cp_id: str, *, with_handshake: bytes = b"", then: bytes = b""
    ) -> RawCharger:
        """Connect; ``with_handshake`` goes out with the request, ``then`` a moment later
        (both before the 101 answer is read)."""
        host, port = gw.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /ocpp/{cp_id} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n".encode()
            + with_handshake
        )
        if then:
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(then)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"Sec-WebSocket-Protocol: ocpp1.6" in head
        return cls(reader, writer)

    async def next(self, timeout: float = 5) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout):
            first, second = await self.reader.readexactly(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return first & 0x0F, await self.reader.readexactly(n)

    async def call(self, message: str) -> list[Any]:
        self.writer.write(text(message))
        opcode, payload = await self.next()
        assert opcode == TEXT, (opcode, payload)
        return list(json.loads(payload))

    async def eof(self, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionResetError):  # aborted
                assert await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


async def _register(gw: Gateway, cp_id: str) -> None:
    status, _ = await gw.admin("PUT", f"/chargers/{cp_id}", {})
    assert status == 201


async def _offline(gw: Gateway, cp_id: str) -> bool:
    for _ in range(250):
        if gw.csms.connection(cp_id) is None:
            state = await gw.store.charger_states.get(cp_id)
            if state is not None and not state.connected:
                return True
        await asyncio.sleep(0.02)
    return False


async def test_frames_written_with_the_handshake_are_answered(gateway: Gateway) -> None:
    await _register(gateway, "WS-TAIL")
    cp = await RawCharger.open(
        gateway, "WS-TAIL", with_handshake=text('[2,"1","Heartbeat",{}]') + frame(PING, b"p")
    )
    try:
        opcode, payload = await cp.next()
        answers = {opcode: payload}
        opcode, payload = await cp.next()
        answers[opcode] = payload
        assert answers[PONG] == b"p"
        assert json.loads(answers[TEXT])[:2] == [3, "1"]
        # Fragmented, with a ping between the fragments.
        cp.writer.write(
            frame(TEXT, b'[2,"2","Heart', fin=False) + frame(PING, b"q") + frame(CONT, b'beat",{}]')
        )
        assert await cp.next() == (PONG, b"q")
        opcode, payload = await cp.next()
        assert json.loads(payload)[:2] == [3, "2"]
        # A binary frame is refused, the connection stays.
        cp.writer.write(frame(BINARY, b"[]"))
        opcode, payload = await cp.next()
        assert json.loads(payload)[:2] == [4, "-1"]
        assert (await cp.call('[2,"3","Heartbeat",{}]'))[:2] == [3, "3"]
        # The charger closes: its code is echoed, then the TCP connection closes.
        cp.writer.write(close_frame(4000, b"bye"))
        assert await cp.next() == (CLOSE, struct.pack("!H", 4000))
        await cp.eof()
    finally:
        cp.close()
    assert await _offline(gateway, "WS-TAIL")


async def test_more_than_aiohttps_buffer_written_before_the_101_is_all_answered(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp stops reading once its read_bufsize (256 kB here) waits behind an upgrade
    # request (read after it, while the charger is admitted): the socket that takes the
    # connection over, and the tail, reads again. Binary frames: text ones over 128 kB
    # would have the socket pause and resume reading itself.
    admit = OcppEndpoint._admit

    async def slow(self: OcppEndpoint, *args: Any) -> bool:
        await asyncio.sleep(0.5)
        return await admit(self, *args)

    monkeypatch.setattr(OcppEndpoint, "_admit", slow)
    await _register(gateway, "WS-FLOOD")
    binary = [frame(BINARY, b"x" * 3000) for _ in range(100)]
    cp = await RawCharger.open(
        gateway,
        "WS-FLOOD",
        with_handshake=text('[2,"first","Heartbeat",{}]'),
        then=b"".join(binary) + text('[2,"last","Heartbeat",{}]'),
    )
    try:
        answers = [json.loads((await cp.next())[1])[:2] for _ in range(102)]
        # CALLs are answered by the connection's worker, binary frames at once.
        assert sorted(answers, key=str) == [[3, "first"], [3, "last"]] + [[4, "-1"]] * 100
    finally:
        cp.close()


async def test_a_frame_over_the_limit_closes_with_1009(gateway: Gateway) -> None:
    await _register(gateway, "WS-BIG")
    cp = await RawCharger.open(gateway, "WS-BIG")
    try:
        limit = gateway.settings.max_frame_bytes
        exact = '[2,"1","DataTransfer",{"vendorId":"v","data":"' + "x" * limit
        exact = exact[: limit - 3] + '"}]'
        assert len(exact) == limit
        assert (await cp.call(exact))[:2] == [3, "1"]
        cp.writer.write(text(exact + " "))
        opcode, payload = await cp.next()
        assert (opcode, close_code(payload)) == (CLOSE, 1009)
        await cp.eof()
    finally:
        cp.close()
    assert await _offline(gateway, "WS-BIG")


async def test_a_charger_that_does_not_answer_our_close_is_aborted(gateway: Gateway) -> None:
    await _register(gateway, "WS-MUTE")
    endpoint = _endpoint(gateway)
    endpoint.close_timeout = 0.3
    cp = await RawCharger.open(gateway, "WS-MUTE")
    try:
        assert (await cp.call('[2,"1","Heartbeat",{}]'))[:2] == [3, "1"]
        conn = gateway.csms.connection("WS-MUTE")
        assert conn is not None
        await conn.close(1000, "bye")
        opcode, payload = await cp.next()
        assert (opcode, close_code(payload), payload[2:]) == (CLOSE, 1000, b"bye")
        # Not answered: offline at once, the TCP connection aborted after close_timeout.
        assert await _offline(gateway, "WS-MUTE")
        started = asyncio.get_running_loop().time()
        await cp.eof()
        assert 0.1 < asyncio.get_running_loop().time() - started < 3
    finally:
        cp.close()


def _endpoint(gw: Gateway) -> OcppEndpoint:
    from gateway.app import ENDPOINT

    return gw.app[ENDPOINT]


async def test_aiohttps_request_and_tasks_are_freed_while_the_charger_stays(
    auto_gateway: Gateway, monkeypatch: pytest.MonkeyPatch, no_cyclic_gc: None
) -> None:
    """What an idle charger no longer holds: aiohttp's request, its HTTP protocol object
    (RequestHandler), the handler's task and the connection's task (start())."""
    refs: dict[str, weakref.ref[Any]] = {}
    upgrade = OcppEndpoint._upgrade

    async def spy(self: OcppEndpoint, request: Any, ws: Any, cp_id: str, address: str | None) -> ChargerSocket:
        refs["request"] = weakref.ref(request)
        # RequestHandler has no weak references: its queue of parsed requests, which it
        # alone holds, stands for it.
        refs["handler"] = weakref.ref(request.protocol._messages)
        refs["start task"] = weakref.ref(request.protocol._task_handler)
        refs["request task"] = weakref.ref(asyncio.current_task())  # type: ignore[arg-type]
        refs["response"] = weakref.ref(ws)
        return await upgrade(self, request, ws, cp_id, address)

    monkeypatch.setattr(OcppEndpoint, "_upgrade", spy)
    gateway = auto_gateway
    async with connect(gateway.ws_url, "WS-FREE", "1.6") as cp:
        await boot(cp, "1.6")
        for _ in range(250):
            if all(ref() is None for ref in refs.values()):
                break
            await asyncio.sleep(0.02)
        assert [name for name, ref in refs.items() if ref() is not None] == []
        # The connection is still up and answering.
        await boot(cp, "1.6")
        conn = gateway.csms.connection("WS-FREE")
        assert conn is not None and not conn.ws.closed
        del conn
    assert await _offline(gateway, "WS-FREE")


@pytest.fixture
async def auto_gateway(gateways: Any) -> Gateway:
    return await gateways.start(auto_register=True)  # type: ignore[no-any-return]


async def test_shutdown_closes_with_1001_and_records_the_ends_first(auto_gateway: Gateway) -> None:
    gateway = auto_gateway
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/WS-DOWN", protocols=("ocpp1.6",))
        await ws.send_str('[2,"1","Heartbeat",{}]')
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT
        await gateway.app.shutdown()
        # The end was recorded before shutdown returned (the store is still open).
        state = await gateway.store.charger_states.get("WS-DOWN")
        assert state is not None and not state.connected
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1001
        await ws.close()


async def test_a_handshake_aiohttp_refuses_is_answered_400_on_the_same_connection(
    gateway: Gateway,
) -> None:
    # The socket is the transport's protocol while aiohttp writes the 101: when aiohttp
    # refuses the handshake instead, the connection is its own again to answer.
    await _register(gateway, "WS-BADKEY")
    host, port = gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"GET /ocpp/WS-BADKEY HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 400"), head
    finally:
        writer.close()
    # Not connected, and the charger can connect properly.
    assert gateway.csms.connection("WS-BADKEY") is None
    cp = await RawCharger.open(gateway, "WS-BADKEY")
    try:
        assert (await cp.call('[2,"1","Heartbeat",{}]'))[:2] == [3, "1"]
    finally:
        cp.close()
