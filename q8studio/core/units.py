"""Latencies as people read them, shared by the command line and the window so both show the same figures."""

from __future__ import annotations

import math


def latencies(*values_ms: float) -> tuple[str, ...]:
    """Latencies in one unit, so that they compare at a glance, with three significant digits: µs when all
    are under 1 ms, as per-layer times are (the demo runs in 12.9 µs, not "0.013 ms", two digits that hide
    the differences a speed-up is made of), else ms."""
    if all(value < 1.0 for value in values_ms):
        return tuple(significant(1000.0 * value, "µs", 1) for value in values_ms)
    return tuple(significant(value, "ms", 3) for value in values_ms)


def significant(value: float, unit: str, decimals: int) -> str:
    """``value`` with at least ``decimals`` decimals and three significant digits."""
    if not math.isfinite(value) or value <= 0:
        return f"{value:.{decimals}f} {unit}"
    return f"{value:.{max(decimals, 2 - math.floor(math.log10(value)))}f} {unit}"
