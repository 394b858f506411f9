"""A TCP proxy in front of the test Redis whose connections a test can cut.

Storage outages without touching the shared Redis server (other tests use it):
point the store or the gateway at :attr:`RedisProxy.url` and

- :meth:`kill` closes every connection through the proxy (as ``CLIENT KILL`` would),
  new ones are welcome;
- :meth:`cut` closes them and refuses new ones (accepted, then closed at once, as a
  server that is down behind a load balancer) until :meth:`restore`;
- :meth:`blackhole` keeps new connections open without ever answering (a server
  that hangs) until :meth:`restore`;
- with :attr:`drop_replies` set, whatever Redis answers is thrown away
  (:attr:`dropped` counts the bytes): a command was applied but its answer is lost,
  the case where sending it again must not apply it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class RedisProxy:
    def __init__(self, redis_url: str) -> None:
        target = urlsplit(redis_url)
        self._host = target.hostname or "127.0.0.1"
        self._port = target.port or 6379
        self._path = target.path  # the database, e.g. "/15"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.mode = "forward"  # or "refuse", "blackhole"
        self.drop_replies = False
        self.dropped = 0
        self.accepted = 0
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}{self._path}"

    # -- what a test does -------------------------------------------------------------

    def kill(self) -> None:
        """Close every connection through the proxy now."""
        for writer in list(self._writers):
            writer.transport.abort()

    def cut(self) -> None:
        """Close every connection and refuse new ones until restore()."""
        self.mode = "refuse"
        self.kill()

    def blackhole(self) -> None:
        """Close every connection; new ones hang without an answer until restore()."""
        self.mode = "blackhole"
        self.kill()

    def restore(self) -> None:
        self.mode = "forward"
        self.kill()  # the hanging ones

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.kill()  # each connection's task then ends on its own
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- the proxy --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            if self.mode == "refuse":
                return
            if self.mode == "blackhole":
                await reader.read()  # until the client or kill() closes it
                return
            up_reader, upstream = await asyncio.open_connection(self._host, self._port)
            self._writers.add(upstream)
            await asyncio.gather(
                self._pump(reader, upstream, replies=False),
                self._pump(up_reader, writer, replies=True),
                return_exceptions=True,  # a reset connection: the end of it, nothing more
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for end in (writer, upstream):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, replies: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if replies and self.drop_replies:
                    self.dropped += len(data)
                    continue
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()  # one side closed: close the other one too
            with contextlib.suppress(Exception):
                await writer.wait_closed()
