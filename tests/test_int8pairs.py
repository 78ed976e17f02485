"""Exposing tensors of a model with int8 activations runs the kernels the model runs without them.

On x86 ONNX Runtime converts an int8 Quantize/Dequantize pair to uint8 only where the QuantizeLinear's codes go to
that one DequantizeLinear; exposing the codes (Explain) used to keep the pair int8 and run the layers around it in
float. These tests run q8studio's int8 models with and without tensors exposed and compare the kernels ONNX Runtime
chose, the network's outputs, the per-layer error and Explain's kernel with those of the model as it stands.
"""

from __future__ import annotations

import platform
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from builders import save, softmax_net, write_npz
from q8studio.core.data import load_data
from q8studio.core.evaluate import analyse_errors, dequantized_counterparts
from q8studio.core.demo import demo_assets
from q8studio.core.explain import EXPLAINABLE_OPS, INTEGER_KERNELS, explain_node
from q8studio.core.explainrun import kernel_name, kernel_of
from q8studio.core.int8pairs import int8_quantizers
from q8studio.core.metrics import ErrorAccumulator
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.movekernels import MOVERS
from q8studio.core.optypes import QDQ_OPS
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.runtimegraph import LAYOUT_OPS, RuntimeNode, open_session
from q8studio.core.session import INT8_KERNELS, BatchRunner, cpu_session, session_options

X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
FUSABLE = [op for op in EXPLAINABLE_OPS if op != "MaxPool" and op not in MOVERS]
"""Layers ONNX Runtime runs with an integer kernel when it fuses them (a MaxPool runs on the codes either way; a
layer that moves values runs its own kernel on the codes)."""


@pytest.fixture(scope="module")
def softmax_int8(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """builders.softmax_net quantized with int8 activations: its float and int8 paths and data."""
    folder = tmp_path_factory.mktemp("int8pairs")
    data = write_npz(folder / "x.npz", x=np.random.default_rng(3).standard_normal((16, 3, 12, 12), np.float32))
    float_path = save(softmax_net(), folder / "sm.onnx")
    model = load_model(float_path)
    quantize_model(model, load_data(data, model), Recipe(activation_type="int8"), folder / "sm.int8.onnx")
    return {"float": float_path, "int8": folder / "sm.int8.onnx", "data": data}


def nets(quantized_net: dict[str, Path], softmax_int8: dict[str, Path]) -> dict[str, tuple[LoadedModel, Path]]:
    """The int8-activation models under test and their data."""
    return {"activation net": (load_model(quantized_net["int8"]), quantized_net["data"]),
            "softmax net": (load_model(softmax_int8["int8"]), softmax_int8["data"])}


def compute_kernels(kernels: list[RuntimeNode]) -> Counter:
    """The kernels that compute, by op type: not Quantize/Dequantize and layout work."""
    return Counter(k.op_type for k in kernels if k.op_type not in QDQ_OPS and k.op_type not in LAYOUT_OPS)


def codes(model: LoadedModel) -> list[str]:
    """Every QuantizeLinear output of ``model``: the 8-bit codes Explain exposes."""
    return [node.outputs[0] for node in model.graph.nodes if node.op_type == "QuantizeLinear"]


@pytest.mark.parametrize("exposure", ["codes", "dequantized"])
@pytest.mark.parametrize("net", ["activation net", "softmax net"])
def test_exposed_tensors_leave_the_kernels_and_outputs_as_the_model_runs(tmp_path: Path, quantized_net: dict,
                                                                          softmax_int8: dict, net: str, exposure: str
                                                                          ) -> None:
    """Explain exposes a layer's codes, the per-layer error every dequantized activation."""
    model, data_path = nets(quantized_net, softmax_int8)[net]
    feed = next(load_data(data_path, model).batches(16))
    outputs = list(model.graph.outputs)
    plain_session, plain_kernels = open_session(model.proto, tmp_path, threads=1)
    plain = plain_session.run(outputs, feed)
    exposed = codes(model) if exposure == "codes" else list(dequantized_counterparts(model).values())
    session, kernels = open_session(model.proto, tmp_path, outputs=exposed, threads=1)
    runner = BatchRunner(model, session)
    values = runner.run(outputs + exposed, feed)
    assert compute_kernels(kernels) == compute_kernels(plain_kernels)
    for before, after in zip(plain, values):
        np.testing.assert_array_equal(before, after)
    if exposure == "codes":
        assert all(value.dtype == np.int8 for value in values[len(outputs):])  # the model's own type, shifted back
        if X86:  # ONNX Runtime converts pairs to uint8 here (on ARM its kernels take int8): those codes came as uint8
            assert runner.uint8_codes and runner.uint8_codes <= set(exposed)


def test_explain_names_the_kernel_the_model_runs(tmp_path: Path, quantized_net: dict, softmax_int8: dict) -> None:
    for model, data_path in nets(quantized_net, softmax_int8).values():
        _, plain_kernels = open_session(model.proto, tmp_path, threads=1)
        data = load_data(data_path, model)
        for node in model.graph.nodes:
            if node.op_type in ("Sigmoid", "LeakyRelu", "Mul", "Concat", "Softmax", "Conv"):
                e = explain_node(model, node.name, data, 0)
                assert e.runtime_kernel == kernel_name(kernel_of(plain_kernels, model.graph, node)), node.name
                assert e.checks[0].exact or not e.runtime_kernel.startswith("QLinear"), node.name


def test_per_layer_error_of_int8_activations_is_that_of_the_model_as_run(softmax_int8: dict) -> None:
    float_model, int8_model = load_model(softmax_int8["float"]), load_model(softmax_int8["int8"])
    data = load_data(softmax_int8["data"], float_model)
    analysis = analyse_errors(float_model, int8_model, data)
    feed = next(data.batches(16))
    expected = ErrorAccumulator()
    expected.update(*(cpu_session(model.proto).run(["y"], feed)[0] for model in (float_model, int8_model)))
    got = analysis.outputs["y"]  # the same differences, added up in other batches
    assert (got.noise, got.max_abs) == (expected.noise, expected.max_abs)
    assert got.sqnr_db == pytest.approx(expected.sqnr_db, rel=1e-6)


def test_int8_kernels_asked_for_keep_int8_codes(softmax_int8: dict) -> None:
    model = load_model(softmax_int8["int8"])
    options = session_options(threads=1)
    options.add_session_config_entry(INT8_KERNELS, "1")
    session = cpu_session(model.proto, outputs=codes(model), options=options)
    types = {output.name: output.type for output in session.get_outputs()}
    assert all(types[name] == "tensor(int8)" for name in codes(model))
    assert int8_quantizers(model.proto.graph) and BatchRunner(model, session).uint8_codes == set()


def test_explain_says_which_shared_codes_keep_a_layer_in_float(quantized_net: dict) -> None:
    model = load_model(quantized_net["int8"])
    e = explain_node(model, "/gate/Sigmoid", load_data(quantized_net["data"], model), 0)
    said = [note for note in e.notes if "only where its codes go to one layer" in note]
    if e.runtime_kernel == "Sigmoid":  # x86: c2's pair stays int8, read by the Sigmoid and the Mul
        assert said == [said[0]] and "c2_QuantizeLinear_Output go to /gate/Sigmoid and /swish/Mul." in said[0]
    else:
        assert not said
    chain = load_model(quantized_net["chain int8"])
    e = explain_node(chain, "/gate/Sigmoid", load_data(quantized_net["data"], chain), 0)
    assert e.runtime_kernel == "QLinearSigmoid" and not any("go to one layer" in note for note in e.notes)


@pytest.mark.parametrize("net", ["demo", "activation net"])
def test_quantize_names_the_layers_int8_activations_leave_in_float(tmp_path: Path, quantized_net: dict, net: str
                                                                   ) -> None:
    """The note's layers are those whose kernel in ONNX Runtime's optimized graph computes in float."""
    assets = demo_assets()
    float_path, data_path = ((assets.model, assets.calibration) if net == "demo"
                             else (quantized_net["float"], quantized_net["data"]))
    model = load_model(float_path)
    result = quantize_model(model, load_data(data_path, model, samples=32), Recipe(activation_type="int8"),
                            tmp_path / "int8.onnx")
    int8 = result.int8
    _, kernels = open_session(int8.proto, tmp_path, threads=1)
    in_float = [node.name for node in int8.graph.nodes if node.op_type in FUSABLE
                and not kernel_name(kernel_of(kernels, int8.graph, node)).startswith(INTEGER_KERNELS)]
    said = [note for note in result.prepared.notes if note.startswith("With int8 activations")]
    if not X86:
        return  # elsewhere ONNX Runtime's kernels take int8 codes and nothing needs saying
    assert len(in_float) >= 5 and said == [said[0]]
    assert f"runs {len(in_float)} quantized layers in float: " in said[0]
    assert all(name in said[0] for name in in_float[:6])
    uint8 = quantize_model(model, load_data(data_path, model, samples=32), Recipe(), tmp_path / "uint8.onnx")
    assert not any(note.startswith("With int8 activations") for note in uint8.prepared.notes)
