"""Median latency of several models on one sample, timed in turn so that each sees the same machine.

Sessions keep ONNX Runtime's default threads and spinning, as a deployment runs them. Stopping the
spinning between runs made the demo's 12 us run take 18 us (waking the threads), which would hide
what int8 changes. On a tiny model one measurement still varies by up to about 8% from the next, more on a
busy machine; one thread is steadier (benchmarks/latency_stability.py).
"""

from __future__ import annotations

import statistics
import time

from .data import Dataset
from .model import LoadedModel
from .progress import NO_PROGRESS, Progress
from .session import BatchRunner, cpu_session, first_run_feed


def alternating_latency(
    models: list[LoadedModel],
    data: Dataset,
    *,
    runs: int,
    threads: int = 0,
    warmup: int = 5,
    progress: Progress = NO_PROGRESS,
) -> list[float]:
    """Median latency (ms) of each model on one sample, or on one batch when the first model fixes its
    batch size: ``warmup`` runs of each, then ``runs`` rounds of one run of each in turn."""
    sample = first_run_feed(models[0], data)
    sessions = [cpu_session(m.proto, threads=threads, spinning="always") for m in models]
    for model, session in zip(models, sessions):
        runner = BatchRunner(model, session)  # warm-up runs say a failure on this data in one line
        for _ in range(warmup):
            runner.run(None, sample)
    times: list[list[float]] = [[] for _ in sessions]
    for run in range(runs):
        for session, series in zip(sessions, times):
            started = time.perf_counter()
            session.run(None, sample)
            series.append((time.perf_counter() - started) * 1000.0)
        progress.report("Timing", run + 1, runs)
    return [statistics.median(series) for series in times]
