"""How one int8 Add really computes, checked bit for bit against ONNX Runtime on a real sample.

A residual Add of a QDQ model adds two 8-bit tensors that have their own scales and zero points and writes
a third. This gathers the three tensors' quantization (from the DequantizeLinear on each input and the
QuantizeLinear after the node), runs the model on one sample with the node's 8-bit inputs and output
exposed (exposing the QuantizeLinear output keeps ONNX Runtime's QLinearAdd fusion intact), and recomputes
the output the two ways of :mod:`.addkernels`: ONNX Runtime's x86 kernel and the QDQ graph's definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .addkernels import AddRatios, dequantize_add_quantize, qlinear_add, qlinear_add_sums
from .data import Dataset
from .explainrun import (
    CheckCauses,
    BinaryElement,
    BinaryExplanation,
    binary_inputs,
    float_value,
    kept_relu_notes,
    kernel_and_definition_checks,
    kernel_name,
    ran_as,
    requantized_sqnr,
    run_binary,
    unfused_note,
)
from .explainstep import checked_index, pick_element, result_lines, result_values
from .model import LoadedModel, Node
from .qdq import output_bounds
from .runtimegraph import RuntimeNode
from .weights import QuantParams

FUSED_KERNEL = "QLinearAdd"
KERNEL_CHECK = "QLinearAdd's float32 ratios (x86)"
DEFINITION_CHECK = "dequantize, add, quantize (the QDQ graph)"
CAUSES = CheckCauses(
    KERNEL_CHECK, DEFINITION_CHECK,
    rounding=("QLinearAdd folds the scales into r_a, r_b and c and rounds once per fused multiply-add; the "
              "definition rounds after each step and divides by S_y. They round differently where the sum lies "
              "within float32 rounding of a half-integer."),
    kernel="unexpected: this formula should match ONNX Runtime's x86 QLinearAdd exactly (another CPU?)",
    unfused="ONNX Runtime did not fuse this Add into QLinearAdd: it computed the definition in float32.")


@dataclass(frozen=True, kw_only=True)
class AddElement(BinaryElement):
    """Every step behind one output element of the Add."""

    real_sum: float  # real_a + real_b, exact
    inner: float  # b_q r_b + c, float32
    total: float  # a_q r_a + inner, float32

    def steps(self, a: QuantParams, b: QuantParams, y: QuantParams, ratios: AddRatios, relu: bool) -> list[str]:
        """The arithmetic of the element, one line per step: the real sum, the definition, then the kernel."""
        qmin, qmax = output_bounds(y)
        lines = [
            *self.input_lines(a, b),
            f"a + b = {self.real_sum:.6g}" + (", then the Relu: max(0, a + b)" if relu else ""),
            f"definition: round((a + b) / S_y) + Z_y, in [{qmin}, {qmax}] = {self.definition_y_q}",
            "QLinearAdd, in float32 (r_a, r_b and c above):",
            f"  t = b_q·r_b + c = {self.b_q}·{ratios.b:.6g} {_signed(ratios.constant)} = {self.inner:.9g}",
            f"  t = a_q·r_a + t = {self.a_q}·{ratios.a:.6g} {_signed(self.inner)} = {self.total:.9g}",
            "  (each line one fused multiply-add: one rounding)",
            f"  y_q = rint(t), in [{qmin}, {qmax}] = {self.kernel_y_q}",
        ]
        return lines + result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value)


def _signed(value: float) -> str:
    """``+ 1.5`` or ``− 1.5``: a term added in a written sum."""
    return f"{'−' if value < 0 else '+'} {abs(value):.6g}"


@dataclass(kw_only=True)
class AddExplanation(BinaryExplanation):
    """Everything behind one int8 Add's output on one sample, and how it compares."""

    ratios: AddRatios
    example: AddElement

    def steps(self) -> list[str]:
        return self.example.steps(self.a, self.b, self.y, self.ratios, self.relu)

    def to_dict(self) -> dict[str, object]:
        return {**self.binary_dict(), "ratios": self.ratios.__dict__}


def explain_add(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                threads: int = 0, notes: list[str] | None = None) -> AddExplanation:
    """Explain Add ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see :func:`.explain.explain_node`)."""
    run = run_binary(int8_model, node, data, sample, threads, "adds", FUSED_KERNEL)
    a, b, y, relu, a_q, b_q, runtime, kernel = run.a, run.b, run.y, run.relu, run.a_q, run.b_q, run.runtime, run.kernel
    ratios = AddRatios.of(a, b, y)
    fused = ran_as(kernel, FUSED_KERNEL)
    by_kernel = qlinear_add(a_q, b_q, ratios, y)
    by_definition = dequantize_add_quantize(a_q, a, b_q, b, y, relu=relu)
    checks = kernel_and_definition_checks(runtime, fused, lambda title, diff: _cause(title, diff, fused, a_q),
                                          (KERNEL_CHECK, by_kernel), (DEFINITION_CHECK, by_definition))
    notes = list(notes or []) + run.sample.notes(run.output_shape) + _notes(kernel, fused)
    notes += kept_relu_notes(node, relu, float_model)
    float_tensor, float_output = float_value(float_model, int8_model.graph, node, y.tensor, run.sample, threads, notes)
    index = element if element is not None else pick_element(runtime, y, float_output)
    return AddExplanation(
        node=node.name, op_type="Add", kind="Add", runtime_kernel=kernel_name(kernel), sample=sample,
        a=a, b=b, y=y, ratios=ratios, relu=relu, a_q=a_q, b_q=b_q, runtime=runtime,
        checks=checks,
        example=_element(node, a, b, y, ratios, a_q, b_q, by_kernel, by_definition, runtime, float_output, index),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _cause(title: str, diff: np.ndarray, fused: bool, a_q: np.ndarray) -> str:
    if fused and title == KERNEL_CHECK and a_q.size == 1 and int(diff.max()) <= 1:
        return ("the first input is a single value, which ONNX Runtime folds into the constant c in an order the "
                "reference does not reproduce")
    return CAUSES.why(title, diff, fused)


def _notes(kernel: RuntimeNode | None, fused: bool) -> list[str]:
    if not fused:
        return [unfused_note("this Add", kernel, FUSED_KERNEL)]
    return ["On x86 QLinearAdd computes in float32 on the 8-bit values, with two scale ratios and one constant; no "
            "integer multiplier is involved (ONNX Runtime's ARM kernel uses integer ones)."]


def _element(node: Node, a: QuantParams, b: QuantParams, y: QuantParams, ratios: AddRatios, a_q: np.ndarray,
             b_q: np.ndarray, by_kernel: np.ndarray, by_definition: np.ndarray, runtime: np.ndarray,
             float_output: np.ndarray | None, index: tuple[int, ...]) -> AddElement:
    """The steps of ``runtime[index]``: its inputs, the two sums QLinearAdd rounds, and both references' results."""
    inputs = binary_inputs(a, b, a_q, b_q, checked_index(node, index, runtime.shape), runtime.shape)
    inner, total = qlinear_add_sums(np.array(inputs["a_q"]), np.array(inputs["b_q"]), ratios)
    return AddElement(
        **inputs, real_sum=inputs["real_a"] + inputs["real_b"], inner=float(inner), total=float(total),
        **result_values(y, by_kernel, by_definition, runtime, float_output, inputs["index"]),
    )
