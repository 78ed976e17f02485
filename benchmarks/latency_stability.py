"""How steady the int8/float32 latency ratio is from one measurement to the next.

q8studio times two models by alternating runs (``q8studio.core.latency``). Here the bundled demo
model is timed against itself, so every ratio should read 1.00, repeatedly, on an idle machine and
with one core kept busy by another process (a shared machine, a build beside the user's work), at
the default threads (all cores) and at one thread. A measurement is what ``q8studio evaluate`` does:
5 warm-up runs and the median of 50 alternating runs.

    python benchmarks/latency_stability.py               # writes its section of benchmarks/RESULTS.md
    python benchmarks/latency_stability.py --repeats 5 --no-write
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from results_file import measured_with, record_section
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.latency import alternating_latency
from q8studio.core.model import load_model

TITLE = "Latency: how steady alternating timing is"
THREADS = (0, 1)
STEADY = 0.05  # a ratio further than this from 1.00 misreports two identical models


@contextmanager
def busy_core(busy: bool) -> Iterator[None]:
    """One core kept busy by another process while the block runs (or nothing when ``busy`` is False)."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0.0)  # let it reach the scheduler
        yield
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="measurements per setting")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as it is")
    args = parser.parse_args()

    assets = demo_assets()
    model = load_model(assets.model)
    data = load_data(assets.test, model, samples=1)
    started, load = time.perf_counter(), os.getloadavg()[0]
    rows = []
    for busy in (False, True):
        with busy_core(busy):
            for threads in THREADS:
                measured = [alternating_latency([model, model], data, runs=50, threads=threads)
                            for _ in range(args.repeats)]
                ratios = sorted(second / first for first, second in measured)
                off = sum(abs(r - 1.0) > STEADY for r in ratios)
                median_ms = statistics.median(first for first, _ in measured)
                rows.append(f"| {'one core busy' if busy else 'idle'} | {threads or 'all (default)'} | {median_ms * 1000:.1f} | "
                            f"{ratios[0]:.2f} to {ratios[-1]:.2f} | {off} of {len(ratios)} |")
                print(rows[-1], flush=True)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([
        f"## {TITLE}", "",
        f"Measured {when} with {measured_with()}; 1-minute load average {load:.2f} at start. Command: "
        f"`python benchmarks/latency_stability.py` ({time.perf_counter() - started:.0f} s).", "",
        "The bundled demo model timed against itself, as `q8studio evaluate` times two models (5 warm-up runs, "
        f"median of 50 alternating batch-1 runs), {args.repeats} times per row, each with new sessions; every "
        "ratio should be 1.00. \"One core busy\": another process spins on one of the cores meanwhile.", "",
        "| machine | threads | median latency us | second/first ratio, lowest to highest | "
        f"ratios off by more than {STEADY:.0%} |",
        "|---|---|---|---|---|",
        *rows,
    ])
    if not args.no_write:
        record_section(TITLE, section)
    print(section)


if __name__ == "__main__":
    main()
