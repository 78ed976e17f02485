"""A new run on the same model and data reuses the previous run's calibration statistics, and only then."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import load_model
from q8studio.core.quantize import QuantizeResult, quantize_model
from q8studio.core.recipe import Recipe

SAMPLES = 100


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


@pytest.fixture
def demo(tmp_path: Path):
    """The demo model and a copy of its calibration data that the tests may rewrite."""
    assets = demo_assets()
    calib = tmp_path / "calib.npz"
    shutil.copyfile(assets.calibration, calib)
    return load_model(assets.model), calib


def _run(model, calib: Path, out: Path, previous: QuantizeResult | None = None, samples: int = SAMPLES,
         **recipe: object) -> QuantizeResult:
    data = load_data(calib, model)  # loaded afresh each time, as the GUI does
    settings = Recipe(**{"granularity": "per-channel", "samples": samples, **recipe})
    return quantize_model(model, data, settings, out, histograms=True, previous=previous)


def test_a_new_method_reuses_the_statistics_and_writes_what_a_fresh_run_writes(demo, tmp_path) -> None:
    model, calib = demo
    first = _run(model, calib, tmp_path / "minmax.onnx", method="minmax")
    second = _run(model, calib, tmp_path / "entropy.onnx", previous=first, method="entropy")
    fresh = _run(model, calib, tmp_path / "fresh.onnx", method="entropy")
    assert not first.statistics_reused and second.statistics_reused and not fresh.statistics_reused
    assert all(second.stats[name] is first.stats[name] for name in second.stats)
    assert second.ranges == fresh.ranges and second.ranges != first.ranges
    expected = _initializers(fresh.output_path)
    actual = _initializers(second.output_path)
    assert actual.keys() == expected.keys()
    assert all(np.array_equal(actual[name], expected[name]) for name in expected)


def test_a_new_granularity_reuses_them_all(demo, tmp_path) -> None:
    model, calib = demo
    first = _run(model, calib, tmp_path / "a.onnx", method="percentile")
    per_tensor = _run(model, calib, tmp_path / "b.onnx", previous=first, method="percentile", granularity="per-tensor")
    assert per_tensor.statistics_reused == len(per_tensor.stats) == len(first.stats)


def test_a_layer_kept_in_float_calibrates_only_the_tensors_it_newly_needs(demo, tmp_path) -> None:
    """A ReLU kept in float no longer folds into the Conv before it: the Conv's output needs a range."""
    model, calib = demo
    first = _run(model, calib, tmp_path / "a.onnx")
    exclude = ("/stem/relu/Relu",)
    kept = _run(model, calib, tmp_path / "b.onnx", previous=first, exclude=exclude)
    fresh = _run(model, calib, tmp_path / "c.onnx", exclude=exclude)
    new = [name for name in kept.stats if name not in first.stats]
    assert new == ["/stem/bn/BatchNormalization_output_0"] and kept.statistics_reused == len(kept.stats) - 1
    assert all(kept.stats[name] is first.stats[name] for name in kept.stats if name not in new)
    assert kept.ranges == fresh.ranges


def test_statistics_are_collected_again_when_anything_they_depend_on_changed(demo, tmp_path) -> None:
    model, calib = demo
    first = _run(model, calib, tmp_path / "a.onnx")
    assert not _run(model, calib, tmp_path / "b.onnx", previous=first, samples=SAMPLES - 1).statistics_reused
    assert not _run(model, calib, tmp_path / "c.onnx", previous=first, ema_momentum=0.5).statistics_reused
    assert not _run(load_model(model.path), calib, tmp_path / "d.onnx", previous=first).statistics_reused

    images = dict(np.load(calib))
    images["image"] = images["image"][::-1].copy()
    np.savez(calib, **images)
    os.utime(calib, ns=(0, 0))  # a new modification time even on a coarse clock
    assert not _run(model, calib, tmp_path / "e.onnx", previous=first).statistics_reused


def test_statistics_without_histograms_do_not_serve_a_method_that_needs_them(demo, tmp_path) -> None:
    model, calib = demo
    data = load_data(calib, model)
    first = quantize_model(model, data, Recipe(method="minmax", samples=SAMPLES), tmp_path / "a.onnx")
    assert not any(s.histogram for s in first.stats.values())
    second = quantize_model(model, data, Recipe(method="entropy", samples=SAMPLES), tmp_path / "b.onnx", previous=first)
    assert not second.statistics_reused and all(s.histogram for s in second.stats.values())


def test_data_rewritten_with_its_old_size_and_modification_time_is_calibrated_again(demo, tmp_path) -> None:
    """``cp -p`` over the file keeps both; the change time (which no user call can set back) tells."""
    model, calib = demo
    images = dict(np.load(calib))
    np.savez(calib, **images)  # uncompressed: the rewrite below keeps the size
    before = calib.stat()
    first = _run(model, calib, tmp_path / "a.onnx")
    images["image"] = images["image"][::-1].copy()
    np.savez(calib, **images)
    os.utime(calib, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert calib.stat().st_size == before.st_size and calib.stat().st_mtime_ns == before.st_mtime_ns
    assert not _run(model, calib, tmp_path / "b.onnx", previous=first).statistics_reused
