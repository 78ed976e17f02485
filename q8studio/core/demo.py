"""Where the bundled demo (model, calibration set, test set, images) lives once installed."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import Q8Error


@dataclass(frozen=True)
class DemoAssets:
    model: Path
    calibration: Path
    test: Path
    images: Path
    preprocessing: Path


def demo_assets() -> DemoAssets:
    """Paths of the demo files inside the installed ``q8studio.resources`` package."""
    root = Path(str(resources.files("q8studio.resources"))) / "demo"
    assets = DemoAssets(
        model=root / "digits_cnn.onnx",
        calibration=root / "calib.npz",
        test=root / "test.npz",
        images=root / "images",
        preprocessing=root / "preprocess.json",
    )
    if not assets.model.is_file():
        raise Q8Error(f"The bundled demo model is missing from {root}; reinstall q8studio.")
    return assets
