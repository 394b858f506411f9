"""The OCPP benchmark run on two versions of the code in turn: is a change faster?

Run: ``python tests/bench/ab_ocpp.py --base REV [--pairs 3] [-- bench_ocpp options]``.
Not collected by pytest.

On this shared 2-core machine the same code gives figures tens of percent apart from one
run to the next (issue 15's notes), so one run of each version says little about a change
of a few percent. This runs ``bench_ocpp.py --server gateway`` ``--pairs`` times for each
version, alternating (base, then this checkout, then base again...), so that a slow patch
of the machine weighs on both alike, and prints each pair's figures, their medians, and the
median of the per-pair ratios (this checkout / base) with how many pairs went each way.

The base is ``git archive REV gateway ocpi`` unpacked in a temp dir and put first on
``PYTHONPATH``: ``bench_ocpp.py`` starts the gateway through the ``ocpi-gateway`` console
script, which then imports the base's packages (the working directory is not on its
``sys.path``). Only ``gateway`` and ``ocpi`` come from the base: the benchmark, its load
generator and the installed dependencies are this checkout's for both.

Options after ``--`` go to ``bench_ocpp.py`` (default: ``--connections 10000 --active 1000
--duration 5 --idle 2 --warmup 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench" / "bench_ocpp.py"
DEFAULT_BENCH_ARGS = [
    "--connections", "10000", "--active", "1000", "--duration", "5",
    "--idle", "2", "--warmup", "1",
]  # fmt: skip

# (label, path in bench_ocpp's JSON, unit, lower is better)
FIGURES: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("CPU per message, saturation", ("saturation", "server_cpu_us_per_msg"), "µs", True),
    ("  event-loop thread", ("saturation", "event_loop_cpu_us_per_msg"), "µs", True),
    ("msg/s at saturation", ("saturation", "msgs_per_s"), "/s", False),
    ("p50 at saturation", ("saturation", "p50_ms"), "ms", True),
    ("CPU per message, steady rate", ("rate-limited", "server_cpu_us_per_msg"), "µs", True),
    ("  event-loop thread", ("rate-limited", "event_loop_cpu_us_per_msg"), "µs", True),
    ("p50 at a steady rate", ("rate-limited", "p50_ms"), "ms", True),
    ("p99 at a steady rate", ("rate-limited", "p99_ms"), "ms", True),
    ("memory per idle connection", ("memory_per_connection_bytes",), "B", True),
    ("RSS after close, above before", ("rss_after_close_above_before_kib",), "KiB", True),
]


def unpack(rev: str, into: Path) -> None:
    """``gateway`` and ``ocpi`` of ``rev`` into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "gateway", "ocpi"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def run_bench(bench_args: list[str], out: Path, base: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if base is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(base), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(BENCH), "--server", "gateway", *bench_args, "--json", str(out)]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        raise SystemExit(f"bench_ocpp.py failed ({done.returncode}): {' '.join(cmd)}")
    data: Any = json.loads(out.read_text())
    # One round of one server: the object itself, or the first of a list.
    while isinstance(data, list):
        data = data[0]
    if "gateway" in data and isinstance(data["gateway"], list | dict):
        data = data["gateway"]
        while isinstance(data, list):
            data = data[0]
    return dict(data)


def figure(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def report(pairs: list[tuple[dict[str, Any], dict[str, Any]]], rev: str) -> None:
    print(f"\n{len(pairs)} pairs, base {rev} then this checkout, in turn:")
    print(f"  {'figure':<32}{'base (each run)':>28}{'this (each run)':>28}  ratio  better")
    for label, path, unit, lower in FIGURES:
        base = [figure(b, path) for b, _ in pairs]
        this = [figure(t, path) for _, t in pairs]
        if any(v is None for v in base + this):
            continue
        b = [v for v in base if v is not None]
        t = [v for v in this if v is not None]
        ratios = [y / x for x, y in zip(b, t, strict=True) if x]
        wins = sum(1 for x, y in zip(b, t, strict=True) if (y < x if lower else y > x))
        fmt = (
            (lambda v: f"{v:,.0f}") if unit in ("µs", "/s", "B", "KiB") else (lambda v: f"{v:.2f}")
        )
        runs_b = " ".join(fmt(v) for v in b)
        runs_t = " ".join(fmt(v) for v in t)
        ratio = statistics.median(ratios) if ratios else float("nan")
        print(
            f"  {label:<32}{runs_b:>28}{runs_t:>28}  {ratio:5.2f}  {wins} of {len(pairs)}"
            f"  ({unit}; median {fmt(statistics.median(b))} -> {fmt(statistics.median(t))})"
        )
    print(
        "\nratio: the median of the pairs' this / base; better: in how many pairs this "
        "checkout did better. A change is visible when the pairs agree, not when one does."
    )


def main() -> None:
    argv = sys.argv[1:]
    bench_args = DEFAULT_BENCH_ARGS
    if "--" in argv:
        cut = argv.index("--")
        argv, bench_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ab-ocpp-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        unpack(args.base, base)
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for i in range(args.pairs):
            b = run_bench(bench_args, Path(tmp) / f"base{i}.json", base)
            t = run_bench(bench_args, Path(tmp) / f"this{i}.json", None)
            pairs.append((b, t))
            b_cpu = figure(b, FIGURES[0][1]) or 0.0
            t_cpu = figure(t, FIGURES[0][1]) or 0.0
            print(
                f"pair {i + 1}: CPU per message at saturation {b_cpu:.0f} µs (base), "
                f"{t_cpu:.0f} µs (this)",
                flush=True,
            )
        report(pairs, args.base)


if __name__ == "__main__":
    main()
