"""Shared fixtures: small real models and data written to a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from builders import activation_chain, activation_net, save, small_cnn, write_npz

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


@pytest.fixture(scope="session")
def quantized_net(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """builders.activation_net and its data, quantized by q8studio with uint8 and with int8 activations, and
    builders.activation_chain with int8 activations: the paths under "float", "data", "uint8", "int8", "chain",
    "chain int8"."""
    from q8studio.core.data import load_data
    from q8studio.core.model import load_model
    from q8studio.core.quantize import quantize_model
    from q8studio.core.recipe import Recipe

    folder = tmp_path_factory.mktemp("activations")
    images = np.random.default_rng(0).standard_normal((6, 3, 12, 12), np.float32)
    paths = {"float": save(activation_net(), folder / "act.onnx"),
             "chain": save(activation_chain(), folder / "chain.onnx"), "data": write_npz(folder / "x.npz", x=images)}
    for float_key, activation_type in (("float", "uint8"), ("float", "int8"), ("chain", "int8")):
        key = activation_type if float_key == "float" else f"chain {activation_type}"
        model = load_model(paths[float_key])
        paths[key] = folder / f"{float_key}.{activation_type}.onnx"
        quantize_model(model, load_data(paths["data"], model), Recipe(activation_type=activation_type), paths[key])
    return paths


@pytest.fixture(scope="session")
def demo_int8_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo quantized once (QDQ, per-channel weights), as a user would open it by mistake."""
    from q8studio.core.data import load_data
    from q8studio.core.demo import demo_assets
    from q8studio.core.model import load_model
    from q8studio.core.quantize import quantize_model
    from q8studio.core.recipe import Recipe

    assets = demo_assets()
    model = load_model(assets.model)
    output = tmp_path_factory.mktemp("int8") / "demo.int8.onnx"
    quantize_model(model, load_data(assets.calibration, model, samples=32), Recipe(granularity="per-channel"), output)
    return output


@pytest.fixture
def decide_speed(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable], None]:
    """Which layers int8 makes slower, and which keep-in-float candidate runs fastest, depend on the CPU:
    the function returned decides both for a test. ``slower(layer)`` picks the integer layers int8 makes
    slower; the candidate with the fewest nodes, the one keeping the most in float, is the fastest."""
    from q8studio.core import speedup
    from q8studio.core.profile import LayerTiming

    def decide(slower: Callable[[LayerTiming], bool]) -> None:
        monkeypatch.setattr(LayerTiming, "slower_in_int8", property(
            lambda layer: layer.in_model and layer.integer and slower(layer)))
        monkeypatch.setattr(speedup, "alternating_latency",
                            lambda models, *args, **kwargs: [float(len(m.proto.graph.node)) for m in models])
    return decide


@pytest.fixture
def stem_slower(decide_speed: Callable[[Callable], None]) -> None:
    """The demo's first convolution is slower in int8, so that keeping slower layers in float keeps it."""
    decide_speed(lambda layer: layer.node == "/stem/conv/Conv")


@pytest.fixture(autouse=True)
def _no_worker_thread_left_running():
    """Fail a test that leaves a q8studio worker QThread running (it would outlive its window)."""
    yield
    import sys

    tasks = sys.modules.get("q8studio.gui.tasks")
    if tasks is None:  # core tests never import Qt
        return
    running = tasks.running_threads()
    for thread in running:
        thread.quit()
        thread.wait(5000)
    if running:
        pytest.fail(f"worker threads left running: {[t.objectName() for t in running]}")
