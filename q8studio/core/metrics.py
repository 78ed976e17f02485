"""Error measures between a float tensor and its int8 counterpart, accumulated batch by batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ErrorAccumulator:
    """Running sums from which SQNR, MSE, cosine and max error follow, without keeping the tensors."""

    count: int = 0
    signal: float = 0.0  # Σ r²
    noise: float = 0.0  # Σ (r - q)²
    dot: float = 0.0  # Σ r·q
    approx: float = 0.0  # Σ q²
    max_abs: float = 0.0

    def update(self, reference: np.ndarray, approx: np.ndarray) -> None:
        r = np.asarray(reference, dtype=np.float64).ravel()
        q = np.asarray(approx, dtype=np.float64).ravel()
        if r.shape != q.shape:
            raise ValueError(f"shape mismatch {np.shape(reference)} vs {np.shape(approx)}")
        diff = r - q
        self.count += r.size
        self.signal += float(r @ r)
        self.noise += float(diff @ diff)
        self.dot += float(r @ q)
        self.approx += float(q @ q)
        if r.size:
            self.max_abs = max(self.max_abs, float(np.abs(diff).max()))

    @property
    def sqnr_db(self) -> float:
        """10·log10(Σr² / Σ(r−q)²); +inf when identical, higher is better."""
        if self.noise == 0.0:
            return math.inf
        if self.signal == 0.0:
            return -math.inf
        return 10.0 * math.log10(self.signal / self.noise)

    @property
    def mse(self) -> float:
        return self.noise / self.count if self.count else 0.0

    @property
    def cosine(self) -> float:
        denominator = math.sqrt(self.signal * self.approx)
        if denominator == 0.0:
            return 1.0 if self.signal == self.approx else 0.0
        return self.dot / denominator

    def to_dict(self) -> dict[str, float]:
        return {"sqnr_db": self.sqnr_db, "mse": self.mse, "cosine": self.cosine, "max_abs_error": self.max_abs}


def measure(reference: np.ndarray, approx: np.ndarray) -> ErrorAccumulator:
    acc = ErrorAccumulator()
    acc.update(reference, approx)
    return acc
