"""How one int8 GlobalAveragePool really computes, checked bit for bit against ONNX Runtime on a real sample.

The pooling at the end of a CNN averages each channel of an 8-bit tensor into one 8-bit value. This gathers
the input's quantization (the DequantizeLinear before the node) and the output's (the QuantizeLinear after
it), runs the model on one sample with both 8-bit tensors exposed (which keeps ONNX Runtime's
QLinearGlobalAveragePool fusion intact), and recomputes the output the two ways of :mod:`.poolkernels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import Dataset
from .explainrun import (
    CheckCauses,
    ExplainedLayer,
    float_value,
    kernel_and_definition_checks,
    kernel_name,
    ran_as,
    requantized_sqnr,
    run_unary,
    unfused_note,
)
from .explainstep import result_lines, result_values, worked_index
from .model import LoadedModel, Node
from .poolkernels import (
    channel_sums,
    dequantize_average_quantize,
    pool_factor,
    pooled_values,
    qlinear_global_average_pool,
)
from .qdq import output_bounds
from .runtimegraph import RuntimeNode
from .weights import QuantParams

FUSED_KERNEL = "QLinearGlobalAveragePool"
KERNEL_CHECK = "QLinearGlobalAveragePool's int32 sum and float32 factor"
DEFINITION_CHECK = "dequantize, average, quantize (the QDQ graph)"
CAUSES = CheckCauses(
    KERNEL_CHECK, DEFINITION_CHECK,
    rounding=("QLinearGlobalAveragePool sums exactly in int32 and rounds once, after one float32 factor; the "
              "definition rounds each dequantized value and the float32 mean. They round differently where the "
              "mean lies within float32 rounding of a half-integer."),
    kernel="unexpected: this formula should match ONNX Runtime's QLinearGlobalAveragePool exactly",
    unfused="ONNX Runtime did not fuse this pooling: it averaged in float32, in an order of its own",
    unfused_definition="ONNX Runtime did not fuse this pooling: it averaged in float32, in an order of its own")


@dataclass(frozen=True)
class PoolElement:
    """Every step behind one output element: one channel of one sample, averaged."""

    index: tuple[int, ...]
    x_q: np.ndarray  # the channel's N 8-bit values, in their spatial shape
    total: int  # Σ x_q
    acc: int  # Σ x_q - N Z_x
    real_mean: float  # S_x acc / N, exact
    scaled: float  # acc f, float32
    kernel_y_q: int
    definition_y_q: int
    y_real: float  # S_y (y_q - Z_y) of the kernel's y_q
    runtime_y_q: int
    float_value: float | None

    def steps(self, x: QuantParams, y: QuantParams, factor: float) -> list[str]:
        """The arithmetic of the element, one line per step: the real mean, the definition, then the kernel."""
        qmin, qmax = output_bounds(y)
        count, z_x, z_y = self.x_q.size, int(x.zero_point), int(y.zero_point)
        return [
            f"Σ x_q over the channel's {count} values = {self.total}",
            f"acc = Σ x_q − N·Z_x = {self.total} − {count}·{z_x} = {self.acc}  (int32, exact)",
            f"mean = S_x·acc/N = {float(x.scale):.6g}·{self.acc}/{count} = {self.real_mean:.6g}",
            f"definition: round(mean / S_y) + Z_y, in [{qmin}, {qmax}] = {self.definition_y_q}",
            f"QLinearGlobalAveragePool: acc·f = {self.acc}·{factor:.9g} = {self.scaled:.9g}  (float32)",
            f"  y_q = rint(acc·f) + Z_y = {round(self.scaled)} {'+' if z_y >= 0 else '−'} {abs(z_y)}, "
            f"in [{qmin}, {qmax}] = {self.kernel_y_q}",
            *result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "x_q": self.x_q.tolist()}


@dataclass(kw_only=True)
class PoolExplanation(ExplainedLayer):
    """Everything behind one int8 GlobalAveragePool's output on one sample, and how it compares."""

    x: QuantParams
    y: QuantParams
    count: int  # N, the values averaged into each output
    factor: float  # f = S_x / (S_y N), float32
    x_q: np.ndarray
    example: PoolElement

    def steps(self) -> list[str]:
        return self.example.steps(self.x, self.y, self.factor)

    def to_dict(self) -> dict[str, object]:
        return {**self.run_dict(), "x": self.x.to_dict(), "y": self.y.to_dict(), "count": self.count,
                "factor": self.factor, "example": self.example.to_dict(), "steps": self.steps()}


def explain_global_average_pool(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                                float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                                threads: int = 0, notes: list[str] | None = None) -> PoolExplanation:
    """Explain GlobalAveragePool ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see
    :func:`.explain.explain_node`)."""
    graph = int8_model.graph
    run = run_unary(int8_model, node, data, sample, threads, "averages", FUSED_KERNEL)
    x, y, x_q, runtime, kernel = run.x, run.y, run.x_q, run.runtime, run.kernel
    fused = ran_as(kernel, FUSED_KERNEL)
    by_kernel = qlinear_global_average_pool(x_q, x, y)
    by_definition = dequantize_average_quantize(x_q, x, y)
    checks = kernel_and_definition_checks(runtime, fused, lambda title, diff: CAUSES.why(title, diff, fused),
                                          (KERNEL_CHECK, by_kernel), (DEFINITION_CHECK, by_definition))
    notes = list(notes or []) + run.sample.notes(run.output_shape) + _notes(kernel, fused)
    float_tensor, float_output = float_value(float_model, graph, node, y.tensor, run.sample, threads, notes)
    index = worked_index(node, element, runtime, y, float_output)
    count = pooled_values(x_q)
    return PoolExplanation(
        node=node.name, op_type="GlobalAveragePool", kind="GlobalAveragePool", runtime_kernel=kernel_name(kernel),
        sample=sample, x=x, y=y,
        count=count, factor=float(pool_factor(x, y, count)), x_q=x_q, runtime=runtime,
        checks=checks,
        example=_element(x, y, x_q, by_kernel, by_definition, runtime, float_output, index),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _notes(kernel: RuntimeNode | None, fused: bool) -> list[str]:
    if not fused:
        return [unfused_note("this pooling", kernel, FUSED_KERNEL)]
    return ["QLinearGlobalAveragePool never dequantizes: it sums each channel's 8-bit values exactly in int32, "
            "takes N·Z_x away once, and scales by one float32 factor f = S_x/(S_y·N); the division by N is in f."]


def _element(x: QuantParams, y: QuantParams, x_q: np.ndarray, by_kernel: np.ndarray, by_definition: np.ndarray,
             runtime: np.ndarray, float_output: np.ndarray | None, index: tuple[int, ...]) -> PoolElement:
    """The steps of ``runtime[index]``: the channel's values, their exact sum, and both references' results."""
    batch, channel = index[0], index[1]
    values = x_q[batch, channel]
    acc = int(channel_sums(x_q[batch:batch + 1, channel:channel + 1], x).reshape(()))
    factor = pool_factor(x, y, values.size)
    return PoolElement(
        index=index, x_q=values, total=int(values.astype(np.int64).sum()), acc=acc,
        real_mean=float(np.float32(x.scale)) * acc / values.size, scaled=float(np.float32(acc) * factor),
        **result_values(y, by_kernel, by_definition, runtime, float_output, index),
    )
