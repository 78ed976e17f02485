"""Softmax output scales with a whole-number reciprocal: what QLinearSoftmax's K = floor(1/S_y) needs to be exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from builders import save, softmax_net, write_npz
from q8studio.core.data import load_data
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.softmaxscales import whole_reciprocal_scale


@pytest.mark.parametrize("scale", [1 / 255, 1 / 256, 0.0039199, 0.00389894, 1 / 425.3, 0.6 / 255, 1.0, 0.3])
def test_the_scale_keeps_k_and_makes_1_over_s_whole(scale: float) -> None:
    whole = np.floor(np.float32(1) / np.float32(scale) * (1 + 1e-6))  # 254.99998 (1/float32(1/255)) is 255
    snapped = whole_reciprocal_scale(scale)
    assert snapped.dtype == np.float32
    assert np.floor(np.float32(1) / snapped) == whole  # ONNX Runtime's K, computed as it does
    assert 0 <= 1 / float(snapped) - whole < 1e-6 * whole  # 1/S_y is K within float32
    assert snapped >= np.float32(scale) * (1 - 1e-6)  # the range grows, if at all; it never shrinks a step


def test_float32_of_1_over_255_lies_above_it_so_the_scale_steps_below_it() -> None:
    assert np.floor(np.float32(1) / np.float32(1 / 255)) == 254
    snapped = whole_reciprocal_scale(1 / 255)
    assert snapped == np.nextafter(np.float32(1 / 255), np.float32(0))


@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
def test_quantize_writes_the_softmax_output_with_it_and_says_so(tmp_path: Path, activation_type: str) -> None:
    model = load_model(save(softmax_net(), tmp_path / "s.onnx"))
    data = load_data(write_npz(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((6, 3, 12, 12),
                                                                                              np.float32)), model)
    result = quantize_model(model, data, Recipe(activation_type=activation_type), tmp_path / "s.int8.onnx")
    written = {t.name: numpy_helper.to_array(t) for t in onnx.load(tmp_path / "s.int8.onnx").graph.initializer}
    scale, zero_point = written["s1_scale"], written["s1_zero_point"]
    assert 1 / float(scale) - np.floor(np.float32(1) / scale) < 1e-4
    assert int(zero_point) == (0 if activation_type == "uint8" else -128)  # the calibrated zero point stays
    low, high = result.ranges["s1"]  # the range the written scale and zero point represent, as reported
    assert low == 0 and high == pytest.approx(float(scale) * 255, rel=1e-7)
    notes = [note for note in result.prepared.notes if note.startswith("/attn/Softmax [Softmax]")]
    assert len(notes) == 1 and f"output scale 1/{int(np.floor(np.float32(1) / scale))} instead of" in notes[0]


def test_an_excluded_softmax_keeps_its_float_output(tmp_path: Path) -> None:
    model = load_model(save(softmax_net(), tmp_path / "s.onnx"))
    data = load_data(write_npz(tmp_path / "x.npz", x=np.ones((2, 3, 12, 12), np.float32)), model)
    result = quantize_model(model, data, Recipe(exclude=("/attn/Softmax",)), tmp_path / "s.int8.onnx")
    assert not any("[Softmax]" in note for note in result.prepared.notes)
