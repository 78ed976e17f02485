"""Explain on int8 layers that move values (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice, Gather): the
8-bit copy and the QDQ definition against ONNX Runtime itself.

The single-layer models are built with onnx.helper as a quantizer writes them, over the arguments real networks
give these layers (negative and clamped Slice bounds, backward steps, negative Gather indices, default perms);
where the element positions come from is checked against onnx's own reference implementation of each op.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from builders import KERNEL_WAYS, embedding_net, mover_net, qdq_pooling, quant_params, run_exposed, save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.explain import explain_node
from q8studio.core.explainmove import DEFINITION_CHECK, KERNEL_CHECK, MERGED, MoveExplanation
from q8studio.core.model import load_model
from q8studio.core.movekernels import dequantize_move_quantize, moved_8bit, source_positions
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe

I64 = np.int64
MOVES = {
    "Transpose": ("Transpose", {"perm": [0, 2, 3, 1]}, {}, [2, 3, 4, 5]),
    "Transpose, default perm": ("Transpose", {}, {}, [2, 3, 4, 5]),
    "Reshape with 0 and -1": ("Reshape", {}, {"shape": np.array([0, -1, 5], I64)}, [2, 3, 4, 5]),
    "Flatten at axis 2": ("Flatten", {"axis": 2}, {}, [2, 3, 4, 5]),
    "Squeeze": ("Squeeze", {}, {"axes": np.array([1], I64)}, [2, 1, 4, 5]),
    "Unsqueeze": ("Unsqueeze", {}, {"axes": np.array([0, 3], I64)}, [2, 3, 4]),
    "Slice backward, clamped": ("Slice", {}, {"starts": np.array([-1, 0], I64), "ends": np.array([-1000, 5], I64),
                                              "axes": np.array([2, 3], I64), "steps": np.array([-2, 2], I64)},
                                [2, 3, 7, 6]),
    "Slice past the end": ("Slice", {}, {"starts": np.array([1], I64), "ends": np.array([2**63 - 1], I64),
                                         "axes": np.array([-1], I64)}, [2, 3, 4, 5]),
    "Slice, no axes": ("Slice", {}, {"starts": np.array([1, -2], I64), "ends": np.array([2, 100], I64)}, [3, 4, 5]),
    "Gather, negative indices": ("Gather", {"axis": 1}, {"indices": np.array([[2, 0], [-1, 1]], I64)}, [2, 3, 4]),
    "Gather, scalar index": ("Gather", {"axis": -1}, {"indices": np.array(3, I64)}, [2, 3, 5]),
}


def _reference_positions(op_type: str, attributes: dict, operands: dict, shape: list) -> np.ndarray:
    """The op applied to the positions of its input's elements by onnx's reference implementation."""
    node = helper.make_node(op_type, ["x", *operands], ["y"], **attributes)
    graph = helper.make_graph([node], "positions", [helper.make_tensor_value_info("x", TensorProto.INT64, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    positions = np.arange(int(np.prod(shape)), dtype=I64).reshape(shape)
    return ReferenceEvaluator(model).run(None, {"x": positions, **operands})[0]


@pytest.mark.parametrize("op_type, attributes, operands, shape", MOVES.values(), ids=MOVES.keys())
def test_source_positions_follow_the_onnx_definition(op_type: str, attributes: dict, operands: dict,
                                                     shape: list) -> None:
    expected = _reference_positions(op_type, attributes, operands, shape)
    positions = source_positions(op_type, attributes, tuple(shape), expected.shape, operands)
    np.testing.assert_array_equal(positions, expected)


@pytest.mark.parametrize("qtype, int8_kernels", KERNEL_WAYS.values(), ids=KERNEL_WAYS.keys())
@pytest.mark.parametrize("op_type, attributes, operands, shape", MOVES.values(), ids=MOVES.keys())
def test_move_references_are_bit_exact_with_onnx_runtime(tmp_path: Path, qtype: int, int8_kernels: bool,
                                                         op_type: str, attributes: dict, operands: dict,
                                                         shape: list) -> None:
    rng = np.random.default_rng(7)
    low, high = (0, 256) if qtype == TensorProto.UINT8 else (-128, 128)
    for same in (True, False):  # the quantizer's own output quantization, and another one
        s_x = float(np.float32(10 ** rng.uniform(-3, 0)))
        scales = (s_x, s_x if same else float(np.float32(s_x * 1.3)))
        z_x = int(rng.integers(low, high))
        zeros = (z_x, z_x if same else int(rng.integers(low, high)))
        model = load_model(save(qdq_pooling(op_type, attributes, shape, scales, zeros, qtype, operands=operands),
                                tmp_path / "move.onnx"))
        x = (rng.standard_normal(shape) * 60 * s_x).astype(np.float32)  # saturates at both ends too
        x_q, y_q = run_exposed(model, ["x_q", "y_q"], {"x": x}, int8_kernels=int8_kernels)
        positions = source_positions(op_type, attributes, x_q.shape, y_q.shape, operands)
        x_params, y_params = (quant_params(f"{n}_q", s, z, qtype) for n, s, z in zip("xy", scales, zeros))
        np.testing.assert_array_equal(dequantize_move_quantize(x_q, x_params, y_params, positions), y_q)
        if same:
            np.testing.assert_array_equal(moved_8bit(x_q, positions), y_q)


@pytest.fixture(scope="module")
def movers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """builders.mover_net and its data, quantized by q8studio with uint8 and with int8 activations."""
    folder = tmp_path_factory.mktemp("movers")
    paths = {"float": save(mover_net(), folder / "movers.onnx"),
             "data": write_npz(folder / "x.npz", x=np.random.default_rng(1).standard_normal((4, 3, 8, 8), np.float32))}
    for activation_type in ("uint8", "int8"):
        model = load_model(paths["float"])
        paths[activation_type] = folder / f"movers.{activation_type}.onnx"
        quantize_model(model, load_data(paths["data"], model), Recipe(activation_type=activation_type),
                       paths[activation_type])
    return paths


@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
@pytest.mark.parametrize("node", ["/t/Transpose", "/r/Reshape", "/s/Slice", "/g/Gather", "/u/Unsqueeze", "/q/Squeeze",
                                  "/f/Flatten"])
def test_every_move_of_a_quantized_net_is_a_bit_exact_copy(movers: dict[str, Path], node: str,
                                                            activation_type: str) -> None:
    int8, float_model = load_model(movers[activation_type]), load_model(movers["float"])
    data = load_data(movers["data"], int8)
    e = explain_node(int8, node, data, 2, float_model)
    assert isinstance(e, MoveExplanation) and e.kind == node.rsplit("/", 1)[1]
    assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK]
    assert all(c.bit_exact for c in e.checks) and e.checks[0].total == e.runtime.size
    ex = e.example
    assert e.runtime[ex.index] == e.x_q[ex.source] == ex.x_q == ex.kernel_y_q  # the element is a copy
    assert e.sqnr_db is not None and e.float_tensor is not None and any("no error of its own" in n for n in e.notes)
    if node == "/t/Transpose":  # to channels-last after a convolution ONNX Runtime runs channels-last: undone
        assert e.runtime_kernel == MERGED and any("runs no kernel for this Transpose" in n for n in e.notes)
    else:  # the plain kernel, run on the 8-bit tensor
        assert e.runtime_kernel == e.op_type
        assert any(f"runs {e.op_type} on the {e.x.dtype} tensor itself" in n for n in e.notes)
    assert "y_q = x_q" in "\n".join(e.steps()) and json.loads(json.dumps(e.to_dict()))["movement"] == e.movement


def test_an_embedding_lookup_copies_codes_of_the_stored_table(tmp_path: Path) -> None:
    float_model = load_model(save(embedding_net(), tmp_path / "emb.onnx"))
    ids = np.random.default_rng(3).integers(-16, 16, (6, 5)).astype(np.int64)  # negative ids count from the end
    data_path = write_npz(tmp_path / "ids.npz", ids=ids)
    int8 = quantize_model(float_model, load_data(data_path, float_model), Recipe(), tmp_path / "emb.int8.onnx").int8
    e = explain_node(int8, "/emb/Gather", load_data(data_path, int8), 2, float_model)
    assert e.runtime_kernel == "Gather" and all(c.bit_exact for c in e.checks) and e.checks[0].total == 40
    assert e.x_q.shape == (16, 8) and e.x.tensor in int8.graph.initializers  # the table's stored codes
    shown = ", ".join(str(i) for i in ids[2])
    assert e.movement == f"[16, 8] → [1, 5, 8], indices [{shown}] along axis 0"
    ex = e.example
    assert ex.source == (int(ids[2, ex.index[1]]) % 16, ex.index[2]) and e.runtime[ex.index] == e.x_q[ex.source]


@pytest.mark.parametrize("scales, zeros", [((0.05, 0.05), (128, 128)), ((0.05, 0.08), (128, 120))],
                         ids=["kept quantization", "requantized"])
def test_a_transpose_runs_on_8bit_values_unless_it_changes_the_quantization(tmp_path: Path, scales: tuple,
                                                                            zeros: tuple) -> None:
    model = load_model(save(qdq_pooling("Transpose", {"perm": [0, 2, 1]}, [1, 3, 4], scales, zeros),
                            tmp_path / "transpose.onnx"))
    x = np.random.default_rng(2).standard_normal((3, 3, 4), np.float32) * 3
    e = explain_node(model, "pool", load_data(write_npz(tmp_path / "x.npz", x=x), model), 1)
    assert e.runtime_kernel == "Transpose" and all(c.bit_exact for c in e.checks)
    assert e.movement == "[1, 3, 4] → [1, 4, 3], perm [0, 2, 1]"
    assert e.example.source == (0, e.example.index[2], e.example.index[1])
    if scales[0] == scales[1]:
        assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK]
        assert any("runs Transpose on the uint8 tensor itself" in n for n in e.notes)
    else:
        assert [c.reference for c in e.checks] == [DEFINITION_CHECK]
        assert any("requantized" in n for n in e.notes) and "S_y ≠ S_x" in "\n".join(e.steps())


def test_cli_explains_the_demo_flatten(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       demo_int8_path: Path) -> None:
    assets = demo_assets()
    argv = ["explain", str(demo_int8_path), "--node", "/flatten/Flatten", "--data", str(assets.test), "--sample", "4",
            "--float", str(assets.model)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("/flatten/Flatten: Flatten of an 8-bit tensor ([1, 32, 1, 1] → [1, 32], row-major "
                          "order kept), run by ONNX Runtime as Flatten (sample 4)")
    assert f"check: {KERNEL_CHECK}: bit-exact with ONNX Runtime (32 elements)" in out
    assert "is input element [0, " in out and "(no arithmetic, no rounding)" in out
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runtime_kernel"] == "Flatten" and data["checks"][0]["bit_exact"] and data["example"]["source"][0] == 0
