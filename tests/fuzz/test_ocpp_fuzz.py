"""OCPP fuzzing: thousands of generated frames (valid CALLs from the official JSON
schemas, then mutated) over real WebSockets, on both subprotocols at once, to a real
gateway, while well-behaved chargers on other connections keep sending Heartbeats.

Every frame is checked against what OCPP-J requires of it (``ocpp_frames``): the
answer it must get (or none), well-formed, a CALLERROR under 1 KiB, never
InternalError; a valid CALLRESULT per the action's response schema. A connection ends
only with a close frame, and only with 1009 for a frame over the size bound. At the
end nothing was logged at ERROR or with a traceback, and the chargers were answered
every time.

Frames are pipelined (a window of up to 16, then a Heartbeat whose answer marks the
window's end, since CALLs are answered in order and refusals at once), matched to
their answers by message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import GatewayFactory
from tests.fuzz.conftest import FuzzConfig, LogWatch
from tests.fuzz.ocpp_frames import (
    ERROR_CODES,
    HANDLED,
    SEMANTIC_REFUSALS,
    SUBPROTOCOL,
    Frame,
    FrameFactory,
    OcppSchemas,
)
from tests.sim import basic, connect

# Chargers with a password: authenticated upgrades are never rate limited, and the fuzz
# connections reconnect after every 1009 close.
PASSWORD = "fuzz-password-0123456789"
WINDOW = 16  # below the gateway's 32 CALLs in waiting per connection
ANSWER_TIMEOUT = 20.0  # seconds for a window's answers (a loaded 2-core machine)
MAX_CALLERROR_BYTES = 1024


@dataclass
class Findings:
    """Failures grouped by what went wrong, with the first frame that showed it."""

    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)
    frames: int = 0
    reconnects: Counter[int] = field(default_factory=Counter)

    def fail(self, version: str, frame: Frame | None, problem: str, answer: Any = None) -> None:
        key = f"[{version}] {frame.kind if frame else '-'}: {problem}"
        self.problems[key] += 1
        if key not in self.examples:
            text = frame.text if frame else ""
            shown = text if len(text) <= 300 else f"{text[:240]}...({len(text)} chars)...{text[-40:]}"
            self.examples[key] = f"frame {shown!r}\n      answer {str(answer)[:300]!r}"

    def report(self) -> str:
        lines = [f"{sum(self.problems.values())} failures in {self.frames} frames:"]
        for key, count in self.problems.most_common():
            lines.append(f"  {count:5d} x {key}\n      {self.examples[key]}")
        return "\n".join(lines)


def _check_answer(
    version: str, schemas: OcppSchemas, frame: Frame, raw: str, answer: Any, findings: Findings
) -> None:
    expect = frame.expect
    if not isinstance(answer, list) or not answer or answer[0] not in (3, 4):
        findings.fail(version, frame, "answer is not a CALLRESULT or CALLERROR", raw)
        return
    if answer[0] == 3:
        findings.answers[f"{version} {frame.kind} CALLRESULT"] += 1
        if len(answer) != 3 or not isinstance(answer[2], dict):
            findings.fail(version, frame, "malformed CALLRESULT", raw)
        elif expect.error:
            findings.fail(version, frame, "accepted (CALLRESULT) a frame it must refuse", raw)
        elif expect.strict and expect.action not in HANDLED[version]:
            findings.fail(version, frame, f"CALLRESULT for {expect.action}, which it does not receive", raw)
        elif expect.action is not None:
            errors = schemas.response_errors(expect.action, answer[2])
            if errors:
                findings.fail(version, frame, f"{expect.action} answer breaks its response schema: {errors[0]}", raw)
        return
    code = answer[2] if len(answer) > 2 else None
    findings.answers[f"{version} {frame.kind} {code}"] += 1
    if (
        len(answer) != 5
        or not isinstance(answer[2], str)
        or not isinstance(answer[3], str)
        or not isinstance(answer[4], dict)
    ):
        findings.fail(version, frame, "malformed CALLERROR", raw)
        return
    if code not in ERROR_CODES[version]:
        findings.fail(version, frame, f"CALLERROR code {code!r} is not an OCPP-J {version} code", raw)
    if code == "InternalError":
        findings.fail(version, frame, "InternalError (the central system failed)", raw)
    if len(raw.encode("utf-8")) >= MAX_CALLERROR_BYTES:
        findings.fail(version, frame, f"CALLERROR of {len(raw.encode('utf-8'))} bytes (>= 1 KiB)", raw[:200])
    if expect.strict:
        if expect.action in HANDLED[version] and code not in SEMANTIC_REFUSALS:
            findings.fail(version, frame, f"valid {expect.action} refused with {code}", raw)
        if expect.action not in HANDLED[version] and code != "NotSupported":
            findings.fail(version, frame, f"{expect.action} (not received) answered {code}, not NotSupported", raw)


class FuzzConnection:
    """One charger connection that sends fuzz frames, reconnecting after a close."""

    def __init__(
        self, url: str, cp_id: str, version: str, factory: FrameFactory, findings: Findings,
        session: aiohttp.ClientSession,
    ) -> None:
        self.url, self.cp_id, self.version = url, cp_id, version
        self.factory, self.findings, self.session = factory, findings, session
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.syncs = 0

    async def open(self) -> aiohttp.ClientWebSocketResponse:
        self.ws = await self.session.ws_connect(
            f"{self.url}/ocpp/{self.cp_id}", protocols=(SUBPROTOCOL[self.version],), autoping=True,
            headers=basic(self.cp_id, PASSWORD),
        )
        assert self.ws.protocol == SUBPROTOCOL[self.version]
        return self.ws

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def _closed(self, msg: aiohttp.WSMessage, frames: list[Frame]) -> None:
        """The gateway closed the connection during ``frames``: never legitimate here."""
        assert self.ws is not None
        code = self.ws.close_code
        self.findings.reconnects[code or 0] += 1
        culprit = max(frames, key=lambda f: len(f.text)) if frames else None
        if msg.type is aiohttp.WSMsgType.CLOSE:
            problem = f"connection closed with code {code} ({msg.extra!r})"
        else:
            problem = f"connection dropped without a close frame ({msg.type.name}, {self.ws.exception()!r})"
        size = len(culprit.text.encode()) if culprit else 0
        self.findings.fail(self.version, culprit, problem, f"in a window of {len(frames)}, largest frame {size} bytes")

    async def window(self, frames: list[Frame]) -> None:
        assert self.ws is not None
        ws = self.ws
        self.syncs += 1
        sync_id = f"sync{self.syncs}"
        for frame in frames:
            await ws.send_str(frame.text)
        await ws.send_str(f'[2,"{sync_id}","Heartbeat",{{}}]')
        received: list[tuple[str, Any]] = []
        synced = False
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while not synced:
                    msg = await ws.receive()
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        self._closed(msg, frames)
                        await self.reopen()
                        return
                    raw = str(msg.data)
                    try:
                        answer = json.loads(raw)
                    except ValueError:
                        self.findings.fail(self.version, None, "answer is not JSON", raw)
                        continue
                    if isinstance(answer, list) and len(answer) > 1 and answer[1] == sync_id:
                        synced = True
                        if answer[0] != 3:
                            self.findings.fail(self.version, frames[-1] if frames else None, "Heartbeat after a window refused", raw)
                        continue
                    if isinstance(answer, list) and answer[:1] == [2]:
                        # A CALL of the central system's own (the cost display probe a
                        # 2.0.1 BootNotification brings): not an answer; left unanswered.
                        self.findings.answers[f"{self.version} central system CALL {answer[2] if len(answer) > 2 else '?'}"] += 1
                        continue
                    received.append((raw, answer))
        except TimeoutError:
            self.findings.fail(self.version, frames[-1] if frames else None, f"no answer within {ANSWER_TIMEOUT}s to a window of {len(frames)}")
            await self.reopen()
            return
        self._match(frames, received)

    def _match(self, frames: list[Frame], received: list[tuple[str, Any]]) -> None:
        """Pairs answers with frames: by their own id first, then the "-1" answers with
        the frames that may get one (those that can only get "-1" first)."""
        exact = {i: f for f in frames for i in f.expect.ids - {"-1"}}
        answered: dict[int, tuple[str, Any]] = {}
        minus_one, unexpected = [], []
        for raw, answer in received:
            answer_id = answer[1] if isinstance(answer, list) and len(answer) > 1 else None
            frame = exact.get(answer_id) if isinstance(answer_id, str) else None
            if frame is not None and id(frame) not in answered:
                answered[id(frame)] = (raw, answer)
            elif answer_id == "-1":
                minus_one.append((raw, answer))
            else:
                unexpected.append(raw)
        candidates = sorted(
            (f for f in frames if "-1" in f.expect.ids and id(f) not in answered),
            key=lambda f: len(f.expect.ids),
        )
        for (raw, answer), frame in zip(minus_one, candidates, strict=False):
            answered[id(frame)] = (raw, answer)
        unexpected.extend(raw for raw, _ in minus_one[len(candidates):])
        for frame in frames:
            if id(frame) in answered:
                raw, answer = answered[id(frame)]
                _check_answer(self.version, self.factory.schemas, frame, raw, answer, self.findings)
            elif frame.expect.ids:
                self.findings.fail(self.version, frame, f"no answer (expected id in {sorted(frame.expect.ids)[:2]})")
        for raw in unexpected:
            # Name the frame whose id it carries, else show the whole window.
            answer_id = json.loads(raw)[1]
            culprit = next((f for f in frames if json.dumps(answer_id) in f.text), None)
            window = " | ".join(f.text[:70] for f in frames)
            self.findings.fail(
                self.version, culprit, "answer nobody asked for (to a CALLRESULT/CALLERROR frame, or a second one)",
                raw if culprit else f"{raw} in window: {window}",
            )

    async def oversize(self, frame: Frame) -> None:
        """A frame over the gateway's bound: the connection closes with 1009, unanswered."""
        assert self.ws is not None
        await self.ws.send_str(frame.text)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                msg = await self.ws.receive()
                # The gateway's own CALL (the cost probe's GetVariables after a boot) may
                # have been sent before it read the big frame: not an answer to it.
                while msg.type is aiohttp.WSMsgType.TEXT and _is_gateway_call(msg.data):
                    msg = await self.ws.receive()
        except TimeoutError:
            self.findings.fail(self.version, frame, "frame over max_frame_bytes neither answered nor closed")
            await self.reopen()
            return
        if msg.type is aiohttp.WSMsgType.CLOSE and self.ws.close_code == 1009:
            self.findings.reconnects[1009] += 1
        else:
            self.findings.fail(self.version, frame, f"frame over max_frame_bytes: {msg.type.name} {self.ws.close_code}, not a 1009 close", msg.data)
        await self.reopen()

    async def reopen(self) -> None:
        await self.close()
        await self.open()

    async def run(self, count: int, rng: random.Random) -> None:
        await self.open()
        pending: list[Frame] = []
        size = rng.randint(1, WINDOW)
        for _ in range(count):
            frame = self.factory.next()
            self.findings.frames += 1
            if frame.expect.close_1009:
                if pending:
                    await self.window(pending)
                    pending = []
                await self.oversize(frame)
                continue
            pending.append(frame)
            if len(pending) >= size:
                await self.window(pending)
                pending, size = [], rng.randint(1, WINDOW)
        if pending:
            await self.window(pending)
        # Still up and answering a plain Heartbeat.
        await self.window([])


async def well_behaved(url: str, cp_id: str, version: str, stop: asyncio.Event) -> tuple[int, list[str]]:
    """A library ChargePoint sending Heartbeats until ``stop``; every one must be answered."""
    answered, problems = 0, []
    async with connect(url, cp_id, version, headers=basic(cp_id, PASSWORD)) as cp:
        while True:
            request = call201.Heartbeat() if version == "2.0.1" else call16.Heartbeat()
            try:
                async with asyncio.timeout(10):
                    result = await cp.call(request)
                if not getattr(result, "current_time", None):
                    problems.append(f"Heartbeat answer without currentTime: {result!r}")
                answered += 1
            except Exception as exc:
                problems.append(f"Heartbeat {answered + 1} failed: {type(exc).__name__}: {exc}")
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):  # pacing, not a check
                    await stop.wait()
    return answered, problems


async def test_ocpp_fuzz(gateways: GatewayFactory, fuzz_config: FuzzConfig, log_watch: LogWatch) -> None:
    gw = await gateways.start()
    max_bytes = gw.settings.max_frame_bytes
    ids = {"1.6": "FUZZ-16", "2.0.1": "FUZZ-201"}
    good = {"1.6": "GOOD-16", "2.0.1": "GOOD-201"}
    for cp_id in [*ids.values(), *good.values()]:
        status, body = await gw.admin("PUT", f"/chargers/{cp_id}", {"password": PASSWORD, "evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]})
        assert status == 201, body
    findings = Findings()
    stop = asyncio.Event()
    per_version = -(-fuzz_config.frames // 2)
    async with aiohttp.ClientSession() as session:
        beats = [asyncio.create_task(well_behaved(gw.url, good[v], v, stop)) for v in ("1.6", "2.0.1")]
        fuzzers = []
        for n, version in enumerate(("1.6", "2.0.1")):
            rng = random.Random(f"{fuzz_config.seed}-{version}")
            factory = FrameFactory(rng, OcppSchemas(version), tag=f"f{n}-", max_frame_bytes=max_bytes)
            fuzzers.append(FuzzConnection(gw.ws_url, ids[version], version, factory, findings, session))
        try:
            await asyncio.gather(*(f.run(per_version, random.Random(fuzz_config.seed + n)) for n, f in enumerate(fuzzers)))
        finally:
            stop.set()
            results = await asyncio.gather(*beats)
            for fuzzer in fuzzers:
                await fuzzer.close()
    assert findings.frames >= fuzz_config.frames
    for version, (answered, problems) in zip(("1.6", "2.0.1"), results, strict=True):
        assert not problems, f"well-behaved {version} charger: {problems[:5]}"
        assert answered >= 2, f"well-behaved {version} charger answered only {answered} times"
    assert not findings.problems, findings.report()
    assert not log_watch.records, "logged errors or tracebacks:\n" + log_watch.report()
    # The gateway took every kind of answer it should: nothing was skipped silently.
    kinds = {key.split(" ")[1] for key in findings.answers}
    assert {"valid", "wrong_type", "malformed_json", "deep_nesting"} <= kinds, findings.answers


def _is_gateway_call(raw: str) -> bool:
    """Whether ``raw`` is a CALL (message type 2) the gateway sent of its own."""
    try:
        message = json.loads(raw)
    except ValueError:
        return False
    return isinstance(message, list) and len(message) == 4 and message[0] == 2
