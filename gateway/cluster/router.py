"""The one command path to a charger, wherever its connection is.

Everything that calls a charger (admin commands, OCPI commands through the hosted CPO
or the hub, and whatever comes later) calls :meth:`CommandRouter.send`:

- the charger is connected to this process: the central system's own call;
- it is held by another process (the ownership registry says which): the command goes
  to that process's channel (Redis pub/sub), which makes the very same call and sends
  back the charger's answer or the domain error it raised; the caller gets exactly what
  a local call would have given (``CommandResult``, ``ChargerTimeout``,
  ``ChargerRejected``, ``CommandNotSupported``);
- held by nobody, or by a process that no longer listens (it died; its record is
  about to expire): ``ChargerNotConnected`` (409 in the admin API).

Timeouts: the holder's call has the charger's own call timeout; the caller waits that
plus ``ROUTE_MARGIN`` for the answer, then raises ``ChargerTimeout`` (the holder died
mid-call). A charger that moved between the lookup and the call is looked up once more.

Why pub/sub and not streams: a command is a synchronous request with a deadline, and
only the process holding the connection can carry it out. Pub/sub delivers at once to
that one process or tells the sender nobody listens (``PUBLISH`` answers 0), and a
command is never stored: a stream with a consumer group would keep a Reset or a remote
start that nobody took, to be carried out minutes later by a process that then holds
the charger, long after the caller was answered "timeout". Durability belongs to the
callers that need it (the OCPI command's result goes through the outbox).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway.cluster import wire
from gateway.cluster.node import ClusterNode
from gateway.cluster.ownership import ChargerRegistry
from gateway.csms.core import CentralSystem
from gateway.domain.clock import IdFactory
from gateway.domain.commands import Command, CommandResult
from gateway.domain.errors import ChargerNotConnected, ChargerTimeout, DomainError, Unavailable
from gateway.domain.models import ChargerState
from gateway.storage.base import ChargerStateStore

log = logging.getLogger(__name__)

COMMAND = "command"
RESULT = "result"
DESCRIBE = "describe"
UNREGISTER = "unregister"
REVOKED = "certificate_revoked"
# How long the admin view waits for the holder's notifications and requests.
DESCRIBE_TIMEOUT = 2.0
# Added to the charger's call timeout for the trip between processes and the holder's
# own work before and after the call (a storage write, a token lookup).
ROUTE_MARGIN = 5.0
# Chargers merged by live_states between two turns of the event loop (a whole fleet's,
# for the admin list, is tens of ms of work).
_STATES_PER_TURN = 1000


class _Moved(Exception):
    """The process asked did not hold the charger any more: look it up again."""


class CommandRouter:
    """The domain's ``CommandSender`` for every caller, local or routed."""

    def __init__(
        self,
        csms: CentralSystem,
        node: ClusterNode,
        registry: ChargerRegistry,
        states: ChargerStateStore,
        ids: IdFactory,
        call_timeout: float,
    ) -> None:
        self._csms = csms
        self._node = node
        self._registry = registry
        self._states = states
        self._ids = ids
        self._timeout = call_timeout + ROUTE_MARGIN
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self.routed = 0  # commands sent to another process (diagnostics, tests)
        self.served = 0  # commands carried out for another process
        node.on(COMMAND, self._on_command)
        node.on(RESULT, self._on_result)
        node.on(DESCRIBE, self._on_describe)
        node.on(UNREGISTER, self._on_unregister)
        node.on(REVOKED, self._on_revoked)

    async def send(self, charger_id: str, command: Command) -> CommandResult:
        if self._csms.connection(charger_id) is not None:
            return await self._csms.send(charger_id, command)
        for _ in range(2):
            [owner] = await self._registry.live_owners([charger_id])
            if owner is None or owner.node == self._node.id:
                break
            try:
                return await self._remote(owner.node, charger_id, command)
            except _Moved:
                if self._csms.connection(charger_id) is not None:  # it came back here
                    return await self._csms.send(charger_id, command)
        raise ChargerNotConnected(charger_id)

    async def live_state(self, charger_id: str) -> ChargerState | None:
        """The charger's state as every process reads it: connected while some process
        holds it, with the last heartbeat that process wrote (this process's own, fresher,
        when it holds the charger)."""
        local = self._csms.live_state(charger_id)
        if local is not None:
            return local
        state = await self._states.get(charger_id)
        [owner] = await self._registry.live_owners([charger_id])
        return _merged(state, owner.last_heartbeat if owner else None, owner is not None)

    async def live_states(self, charger_ids: list[str]) -> dict[str, ChargerState]:
        """:meth:`live_state` of many chargers at once."""
        stored = {s.id: s for s in await self._states.list()}
        owners = await self._registry.live_owners(charger_ids)
        out: dict[str, ChargerState] = {}
        for i, (charger_id, owner) in enumerate(zip(charger_ids, owners, strict=True)):
            if i and not i % _STATES_PER_TURN:
                await asyncio.sleep(0)  # a whole fleet's: the chargers' messages go on
            local = self._csms.live_state(charger_id)
            if local is not None:
                out[charger_id] = local
                continue
            merged = _merged(
                stored.get(charger_id),
                owner.last_heartbeat if owner else None,
                owner is not None,
            )
            if merged is not None:
                out[charger_id] = merged
        return out

    async def details(self, charger_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The latest notifications (firmware, diagnostics, log, events...) and the
        firmware/diagnostics/log requests of a charger, kept by the process holding it;
        asked of that process when it is another (empty when it does not answer within
        ``DESCRIBE_TIMEOUT``: the view then shows the rest)."""
        if self._csms.connection(charger_id) is not None:
            return self._csms.reports(charger_id), self._csms.requests(charger_id)
        [owner] = await self._registry.live_owners([charger_id])
        if owner is None or owner.node == self._node.id:
            return self._csms.reports(charger_id), self._csms.requests(charger_id)
        request_id = self._ids.new_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            message = {
                "type": DESCRIBE,
                "id": request_id,
                "reply_to": self._node.id,
                "charger_id": charger_id,
            }
            if await self._node.send(owner.node, message):
                async with asyncio.timeout(DESCRIBE_TIMEOUT):
                    answer = await future
                reports, requests = answer.get("reports"), answer.get("requests")
                if isinstance(reports, dict) and isinstance(requests, list):
                    return reports, requests
        except TimeoutError:
            log.warning("charger %s: no details from the process holding it", charger_id)
        finally:
            self._pending.pop(request_id, None)
        return {}, []

    async def unregister(self, charger_id: str) -> None:
        """The operator removed the charger: its connection, wherever it is, is closed
        without recording it offline (its records are being deleted)."""
        if self._csms.connection(charger_id) is not None:
            await self._csms.unregister(charger_id)
            return
        [owner] = await self._registry.live_owners([charger_id])
        if owner is not None and owner.node != self._node.id:
            await self._node.send(owner.node, {"type": UNREGISTER, "charger_id": charger_id})

    def _on_unregister(self, message: dict[str, Any]) -> None:
        charger_id = message.get("charger_id")
        if isinstance(charger_id, str) and self._csms.connection(charger_id) is not None:
            task = asyncio.create_task(self._csms.unregister(charger_id))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def certificate_revoked(self, charger_id: str, fingerprint: str) -> None:
        """The operator revoked the charger's certificate with SHA-256 ``fingerprint``:
        its connection, wherever it is, is closed when it was made with that certificate
        (:meth:`CentralSystem.certificate_revoked`)."""
        if self._csms.connection(charger_id) is not None:
            await self._csms.certificate_revoked(charger_id, fingerprint)
            return
        [owner] = await self._registry.live_owners([charger_id])
        if owner is not None and owner.node != self._node.id:
            await self._node.send(
                owner.node, {"type": REVOKED, "charger_id": charger_id, "fingerprint": fingerprint}
            )

    def _on_revoked(self, message: dict[str, Any]) -> None:
        charger_id, fingerprint = message.get("charger_id"), message.get("fingerprint")
        if not isinstance(charger_id, str) or not isinstance(fingerprint, str):
            return
        if self._csms.connection(charger_id) is not None:
            task = asyncio.create_task(self._close_revoked(charger_id, fingerprint))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _close_revoked(self, charger_id: str, fingerprint: str) -> None:
        await self._csms.certificate_revoked(charger_id, fingerprint)

    def _on_describe(self, message: dict[str, Any]) -> None:
        reply_to, charger_id = message.get("reply_to"), message.get("charger_id")
        if not isinstance(reply_to, str) or not isinstance(charger_id, str):
            return
        answer = {
            "type": RESULT,
            "id": message.get("id"),
            "reports": wire.plain_json(self._csms.reports(charger_id)),
            "requests": wire.plain_json(self._csms.requests(charger_id)),
        }
        task = asyncio.create_task(self._reply(reply_to, answer))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _reply(self, reply_to: str, answer: dict[str, Any]) -> None:
        try:
            await self._node.send(reply_to, answer)
        except Exception as exc:  # the caller times out; nothing else to do
            log.warning("cluster: answer to %s not sent: %s", reply_to, exc)

    async def _remote(self, node: str, charger_id: str, command: Command) -> CommandResult:
        request_id = self._ids.new_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            message = {
                "type": COMMAND,
                "id": request_id,
                "reply_to": self._node.id,
                "charger_id": charger_id,
                "command": wire.encode_command(command),
            }
            if not await self._node.send(node, message):
                # Nobody listens there: the process died, its record expires shortly.
                raise ChargerNotConnected(charger_id)
            self.routed += 1
            try:
                async with asyncio.timeout(self._timeout):
                    answer = await future
            except TimeoutError:
                raise ChargerTimeout(
                    f"no answer from the process holding charger {charger_id!r}"
                    f" within {self._timeout:g} s"
                ) from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in answer:
            error = answer["error"]
            if isinstance(error, dict) and error.get("error") == "not_connected":
                raise _Moved()
            raise wire.decode_error(error if isinstance(error, dict) else {})
        return wire.decode_result(answer.get("result"))

    def _on_result(self, message: dict[str, Any]) -> None:
        future = self._pending.get(str(message.get("id")))
        if future is not None and not future.done():
            future.set_result(message)

    def _on_command(self, message: dict[str, Any]) -> None:
        task = asyncio.create_task(self._serve(message))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, message: dict[str, Any]) -> None:
        reply_to = message.get("reply_to")
        charger_id = message.get("charger_id")
        if not isinstance(reply_to, str) or not isinstance(charger_id, str):
            log.warning("cluster: a command without reply_to or charger_id dropped")
            return
        answer: dict[str, Any] = {"type": RESULT, "id": message.get("id")}
        try:
            command = wire.decode_command(message.get("command"))
            if self._csms.connection(charger_id) is None:
                raise ChargerNotConnected(charger_id)
            self.served += 1
            result = await self._csms.send(charger_id, command)
        except (DomainError, Unavailable) as exc:
            answer["error"] = wire.encode_error(exc)
        except wire.WireError as exc:
            log.warning("cluster: unreadable command for %s: %s", charger_id, exc)
            answer["error"] = wire.encode_error(exc)
        except Exception as exc:
            log.exception("cluster: routed command to %s failed", charger_id)
            answer["error"] = wire.encode_error(exc)
        else:
            answer["result"] = wire.encode_result(result)
        await self._reply(reply_to, answer)

    async def close(self) -> None:
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        for future in self._pending.values():
            if not future.done():
                future.cancel()


def _merged(
    state: ChargerState | None, heartbeat: datetime | None, connected: bool
) -> ChargerState | None:
    if state is None:
        return None
    changes: dict[str, Any] = {"connected": connected}
    if heartbeat is not None and (state.last_heartbeat is None or heartbeat > state.last_heartbeat):
        changes["last_heartbeat"] = heartbeat
    return replace(state, **changes)
