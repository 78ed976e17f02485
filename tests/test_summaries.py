"""Large non-negative activations are summarised inside ONNX Runtime: which ones, and what calibration then records."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from q8studio.core.calibrate import collect_statistics
from q8studio.core.clipping import activation_range
from q8studio.core.data import load_data
from q8studio.core.model import load_model
from q8studio.core.summaries import non_negative_tensors, plan_summaries

from builders import save, write_npz


def signs_model() -> onnx.ModelProto:
    """x [N, 4, 40, 40] through operators that do and do not keep values non-negative."""
    nodes = [
        helper.make_node("Relu", ["x"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["relu", "relu"], ["both_relu"], axis=1),
        helper.make_node("Concat", ["relu", "x"], ["relu_and_x"], axis=1),
        helper.make_node("Clip", ["x", "zero", "six"], ["relu6"]),
        helper.make_node("Clip", ["x", "minus_one", "six"], ["clipped"]),
        helper.make_node("Add", ["relu", "relu"], ["sum"]),
    ]
    constants = [numpy_helper.from_array(np.array(v, np.float32), n)
                 for n, v in (("zero", 0.0), ("six", 6.0), ("minus_one", -1.0))]
    graph = helper.make_graph(
        nodes, "signs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 40, 40])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
         for name in ("pooled", "both_relu", "relu_and_x", "relu6", "clipped", "sum")], constants)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_only_tensors_that_cannot_be_negative_count_as_non_negative() -> None:
    assert non_negative_tensors(signs_model()) == {"relu", "pooled", "both_relu", "relu6"}


def test_large_non_negative_4d_activations_are_summarised_on_a_fair_odd_grid_within_the_budget(tmp_path) -> None:
    model = load_model(save(signs_model(), tmp_path / "signs.onnx"))
    names = ["x", "relu", "pooled", "both_relu", "relu_and_x", "relu6", "sum"]

    plans = plan_summaries(model, names, budget=800)

    # 6,400 / 12,800 / 6,400 values a sample, at least 8 budgets; "pooled" has 1,600: binned flat
    assert set(plans) == {"relu", "both_relu", "relu6"}
    assert plans["relu"].step == 3 and plans["relu"].grid_values_per_sample == 4 * 14 * 14
    assert plans["both_relu"].step == 5 and plans["both_relu"].grid_values_per_sample == 8 * 8 * 8
    assert plans["relu"].stride == round(6400 / 784) == 8
    assert all(plan.step % 2 == 1 for plan in plans.values())
    assert plan_summaries(model, names, budget=0) == {}  # every value binned: nothing to sample
    # "relu" is below 8 budgets of 1,000: returned whole, its flat sample moves from sample to sample
    assert set(plan_summaries(model, names, budget=1000)) == {"both_relu"}
    # within 400 values "both_relu" needs a step of 7: a grid of 6 rows would over-weight the border
    assert set(plan_summaries(model, names, budget=400)) == {"relu", "relu6"}


def test_summary_outputs_get_names_the_model_does_not_use(tmp_path) -> None:
    proto = signs_model()
    proto.graph.node.append(helper.make_node("Identity", ["relu"], ["relu_grid"]))
    model = load_model(save(proto, tmp_path / "signs.onnx"))

    plan = plan_summaries(model, ["relu"], budget=800)["relu"]

    assert plan.grid not in {"relu_grid"} and plan.grid.startswith("relu_grid") and plan.maxima != plan.grid


def test_a_tensor_with_unknown_spatial_size_is_returned_whole(tmp_path) -> None:
    proto = signs_model()
    del proto.graph.value_info[:]
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    model = load_model(save(onnx.shape_inference.infer_shapes(proto), tmp_path / "signs.onnx"))

    assert plan_summaries(model, ["relu"], budget=800) == {}


def test_a_summarised_tensor_keeps_its_exact_maximum_and_count_and_bins_its_grid(tmp_path) -> None:
    """The largest value sits off the grid (row 1, column 1 of a step-3 grid), yet is the maximum;
    the histogram holds the grid's values; with no zero on the grid the minimum is the grid's, above the
    true one, and the int8 range is the same as the exact minimum would give: it starts at zero."""
    model = load_model(save(signs_model(), tmp_path / "signs.onnx"))
    x = np.random.default_rng(0).uniform(1.0, 2.0, (5, 4, 40, 40)).astype(np.float32)
    x[2, 1, 1, 1] = 9.5  # off the grid
    x[3, 0, 4, 4] = 0.5  # the true minimum, off the grid too
    data = load_data(write_npz(tmp_path / "x.npz", x=x), model)

    stats = collect_statistics(model, data, names=["relu", "sum"], histogram_values=800)

    relu, grid = stats["relu"], x[:, :, ::3, ::3]
    assert relu.count == x.size and relu.max == 9.5
    assert relu.min == float(grid.min()) > 0.5
    assert relu.hist.sum() == grid.size and relu.stride == 8
    assert stats["sum"].min == float((2 * x).min())  # returned whole: every value seen
    assert activation_range(relu, "minmax") == (0.0, 9.5)
