"""How one int8 Add really computes, checked bit for bit against ONNX Runtime on a real sample.

A residual Add of a QDQ model adds two 8-bit tensors that have their own scales and zero points and writes
a third. This gathers the three tensors' quantization (from the DequantizeLinear on each input and the
QuantizeLinear after the node), runs the model on one sample with the node's 8-bit inputs and output
exposed (exposing the QuantizeLinear output keeps ONNX Runtime's QLinearAdd fusion intact), and recomputes
the output the two ways of :mod:`.addkernels`: ONNX Runtime's x86 kernel and the QDQ graph's definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .addkernels import AddRatios, dequantize_add_quantize, output_bounds, qlinear_add, qlinear_add_sums
from .data import Dataset
from .errors import Q8Error
from .explainrun import (
    Check,
    ExplainedLayer,
    checked_against_runtime,
    dequantizer_of,
    float_value,
    kernel_name,
    kernel_of,
    removed_activation_note,
    requantized_sqnr,
    run_on_sample,
    sole_reader,
)
from .explainsample import sample_feed
from .explainstep import checked_index, pick_element, result_lines, result_values
from .model import LoadedModel, Node
from .runtimegraph import RuntimeNode
from .weights import QuantParams, qdq_params

FUSED_KERNEL = "QLinearAdd"
KERNEL_CHECK = "QLinearAdd's float32 ratios (x86)"
DEFINITION_CHECK = "dequantize, add, quantize (the QDQ graph)"


@dataclass(frozen=True)
class AddElement:
    """Every step behind one output element of the Add."""

    index: tuple[int, ...]
    a_q: int
    b_q: int
    real_a: float  # S_a (a_q - Z_a)
    real_b: float
    real_sum: float  # real_a + real_b, exact
    definition_y_q: int  # dequantize, add, quantize
    inner: float  # b_q r_b + c, float32
    total: float  # a_q r_a + inner, float32
    kernel_y_q: int  # rint(total), saturated
    y_real: float  # S_y (y_q - Z_y) of the kernel's y_q
    runtime_y_q: int
    float_value: float | None

    def steps(self, a: QuantParams, b: QuantParams, y: QuantParams, ratios: AddRatios, relu: bool) -> list[str]:
        """The arithmetic of the element, one line per step: the real sum, the definition, then the kernel."""
        qmin, qmax = output_bounds(y)
        z_a, z_b = int(a.zero_point), int(b.zero_point)
        lines = [
            f"a = S_a·(a_q − Z_a) = {float(a.scale):.6g}·({self.a_q} − {z_a}) = {self.real_a:.6g}",
            f"b = S_b·(b_q − Z_b) = {float(b.scale):.6g}·({self.b_q} − {z_b}) = {self.real_b:.6g}",
            f"a + b = {self.real_sum:.6g}" + (", then the Relu: max(0, a + b)" if relu else ""),
            f"definition: round((a + b) / S_y) + Z_y, in [{qmin}, {qmax}] = {self.definition_y_q}",
            "QLinearAdd, in float32 (r_a, r_b and c above):",
            f"  t = b_q·r_b + c = {self.b_q}·{ratios.b:.6g} {_signed(ratios.constant)} = {self.inner:.9g}",
            f"  t = a_q·r_a + t = {self.a_q}·{ratios.a:.6g} {_signed(self.inner)} = {self.total:.9g}",
            "  (each line one fused multiply-add: one rounding)",
            f"  y_q = rint(t), in [{qmin}, {qmax}] = {self.kernel_y_q}",
        ]
        return lines + result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _signed(value: float) -> str:
    """``+ 1.5`` or ``− 1.5``: a term added in a written sum."""
    return f"{'−' if value < 0 else '+'} {abs(value):.6g}"


@dataclass(kw_only=True)
class AddExplanation(ExplainedLayer):
    """Everything behind one int8 Add's output on one sample, and how it compares."""

    a: QuantParams
    b: QuantParams
    y: QuantParams
    ratios: AddRatios
    relu: bool  # a Relu kept between the Add and its QuantizeLinear
    a_q: np.ndarray
    b_q: np.ndarray
    example: AddElement

    def steps(self) -> list[str]:
        return self.example.steps(self.a, self.b, self.y, self.ratios, self.relu)

    def to_dict(self) -> dict[str, object]:
        return {**self.run_dict(), "a": self.a.to_dict(), "b": self.b.to_dict(), "y": self.y.to_dict(),
                "ratios": self.ratios.__dict__, "relu": self.relu, "example": self.example.to_dict(),
                "steps": self.steps()}


def explain_add(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                threads: int = 0, notes: list[str] | None = None) -> AddExplanation:
    """Explain Add ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see :func:`.explain.explain_node`)."""
    graph = int8_model.graph
    a, b, y, relu = _quantization(int8_model, node)
    on_sample = sample_feed(int8_model, data, sample)
    runs, kernels = run_on_sample(int8_model, [a.tensor, b.tensor, y.tensor], on_sample, threads)
    values = runs[0]
    shape = values[y.tensor].shape
    a_q, b_q, runtime = (on_sample.layer_rows(values[t], shape, "Add") for t in (a.tensor, b.tensor, y.tensor))
    kernel = kernel_of(kernels, graph, node)
    ratios = AddRatios.of(a, b, y)
    fused = kernel is not None and kernel.op_type == FUSED_KERNEL
    by_kernel = qlinear_add(a_q, b_q, ratios, y)
    by_definition = dequantize_add_quantize(a_q, a, b_q, b, y, relu=relu)
    checks = [_check(KERNEL_CHECK, by_kernel, runtime, fused, a_q),
              _check(DEFINITION_CHECK, by_definition, runtime, fused, a_q)]
    notes = list(notes or []) + on_sample.notes(shape) + _notes(node, kernel, relu, float_model)
    float_tensor, float_output = float_value(float_model, graph, node, y.tensor, on_sample, threads, notes)
    index = element if element is not None else pick_element(runtime, y, float_output)
    return AddExplanation(
        node=node.name, op_type="Add", kind="Add", runtime_kernel=kernel_name(kernel), sample=sample,
        a=a, b=b, y=y, ratios=ratios, relu=relu, a_q=a_q, b_q=b_q, runtime=runtime,
        checks=checks if fused else checks[::-1],  # the first check is the one the kernel that ran should meet
        example=_element(node, a, b, y, ratios, a_q, b_q, by_kernel, by_definition, runtime, float_output, index),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _quantization(model: LoadedModel, node: Node) -> tuple[QuantParams, QuantParams, QuantParams, bool]:
    """The quantization of both inputs and of the output, and whether a Relu sits before the QuantizeLinear."""
    graph = model.graph
    inputs = [dequantizer_of(graph, name) for name in node.inputs[:2]]
    if len(node.inputs) != 2 or any(dq is None for dq in inputs):
        raise Q8Error(f"Node {node.name} runs in float: its inputs are not both quantized (a DequantizeLinear feeds "
                      "each input of an int8 Add).")
    after, relu = sole_reader(graph, node.outputs[0]), False
    if after is not None and after.op_type == "Relu":
        after, relu = sole_reader(graph, after.outputs[0]), True
    if after is None or after.op_type != "QuantizeLinear":
        raise Q8Error(f"Node {node.name}'s output is not re-quantized: ONNX Runtime adds the dequantized inputs in "
                      "float32, so there is no 8-bit arithmetic to explain.")
    a, b = (qdq_params(model, dq) for dq in inputs)  # type: ignore[arg-type]
    y = qdq_params(model, after)
    if a.per_channel or b.per_channel or y.per_channel:
        raise Q8Error(f"Node {node.name} has per-channel activation scales; QLinearAdd takes one scale per tensor.")
    return a, b, y, relu


def _check(title: str, reference: np.ndarray, runtime: np.ndarray, fused: bool, a_q: np.ndarray) -> Check:
    return checked_against_runtime(title, reference, runtime, lambda diff: _cause(title, diff, fused, a_q))


def _cause(title: str, diff: np.ndarray, fused: bool, a_q: np.ndarray) -> str:
    if int(diff.max()) > 1:
        return "unexpected: the reference and ONNX Runtime disagree by more than one step"
    if fused and title == DEFINITION_CHECK:
        return ("QLinearAdd folds the scales into r_a, r_b and c and rounds once per fused multiply-add; the "
                "definition rounds after each step and divides by S_y. They round differently where the sum lies "
                "within float32 rounding of a half-integer.")
    if fused and a_q.size == 1:
        return ("the first input is a single value, which ONNX Runtime folds into the constant c in an order the "
                "reference does not reproduce")
    if fused:
        return "unexpected: this formula should match ONNX Runtime's x86 QLinearAdd exactly (another CPU?)"
    if title == KERNEL_CHECK:
        return "ONNX Runtime did not fuse this Add into QLinearAdd: it computed the definition in float32."
    return "unexpected: the unfused graph computes exactly this"


def _notes(node: Node, kernel: RuntimeNode | None, relu: bool, float_model: LoadedModel | None) -> list[str]:
    notes = []
    if kernel is None or kernel.op_type != FUSED_KERNEL:
        name = kernel.op_type if kernel else "an unknown kernel"
        notes.append(f"ONNX Runtime runs this Add as {name} in float32 between DequantizeLinear and QuantizeLinear, "
                     "not as QLinearAdd: the definition is what it computes.")
    else:
        notes.append("On x86 QLinearAdd computes in float32 on the 8-bit values, with two scale ratios and one "
                     "constant; no integer multiplier is involved (ONNX Runtime's ARM kernel uses integer ones).")
    if relu:
        notes.append("A Relu stays between the Add and its QuantizeLinear, so ONNX Runtime cannot fuse them.")
    removed = removed_activation_note(float_model, node.outputs[0]) if float_model is not None and not relu else None
    if removed is not None:
        notes.append(removed)
    return notes


def _element(node: Node, a: QuantParams, b: QuantParams, y: QuantParams, ratios: AddRatios, a_q: np.ndarray,
             b_q: np.ndarray, by_kernel: np.ndarray, by_definition: np.ndarray, runtime: np.ndarray,
             float_output: np.ndarray | None, index: tuple[int, ...]) -> AddElement:
    """The steps of ``runtime[index]``: its inputs, the two sums QLinearAdd rounds, and both references' results."""
    index = checked_index(node, index, runtime.shape)
    a_at, b_at = (int(np.broadcast_to(v, runtime.shape)[index]) for v in (a_q, b_q))
    real_a = float(np.float32(a.scale)) * (a_at - int(a.zero_point))
    real_b = float(np.float32(b.scale)) * (b_at - int(b.zero_point))
    inner, total = qlinear_add_sums(np.array(a_at), np.array(b_at), ratios)
    return AddElement(
        index=index, a_q=a_at, b_q=b_at, real_a=real_a, real_b=real_b, real_sum=real_a + real_b,
        inner=float(inner), total=float(total),
        **result_values(y, by_kernel, by_definition, runtime, float_output, index),
    )
