"""A lean HTTP/1.1 client for the hub's forwarding (:class:`ocpi.hub.forward.Forwarder`).

Imports the standard library, yarl, multidict and aiohappyeyeballs (aiohttp's own); nothing
of ``gateway``.

Why not aiohttp's client, which the rest of the OCPI client uses: a forwarded request is one
small exchange with a platform the hub calls over and over, and aiohttp's client spent more
of the hub's CPU on it (request and response objects, its payload and tracing machinery,
timers, a stream reader) than the routing itself: about a quarter of a forward's event-loop
time (``tests/bench/README.md``, bench_hub). This client does only what forwarding needs:

- connections kept alive per origin (scheme, host, port), ``http`` and ``https`` (by
  default verified as aiohttp verifies them, :func:`default_tls_context`), the most
  recently used taken first, an idle one closed after ``keepalive`` seconds, ``limit``
  requests in flight at most (then they wait); no cookies kept (OCPI has none);
- one request at a time per connection, written in one ``write`` with its
  ``Content-Length``;
- the response framed as RFC 9112 section 6.3 says: no body (HEAD, 1xx, 204, 304),
  ``Transfer-Encoding: chunked``, ``Content-Length``, else read until the server closes;
  interim 1xx responses skipped; a body larger than ``max_body`` refused before it is read
  in full; ``gzip`` and ``deflate`` content codings decoded (the only ones asked for);
- a connection reused only when the response was complete, framed, HTTP/1.1 and not
  ``Connection: close``; a reused connection that the server had closed meanwhile (no byte
  of the answer came back) is retried once on a new one for an idempotent method (RFC 9112
  section 9.3.1), as aiohttp does.

Errors are :class:`HttpClientError`, a :class:`ConnectionError` (an ``OSError``), so that the
forwarder's handling of unreachable receivers covers them; an answer too large is
:class:`ResponseTooLargeError`. There is no timer here: the caller bounds each exchange
(``asyncio.timeout``), and a cancelled exchange closes its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import aiohappyeyeballs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

__all__ = [
    "Http1Client",
    "HttpClientError",
    "HttpProtocolError",
    "Response",
    "ResponseTooLargeError",
    "ServerDisconnectedError",
    "default_tls_context",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 section 9.2.2: retried once after a keep-alive connection closed under them."""

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before the next address of a name is tried alongside (aiohttp's default)."""

MAX_HEAD = 64 * 1024
"""Bytes of status line and headers accepted (aiohttp's limit is 8 kB per line)."""

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NO_BODY_STATUSES = frozenset({204, 304})


class HttpClientError(ConnectionError):
    """The exchange failed: no connection, a connection lost, an answer that is not HTTP."""


class ServerDisconnectedError(HttpClientError):
    """The server closed the connection before the answer was complete."""


class HttpProtocolError(HttpClientError):
    """The server's answer breaks HTTP/1.1 framing."""


class ResponseTooLargeError(HttpClientError):
    """The answer's body exceeds the caller's bound."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


Origin = tuple[str, str, int]


class Http1Client:
    """Keep-alive HTTP/1.1 requests; see the module doc. ``clock`` (monotonic seconds)
    dates idle connections."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = 100,
        keepalive: float = 15.0,
        max_idle_per_origin: int = 32,
        user_agent: str = "ocpi-gateway",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(limit)
        self.keepalive = keepalive
        self.max_idle_per_origin = max_idle_per_origin
        self._user_agent = user_agent
        self._clock = clock
        self._idle: dict[Origin, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._closed = False

    @property
    def idle_connections(self) -> int:
        return sum(len(conns) for conns in self._idle.values())

    @property
    def open_connections(self) -> int:
        return self.idle_connections + len(self._busy)

    async def __aenter__(self) -> Http1Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes every connection; requests after this fail."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        # The transports' connection_lost callbacks run on the next iterations.
        await asyncio.sleep(0)

    async def request(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        max_body: int = 64 * 1024 * 1024,
    ) -> Response:
        """One exchange: ``method`` (upper case) to ``url`` (absolute, http or https)
        with ``headers`` (``Host``, ``Content-Length`` and ``User-Agent`` are set here)."""
        if self._closed:
            raise HttpClientError("the HTTP client is closed")
        origin, payload = self._encode(method, url, headers, body)
        async with self._slots:
            retry = method in IDEMPOTENT_METHODS
            fresh = False
            while True:
                # The retry goes on a new connection: the other idle ones may have been
                # closed by the same server at the same time.
                conn = None if fresh else self._take(origin)
                if conn is None:
                    conn = await self._connect(origin)
                    retry = False
                self._busy.add(conn)
                try:
                    conn.write(payload)
                    response = await conn.read_response(method, max_body)
                except _NothingBack:
                    conn.close()
                    if retry:
                        retry, fresh = False, True
                        continue
                    raise ServerDisconnectedError(
                        f"the server closed the connection without answering ({method} {url})"
                    ) from None
                except BaseException:
                    conn.close()
                    raise
                finally:
                    self._busy.discard(conn)
                if conn.reusable:
                    self._give_back(origin, conn)
                else:
                    conn.close()
                return response

    # -- connections ----------------------------------------------------------------

    def _take(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        horizon = self._clock() - self.keepalive
        while conns:
            conn = conns.pop()
            if conn.alive and conn.idle_since >= horizon:
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        now = self._clock()
        conn.idle_since = now
        conns = self._idle.setdefault(origin, [])
        # The least recently used sit at the front: closed once expired (or when too many),
        # so that a burst's extra connections do not stay open for good.
        horizon = now - self.keepalive
        while conns and (len(conns) >= self.max_idle_per_origin or conns[0].idle_since < horizon):
            conns.pop(0).close()
        conns.append(conn)

    def _forget(self, conn: _Connection) -> None:
        """A connection closed by the server while idle leaves the pool at once."""
        conns = self._idle.get(conn.origin)
        if conns is not None and conn in conns:
            conns.remove(conn)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                # Loading the system's CA store is blocking I/O (about 20 ms): in a thread.
                self._ssl = await asyncio.to_thread(default_tls_context)
            context = self._ssl
        name = host.strip("[]")
        try:
            # As aiohttp connects: every address of the name tried, IPv6 and IPv4
            # interleaved, a next one started 0.25 s after the last (RFC 8305), so that
            # an unreachable address does not hold the exchange until its deadline.
            infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            sock = await aiohappyeyeballs.start_connection(
                infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop
            )
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    sock=sock,
                    ssl=context,
                    server_hostname=name if context is not None else None,
                )
            except BaseException:
                sock.close()
                raise
        except (OSError, ssl.SSLError) as exc:
            raise HttpClientError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    # -- the request ----------------------------------------------------------------

    def _encode(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[Origin, bytes]:
        scheme = url.scheme
        host = url.raw_host
        if scheme not in ("http", "https") or not host:
            raise HttpClientError(f"not an http(s) URL: {url}")
        port = url.port or (443 if scheme == "https" else 80)
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        authority = host if url.explicit_port is None else f"{host}:{port}"
        lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1", f"Host: {authority}"]
        for name, value in headers.items():
            if _unsafe(name) or _unsafe(value):
                raise HttpClientError(f"header {name!r}: line breaks are not allowed")
            lines.append(f"{name}: {value}")
        lines.append(f"User-Agent: {self._user_agent}")
        lines.append("Accept-Encoding: gzip, deflate")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method in _BODY_METHODS:
            lines.append("Content-Length: 0")
        lines.append("\r\n")
        head = "\r\n".join(lines).encode("utf-8")
        return (scheme, host, port), head + body if body else head


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


class _NothingBack(Exception):
    """The connection closed before any byte of the answer: may be retried."""


class _Connection(asyncio.Protocol):
    """One connection: bytes in a buffer, one waiter for more."""

    def __init__(self, client: Http1Client, origin: Origin) -> None:
        self._client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._error: BaseException | None = None
        self._reading = False
        self.reusable = False
        self.idle_since = 0.0

    @property
    def alive(self) -> bool:
        return self.transport is not None and not self._eof and not self.transport.is_closing()

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same methods.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Each request is one write and waits for its answer: no Nagle delay.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            # Bytes while no request is out: the connection cannot be trusted again.
            self._eof = True
            self.close()
            return
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        self._client._forget(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- use ---------------------------------------------------------------------------

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def write(self, payload: bytes) -> None:
        assert self.transport is not None
        self.reusable = False
        self._reading = True
        self._buffer.clear()
        self.transport.write(payload)

    async def _more(self, started: bool) -> None:
        """Waits for more bytes; the connection's end is :class:`_NothingBack` before any
        byte of the answer (``started`` False), else :class:`ServerDisconnectedError`."""
        if self._eof:
            if not started:
                raise _NothingBack
            raise ServerDisconnectedError("the server closed the connection mid-answer")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter  # the caller looks at the buffer, then calls again
        finally:
            self._waiter = None

    async def read_response(self, method: str, max_body: int) -> Response:
        started = False
        while True:
            status, version, headers = await self._read_head(started)
            started = True
            if 100 <= status < 200 and status != 101:
                continue  # interim (100 Continue, 103 Early Hints): the final one follows
            break
        keep = version == "HTTP/1.1" and not _has_token(headers.getall("Connection", ()), "close")
        body: bytes
        if method == "HEAD" or status in _NO_BODY_STATUSES or 100 <= status < 200:
            body = b""
        elif "Transfer-Encoding" in headers:
            if "Content-Length" in headers:
                # RFC 9112 section 6.3: Transfer-Encoding overrides it, and the message
                # "ought to be handled as an error": read, the connection not reused.
                keep = False
            codings = [
                c.strip().lower()
                for value in headers.getall("Transfer-Encoding")
                for c in value.split(",")
            ]
            if codings and codings[-1] == "chunked":
                body = await self._read_chunked(max_body)
            else:  # RFC 9112 section 6.3: not chunked last, the body runs to the close
                keep = False
                body = await self._read_to_close(max_body)
        elif "Content-Length" in headers:
            length = _content_length(headers.getall("Content-Length"))
            if length > max_body:
                raise ResponseTooLargeError(f"the answer announces {length} bytes")
            while len(self._buffer) < length:
                await self._more(True)
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
        else:
            keep = False
            body = await self._read_to_close(max_body)
        coding = headers.get("Content-Encoding", "").strip().lower()
        if coding and coding != "identity":
            body = _decode(coding, body, max_body)
        self._reading = False
        # Bytes beyond the answer: the server is out of step, the connection not reused.
        self.reusable = keep and not self._buffer and self.alive
        return Response(status, CIMultiDictProxy(headers), body)

    async def _read_head(self, started: bool) -> tuple[int, str, CIMultiDict[str]]:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            # A head that arrives whole is bounded too (not only one still coming in): the
            # limit must not depend on how the bytes were segmented.
            if end > MAX_HEAD or (end < 0 and len(self._buffer) > MAX_HEAD):
                raise HttpProtocolError(f"the answer's head exceeds {MAX_HEAD} bytes")
            if end >= 0:
                break
            await self._more(started or bool(self._buffer))
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        version = parts[0].decode("latin-1")
        if (
            len(parts) < 2
            or version not in ("HTTP/1.1", "HTTP/1.0")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise HttpProtocolError(f"not an HTTP/1.1 status line: {lines[0][:100]!r}")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise HttpProtocolError(f"not a header line: {line[:100]!r}")
            headers.add(
                name.decode("latin-1"), value.strip(b" \t").decode("utf-8", "surrogateescape")
            )
        return int(parts[1]), version, headers

    async def _read_chunked(self, max_body: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            while (end := self._buffer.find(b"\r\n")) < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise HttpProtocolError("a chunk size line is too long")
                await self._more(True)
            size_text = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
            del self._buffer[: end + 2]
            try:
                length = int(size_text, 16)
            except ValueError:
                raise HttpProtocolError(f"not a chunk size: {size_text[:20]!r}") from None
            if length < 0 or not size_text.isalnum():
                raise HttpProtocolError(f"not a chunk size: {size_text[:20]!r}")
            if length == 0:
                break
            size += length
            if size > max_body:
                raise ResponseTooLargeError(f"the answer exceeds {max_body} bytes")
            while len(self._buffer) < length + 2:
                await self._more(True)
            if self._buffer[length : length + 2] != b"\r\n":
                raise HttpProtocolError("a chunk does not end with CRLF")
            chunks.append(bytes(self._buffer[:length]))
            del self._buffer[: length + 2]
        # Trailer fields, up to the empty line (ignored).
        while True:
            while (end := self._buffer.find(b"\r\n")) < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise HttpProtocolError("the trailer is too long")
                await self._more(True)
            del self._buffer[: end + 2]
            if end == 0:
                return b"".join(chunks)

    async def _read_to_close(self, max_body: int) -> bytes:
        while not self._eof:
            if len(self._buffer) > max_body:
                raise ResponseTooLargeError(f"the answer exceeds {max_body} bytes")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if len(self._buffer) > max_body:
            raise ResponseTooLargeError(f"the answer exceeds {max_body} bytes")
        if self._error is not None:
            # Reset rather than closed: the end of the body is not known to be its end.
            raise ServerDisconnectedError(f"the connection was lost mid-answer: {self._error}")
        body = bytes(self._buffer)
        self._buffer.clear()
        return body


def default_tls_context() -> ssl.SSLContext:
    """What aiohttp's client verifies https with by default: the system's CA store,
    host names checked, ALPN offering HTTP/1.1 only."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _has_token(values: Iterable[str], token: str) -> bool:
    return any(token == part.strip().lower() for value in values for part in value.split(","))


def _content_length(values: list[str]) -> int:
    """RFC 9110 section 8.6: one value (or the same repeated), digits only."""
    parts = {p.strip() for value in values for p in value.split(",")}
    if len(parts) != 1:
        raise HttpProtocolError(f"conflicting Content-Length: {values!r}")
    (text,) = parts
    if not text.isdigit() or not text.isascii():
        raise HttpProtocolError(f"not a Content-Length: {text[:20]!r}")
    return int(text)


def _decode(coding: str, body: bytes, max_body: int) -> bytes:
    if coding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        # RFC 9110 section 8.4.1.2: the zlib format; raw deflate, which some servers
        # send, is accepted too (as aiohttp does).
        is_zlib = len(body) >= 2 and (body[0] & 0x0F) == 8 and (body[0] << 8 | body[1]) % 31 == 0
        decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS)
    else:
        raise HttpProtocolError(f"content coding {coding!r} was not asked for")
    try:
        out = decoder.decompress(body, max_body + 1)
    except zlib.error as exc:
        raise HttpProtocolError(f"the {coding} body cannot be decoded: {exc}") from None
    if len(out) > max_body:
        raise ResponseTooLargeError(f"the decoded answer exceeds {max_body} bytes")
    return out
