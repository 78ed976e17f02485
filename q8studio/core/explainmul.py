"""How one int8 Mul really computes, checked bit for bit against ONNX Runtime on a real sample.

A Mul of two activations (a swish's x·sigmoid(x), an attention or squeeze-and-excitation gate) multiplies two
8-bit tensors with their own scales and zero points and writes a third. This gathers the three tensors'
quantization, runs the model on one sample with the node's 8-bit inputs and output exposed (which keeps ONNX
Runtime's QLinearMul fusion intact), and recomputes the output the two ways of :mod:`.mulkernels`: ONNX
Runtime's x86 kernel and the QDQ graph's definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
from .explainstep import result_lines, result_values, worked_index
from .model import LoadedModel, Node
from .mulkernels import MulConstants, dequantize_mul_quantize, qlinear_mul, qlinear_mul_steps
from .qdq import output_bounds
from .runtimegraph import RuntimeNode
from .weights import QuantParams

FUSED_KERNEL = "QLinearMul"
KERNEL_CHECK = "QLinearMul's integer product and float32 ratio (x86)"
DEFINITION_CHECK = "dequantize, multiply, quantize (the QDQ graph)"
CAUSES = CheckCauses(
    KERNEL_CHECK, DEFINITION_CHECK,
    rounding=("QLinearMul multiplies the integers exactly and applies one float32 ratio M = S_a·S_b/S_y; the "
              "definition rounds each dequantized value, their product and its quotient by S_y. They round "
              "differently where the product lies within float32 rounding of a half-integer."),
    kernel="unexpected: this formula should match ONNX Runtime's x86 QLinearMul exactly (another CPU?)",
    unfused="ONNX Runtime did not fuse this Mul into QLinearMul: it computed the definition in float32.")


@dataclass(frozen=True, kw_only=True)
class MulElement(BinaryElement):
    """Every step behind one output element of the Mul."""

    real_product: float  # real_a · real_b, exact
    product: int  # p = (a_q - Z_a)(b_q - Z_b), exact
    scaled: float  # p M, float32
    shifted: float  # p M + Z_y, float32

    def steps(self, a: QuantParams, b: QuantParams, y: QuantParams, constants: MulConstants, relu: bool
              ) -> list[str]:
        """The arithmetic of the element, one line per step: the real product, the definition, then the kernel."""
        qmin, qmax = output_bounds(y)
        z_a, z_b = int(a.zero_point), int(b.zero_point)
        lines = [
            *self.input_lines(a, b),
            f"a·b = {self.real_product:.6g}" + (", then the Relu: max(0, a·b)" if relu else ""),
            f"definition: round(a·b / S_y) + Z_y, in [{qmin}, {qmax}] = {self.definition_y_q}",
            "QLinearMul (M above):",
            f"  p = (a_q − Z_a)·(b_q − Z_b) = {self.a_q - z_a}·{self.b_q - z_b} = {self.product}  (exact)",
            f"  t = p·M = {self.product}·{constants.ratio:.9g} = {self.scaled:.9g}  (float32)",
            f"  t = t + Z_y = {self.shifted:.9g}  (float32)",
            f"  y_q = rint(t), in [{qmin}, {qmax}] = {self.kernel_y_q}",
        ]
        return lines + result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value)


@dataclass(kw_only=True)
class MulExplanation(BinaryExplanation):
    """Everything behind one int8 Mul's output on one sample, and how it compares."""

    constants: MulConstants
    example: MulElement

    def steps(self) -> list[str]:
        return self.example.steps(self.a, self.b, self.y, self.constants, self.relu)

    def to_dict(self) -> dict[str, object]:
        return {**self.binary_dict(), "constants": self.constants.__dict__}


def explain_mul(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                threads: int = 0, notes: list[str] | None = None) -> MulExplanation:
    """Explain Mul ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see :func:`.explain.explain_node`)."""
    run = run_binary(int8_model, node, data, sample, threads, "multiplies", FUSED_KERNEL)
    a, b, y, relu, a_q, b_q, runtime, kernel = run.a, run.b, run.y, run.relu, run.a_q, run.b_q, run.runtime, run.kernel
    constants = MulConstants.of(a, b, y)
    fused = ran_as(kernel, FUSED_KERNEL)
    by_kernel = qlinear_mul(a_q, b_q, constants, y)
    by_definition = dequantize_mul_quantize(a_q, a, b_q, b, y, relu=relu)
    checks = kernel_and_definition_checks(runtime, fused, lambda title, diff: CAUSES.why(title, diff, fused),
                                          (KERNEL_CHECK, by_kernel), (DEFINITION_CHECK, by_definition))
    notes = list(notes or []) + run.sample.notes(run.output_shape) + _notes(kernel, fused)
    notes += kept_relu_notes(node, relu, float_model)
    float_tensor, float_output = float_value(float_model, int8_model.graph, node, y.tensor, run.sample, threads, notes)
    index = worked_index(node, element, runtime, y, float_output)
    inputs = binary_inputs(a, b, a_q, b_q, index, runtime.shape)
    product, scaled, shifted = qlinear_mul_steps(np.array(inputs["a_q"]), np.array(inputs["b_q"]), constants)
    return MulExplanation(
        node=node.name, op_type="Mul", kind="Mul", runtime_kernel=kernel_name(kernel), sample=sample,
        a=a, b=b, y=y, constants=constants, relu=relu, a_q=a_q, b_q=b_q, runtime=runtime,
        checks=checks,
        example=MulElement(**inputs, real_product=inputs["real_a"] * inputs["real_b"], product=int(product),
                           scaled=float(scaled), shifted=float(shifted),
                           **result_values(y, by_kernel, by_definition, runtime, float_output, index)),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _notes(kernel: RuntimeNode | None, fused: bool) -> list[str]:
    if not fused:
        return [unfused_note("this Mul", kernel, FUSED_KERNEL)]
    return ["On x86 QLinearMul multiplies the two zero-point-shifted 8-bit values exactly, as integers, and applies "
            "the three scales as one float32 ratio M = S_a·S_b/S_y, adding Z_y in float32 before rounding; no fused "
            "multiply-add, unlike QLinearAdd."]
