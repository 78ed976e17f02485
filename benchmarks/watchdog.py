"""Wait for a benchmark worker process, killing it when it eats the machine; its own peak RSS.

On Linux a child's ru_maxrss starts at its parent's high-water mark, so the orchestrating process
must stay small; ``wait4`` then gives each worker's peak.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

POLL_S = 0.2
MIN_AVAILABLE_BYTES = 1 << 30  # a worker is also killed when the machine gets this close to running out


@dataclass(frozen=True)
class Limits:
    """When the watchdog kills a worker."""

    rss_bytes: int
    timeout_s: float


def watch(process: subprocess.Popen, limits: Limits) -> tuple[int, int, str | None]:
    """Wait for ``process``, killing it past the RSS limit, low machine memory or the timeout.

    Returns its wait status, its peak RSS in KB and why it was killed (None if it was not).
    """
    started = time.monotonic()
    killed = None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, usage.ru_maxrss, killed
        if killed is None:
            killed = _kill_reason(process.pid, limits, time.monotonic() - started)
            if killed:
                os.kill(process.pid, signal.SIGKILL)
        time.sleep(POLL_S)


def _kill_reason(pid: int, limits: Limits, elapsed: float) -> str | None:
    rss = _proc_kb(f"/proc/{pid}/status", "VmRSS") * 1024
    if rss > limits.rss_bytes:
        return f"RSS > {limits.rss_bytes / 2**30:.0f} GB after {elapsed:.0f} s"
    if _proc_kb("/proc/meminfo", "MemAvailable") * 1024 < MIN_AVAILABLE_BYTES:
        return f"machine nearly out of memory at RSS {rss / 2**30:.1f} GB after {elapsed:.0f} s"
    if elapsed > limits.timeout_s:
        return f"still running after {limits.timeout_s:.0f} s"
    return None


def _proc_kb(path: str, key: str) -> int:
    """A ``key: N kB`` field of a /proc file (0 once the process is gone)."""
    try:
        with open(path) as stream:
            for line in stream:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
