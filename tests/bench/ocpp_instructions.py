"""Machine instructions the gateway executes per OCPP message, under valgrind's callgrind.

Run: ``python tests/bench/ocpp_instructions.py [--chargers 20] [--messages 600]``. Not
collected by pytest; needs valgrind (Debian's package).

The timed OCPP benchmark (``bench_ocpp.py``, ``ab_ocpp.py``) moves by tens of percent from
run to run on a shared machine; this counts instructions instead, which do not move with
the machine's load (the same run twice agrees within about 1 %). The real gateway
(``python -m gateway.cli serve``, embedded SQLite, its settings as ``bench_ocpp.py`` sets
them) runs under callgrind; ``--chargers`` chargers (OCPP 1.6 over real WebSockets, aiohttp's
client) boot, then send ``bench_ocpp.py``'s mix of Heartbeat, StatusNotification and
MeterValues, each charger one CALL at a time, ``--messages`` in all; the gateway's
counters are dumped (``callgrind_control --dump``) before the messages, after them and
the writes they set off (the trail's and the status history's, a second or so later),
and after an idle spell, whose rate (the gateway's timers) is subtracted. It prints
the instructions per message, of every thread (the store's and the trail's SQLite writers
included).

Comparing two trees: run this file from each (the gateway runs from the repository it is
in: ``cd /tmp/wt && /work/main/.venv/bin/python tests/bench/ocpp_instructions.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from bench_hub import (
    BenchError,
    Gateway,
    add_gateway_env_option,
    callgrind_command,
    count_of_dump,
    gateway_env,
)
from loadgen import BOOT_FRAME, CYCLE

# Seconds after the messages for the writes they set off, and of the idle spell measured.
SETTLE = 4.0


async def drive(gateway: Gateway, tmp: Path, chargers: int, messages: int) -> None:
    ws_url = gateway.url.replace("http://", "ws://") + "/ocpp/"
    async with aiohttp.ClientSession() as session:
        sockets = [
            await session.ws_connect(f"{ws_url}BENCH{i:04d}", protocols=("ocpp1.6",))
            for i in range(chargers)
        ]
        for ws in sockets:
            await ws.send_str(BOOT_FRAME)
            answer = await ws.receive_str()
            if '"Accepted"' not in answer:
                raise BenchError(f"BootNotification not accepted: {answer[:200]}")
        sent = 0

        async def charger(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal sent
            turn = index
            while sent < messages:
                sent += 1
                _, tail = CYCLE[turn % len(CYCLE)]
                turn += 1
                await ws.send_str(f'[2,"m{turn}{tail}')
                answer = await ws.receive_str()
                if not answer.startswith("[3,"):
                    raise BenchError(f"not a CALLRESULT: {answer[:200]}")

        # A first pass of the same mix, not counted: the chargers' first statuses and
        # the stores' first pages.
        await asyncio.gather(*(charger(i, ws) for i, ws in enumerate(sockets)))
        sent = 0
        await asyncio.sleep(SETTLE)  # the warm-up's deferred writes (trail, history) done
        count_of_dump(gateway, tmp, "warm-up")
        began = time.monotonic()
        await asyncio.gather(*(charger(i, ws) for i, ws in enumerate(sockets)))
        # The trail and the status history write a message's entries later (every 0.5
        # and 1 s): counted with the messages, not with the idle spell after.
        await asyncio.sleep(SETTLE)
        counted = count_of_dump(gateway, tmp, "messages")
        window = time.monotonic() - began
        began = time.monotonic()
        await asyncio.sleep(SETTLE)
        idle = count_of_dump(gateway, tmp, "idle")
        idle_rate = idle / (time.monotonic() - began)
        for ws in sockets:
            await ws.close()
    per = (counted - idle_rate * window) / messages
    print(
        f"gateway instructions per OCPP 1.6 message (callgrind, every thread; {chargers} "
        f"chargers, {messages} messages, Heartbeat / StatusNotification / MeterValues in "
        f"turn, one CALL in flight per charger; idle {idle_rate / 1e6:.1f} M/s "
        f"subtracted): {per:,.0f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    add_gateway_env_option(parser)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ocpp-instructions-"))
    wrapper = callgrind_command(tmp / "callgrind.out")
    if wrapper is None:
        shutil.rmtree(tmp, ignore_errors=True)
        print("valgrind (with callgrind_control) is not installed", file=sys.stderr)
        return 2
    settings = {
        "GATEWAY_AUTO_REGISTER": "true",
        "GATEWAY_HEARTBEAT_INTERVAL": "3600",
        "GATEWAY_UNAUTHENTICATED_PER_MINUTE": "0",
        "GATEWAY_UNAUTHENTICATED_PER_ADDRESS": "0",
        **gateway_env(args),
    }
    gateway = Gateway(tmp, None, settings, None, wrapper)
    try:
        gateway.start()
        asyncio.run(drive(gateway, tmp, args.chargers, args.messages))
        gateway.check()
        return 0
    except BenchError as exc:
        print(f"ocpp_instructions: {exc}{gateway.log_tail()}", file=sys.stderr)
        return 1
    finally:
        gateway.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
