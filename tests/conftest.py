"""Shared fixtures: small real models and data written to a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from builders import save, small_cnn, write_npz

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def cnn_path(tmp_path: Path) -> Path:
    return save(small_cnn(), tmp_path / "cnn.onnx")


@pytest.fixture
def cnn_data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    images = rng.standard_normal((24, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 10, 24)
    return write_npz(tmp_path / "cnn_data.npz", x=images, labels=labels)
