"""How numbers read on screen: the same figure is formatted the same way in every panel."""

from __future__ import annotations

import math

from ..core.units import latencies, significant
from ..core.weights import StoredInt


def number(value: float | None, digits: int = 4) -> str:
    """Compact significant-digit form; an em dash for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value + 0.0:.{digits}g}"  # + 0.0 turns -0.0 into 0: no "-0" in a range


def exact(value: float) -> str:
    """The shortest text that reads back as the same float: a setting shown for editing must not be
    rounded, or the run made from it differs from the one it came from."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def percent(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100.0 * value:.{digits}f}%"


def decibels(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "∞ dB (exact)" if math.isinf(value) and value > 0 else f"{value:.2f} dB"


def milliseconds(value: float) -> str:
    """At least three significant digits: a model as small as the demo runs in about 0.012 ms, where
    three decimals would show two latencies 4% apart as the same figure beside a speed-up of 1.04×."""
    return significant(value, "ms", 3)


def latency_pair(float32_ms: float, int8_ms: float) -> tuple[str, str]:
    """Both models' latencies in one unit (:func:`~q8studio.core.units.latencies`), as the command line shows them."""
    float32, int8 = latencies(float32_ms, int8_ms)
    return float32, int8


def times(value: float) -> str:
    """A ratio of times or a speed-up: "0.92×"."""
    return "∞" if math.isinf(value) else f"{value:.2f}×"


def size(num_bytes: int) -> str:
    """Bytes in the largest unit that keeps the figure readable."""
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024.0 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024.0
    return f"{value:.1f} GB"


def duration(seconds: float) -> str:
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def count(n: int, noun: str) -> str:
    """A count with its noun, singular or plural: "1 node", "18 nodes"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def value_range(lo: float, hi: float) -> str:
    return f"[{number(lo)}, {number(hi)}]"


def stored(weight: StoredInt) -> str:
    """How an integer weight becomes float: "int8 × scale 0.01826, zero point 0"."""
    scale = f"scale {number(weight.scale[0])}" if weight.scales == 1 else (
        f"{weight.scales} scales {number(weight.scale[0])} … {number(weight.scale[1])} (axis {weight.axis})")
    low, high = weight.zero_point
    zero = f"zero point {low}" if low == high else f"zero points {low} … {high}"
    return f"{weight.dtype} × {scale}, {zero}"


def progress_text(stage: str, done: int, total: int, eta_s: float) -> str:
    """A worker's stage as a status line: "Calibrating 120/500 — about 4 s left"."""
    left = f" — about {duration(eta_s)} left" if eta_s >= 1.0 else ""
    counts = f" {done:,}/{total:,}" if total > 1 else ""
    return f"{stage}{counts}{left}"


def float_toggle_text(kept: bool, node: str = "") -> str:
    """A node menu's keep-in-float entry, which toggles: once kept, it offers to quantize the node again."""
    subject = f" {node}" if node else ""
    return f"Quantize{subject} in int8 again" if kept else f"Keep{subject} in float"
