"""Models older than ONNX Runtime runs (opset < 7, as PyTorch exported in 2018) are upgraded in memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, write_npz
from q8studio.__main__ import main
from q8studio.core.model import load_model
from q8studio.core.session import cpu_session

TEST_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
PYTORCH_EXPORTS = TEST_DATA / "pytorch-converted"


def _tensor(path: Path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _export_folder(name: str) -> Path:
    """Where onnx keeps a PyTorch-exported test model: with the modules' exports or the operators'."""
    converted = PYTORCH_EXPORTS / name
    return converted if converted.is_dir() else TEST_DATA / "pytorch-operator" / name


def _old_export(name: str, tmp_path: Path) -> Path:
    """A copy of one of onnx's PyTorch-exported test models, whose opset is 6."""
    path = shutil.copy(_export_folder(name) / "model.onnx", tmp_path / f"{name}.onnx")
    assert onnx.load(path).opset_import[0].version == 6
    return Path(path)


@pytest.mark.parametrize("name", ["test_Linear", "test_BatchNorm2d_eval", "test_AvgPool2d", "test_GLU",
                                  "test_PReLU_1d_multiparam", "test_PReLU_3d_multiparam", "test_operator_addconstant"])
def test_an_opset_6_export_runs_as_exported_after_an_upgrade_in_memory(tmp_path: Path, name: str) -> None:
    path = _old_export(name, tmp_path)
    with pytest.raises(Exception, match="Could not find an implementation"):  # what users hit without the upgrade
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    before = path.read_bytes()

    model = load_model(path)

    assert model.opset == 7
    assert model.notes == ("Upgraded from opset 6 to 7, the oldest ONNX Runtime runs, in memory (the file is "
                           "unchanged).",)
    assert path.read_bytes() == before
    data = _export_folder(name) / "test_data_set_0"
    feeds = {spec.name: _tensor(data / f"input_{i}.pb") for i, spec in enumerate(model.input_specs())}
    (output,) = cpu_session(model.proto).run(None, feeds)
    np.testing.assert_allclose(output, _tensor(data / "output_0.pb"), rtol=1e-5, atol=1e-5)


def test_an_opset_6_export_quantizes_and_evaluates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _old_export("test_Linear", tmp_path)  # a Gemm on a fixed [4, 10] input
    data = write_npz(tmp_path / "rows.npz", **{"0": np.random.default_rng(0).standard_normal((32, 10), np.float32)})
    out, report = tmp_path / "linear.int8.onnx", tmp_path / "report.json"

    assert main(["quantize", str(path), "--calib", str(data), "--granularity", "per-channel", "-o", str(out),
                 "--report", str(report)]) == 0
    notes = json.loads(report.read_text())["preprocessing"]
    assert notes[0].startswith("Upgraded from opset 6 to 7")
    capsys.readouterr()
    assert main(["evaluate", str(path), str(out), "--data", str(data), "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["outputs"]["3"]["sqnr_db"] > 20  # 24 dB: one Gemm on random rows


def test_a_model_the_converter_cannot_upgrade_loads_as_it_is_and_says_why(tmp_path: Path) -> None:
    pad = helper.make_node("Pad", ["x"], ["y"], paddings=[0, 0, 1, 1, 0, 0, 1, 1])
    graph = helper.make_graph([pad], "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5, 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 1)])
    model.ir_version = 3

    loaded = load_model(save(model, tmp_path / "pad.onnx"))

    assert loaded.opset == 1
    assert loaded.notes == ("Opset 1 is older than ONNX Runtime runs (7), and onnx's version converter cannot "
                            "upgrade this model (No Adapter for Pad).",)


def test_a_per_channel_prelu_slope_keeps_applying_per_channel(tmp_path: Path) -> None:
    """Before opset 7 a PRelu's [C] slope applied along the channel axis; from opset 7 it broadcasts along the
    last one. With C values on the last axis too, a model upgraded as onnx's converter leaves it runs and
    silently computes another function."""
    prelu = helper.make_node("PRelu", ["x", "slope"], ["y"])
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 3]),
              helper.make_tensor_value_info("slope", TensorProto.FLOAT, [3])]  # IR 3 lists initializers as inputs
    graph = helper.make_graph([prelu], "prelu", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 3])],
                              [numpy_helper.from_array(slope, "slope")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    model.ir_version = 3
    x = -np.arange(1, 37, dtype=np.float32).reshape(1, 3, 4, 3)

    (y,) = cpu_session(load_model(save(model, tmp_path / "prelu.onnx")).proto).run(None, {"x": x})

    np.testing.assert_allclose(y, x * slope.reshape(1, 3, 1, 1), rtol=1e-6)
