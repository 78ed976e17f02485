"""How one int8 AveragePool really computes, checked bit for bit against ONNX Runtime on a real sample.

ONNX Runtime fuses DequantizeLinear -> AveragePool -> QuantizeLinear into QLinearAveragePool, which averages
in float32 (see :mod:`.poolkernels`). This gathers the input's and the output's quantization, runs the model
on one sample with both 8-bit tensors exposed, and recomputes the output as the kernel does and as the QDQ
graph defines it.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from .data import Dataset
from .explainrun import (
    CheckCauses,
    WindowElement,
    WindowPoolExplanation,
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
from .poolkernels import dequantize_average_pool_quantize, qlinear_average_pool, window_sums
from .poolwindows import PoolGeometry, pool_geometry, window_mask, window_of
from .qdq import output_bounds
from .runtimegraph import RuntimeNode
from .weights import QuantParams

FUSED_KERNEL = "QLinearAveragePool"
KERNEL_CHECK = "QLinearAveragePool's float32 average"
DEFINITION_CHECK = "dequantize, average, quantize (the QDQ graph)"
CAUSES = CheckCauses(
    KERNEL_CHECK, DEFINITION_CHECK,
    rounding=("QLinearAveragePool adds Z_y to mean/S_y in float32 before rounding; the definition rounds first. "
              "They round differently where mean/S_y lies within float32 rounding of a half-integer."),
    kernel="unexpected: this formula should match ONNX Runtime's QLinearAveragePool exactly",
    unfused="ONNX Runtime did not fuse this pooling: it averaged in float32 as the QDQ graph defines it",
    unfused_definition="ONNX Runtime did not fuse this pooling: it averaged in float32 as the QDQ graph defines it")


@dataclass(frozen=True, kw_only=True)
class AveragePoolElement(WindowElement):
    """Every step behind one output element: one window of one channel, averaged."""

    total: float  # the dequantized values inside the input, summed in float32
    count: int  # what the kernel divides by
    definition_count: int  # what the QDQ graph divides by

    def steps(self, x: QuantParams, y: QuantParams) -> list[str]:
        """The arithmetic of the element, one line per step: the window, its float32 sum and mean, both results."""
        qmin, qmax = output_bounds(y)
        inside = int(self.inside.sum())
        mean = float(np.float32(self.total) / np.float32(self.count))
        lines = [self.window_line(""),
                 f"dequantized S_x·(x_q − Z_x) = {float(x.scale):.6g}·(x_q − {int(x.zero_point)}) "
                 f"for its {inside} value{'s' * (inside != 1)} in the input,",
                 f"  summed in float32 in row order = {self.total:.9g}",
                 f"QLinearAveragePool: mean = {self.total:.9g}/{self.count} = {mean:.9g}  (float32)",
                 f"  y_q = rint(mean/S_y + Z_y), in [{qmin}, {qmax}] = {self.kernel_y_q}"]
        if self.definition_count != self.count:
            definition_mean = float(np.float32(self.total) / np.float32(self.definition_count))
            lines.append(f"definition: mean = {self.total:.9g}/{self.definition_count} = {definition_mean:.9g}; "
                         f"round(mean/S_y) + Z_y = {self.definition_y_q}")
        else:
            lines.append(f"definition: round(mean/S_y) + Z_y, in [{qmin}, {qmax}] = {self.definition_y_q}")
        return lines + result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value)


@dataclass(kw_only=True)
class AveragePoolExplanation(WindowPoolExplanation):
    """Everything behind one int8 AveragePool's output on one sample, and how it compares."""

    count_include_pad: bool
    example: AveragePoolElement

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "count_include_pad": self.count_include_pad}

    def window_summary(self) -> str:
        return self.geometry.summary() + (", count_include_pad" if self.count_include_pad else "")

    def padding_role(self) -> str:
        """What becomes of a window's padded positions."""
        return "counted as 0" if self.count_include_pad else "not counted"


def explain_average_pool(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                         float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                         threads: int = 0, notes: list[str] | None = None) -> AveragePoolExplanation:
    """Explain AveragePool ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see
    :func:`.explain.explain_node`)."""
    graph = int8_model.graph
    run = run_unary(int8_model, node, data, sample, threads, "averages", FUSED_KERNEL)
    x, y, x_q, runtime, kernel = run.x, run.y, run.x_q, run.runtime, run.kernel
    out_spatial = tuple(runtime.shape[2:])
    geometry = pool_geometry(node, tuple(x_q.shape[2:]))
    include_pad = bool(node.attributes.get("count_include_pad", 0))
    fused = ran_as(kernel, FUSED_KERNEL)
    by_kernel = qlinear_average_pool(x_q, x, y, geometry, out_spatial, include_pad)
    by_definition = dequantize_average_pool_quantize(x_q, x, y, geometry, out_spatial, include_pad)
    checks = kernel_and_definition_checks(runtime, fused, lambda title, diff: _cause(title, diff, fused),
                                          (KERNEL_CHECK, by_kernel), (DEFINITION_CHECK, by_definition))
    notes = list(notes or []) + run.sample.notes(run.output_shape) + _notes(kernel, fused)
    float_tensor, float_output = float_value(float_model, graph, node, y.tensor, run.sample, threads, notes)
    index = worked_index(node, element, runtime, y, float_output)
    return AveragePoolExplanation(
        node=node.name, op_type="AveragePool", kind="AveragePool", runtime_kernel=kernel_name(kernel),
        sample=sample, x=x, y=y, geometry=geometry, count_include_pad=include_pad, x_q=x_q, runtime=runtime,
        checks=checks,
        example=_element(x, y, x_q, geometry, include_pad, by_kernel, by_definition, runtime, float_output, index),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _cause(title: str, diff: np.ndarray, fused: bool) -> str:
    if fused and title == DEFINITION_CHECK and int(diff.max()) > 1:
        return ("QLinearAveragePool divides a window that reaches past the end pad (ceil_mode) by the whole kernel "
                "size, the QDQ graph by the positions within the input and its pads: another function there")
    return CAUSES.why(title, diff, fused)


def _notes(kernel: RuntimeNode | None, fused: bool) -> list[str]:
    if not fused:
        return [unfused_note("this pooling", kernel, FUSED_KERNEL)]
    return ["QLinearAveragePool does not average in integers: it dequantizes each 8-bit value to float32, sums a "
            "window in float32, divides by the count and quantizes the mean."]


def _element(x: QuantParams, y: QuantParams, x_q: np.ndarray, geometry: PoolGeometry, include_pad: bool,
             by_kernel: np.ndarray, by_definition: np.ndarray, runtime: np.ndarray, float_output: np.ndarray | None,
             index: tuple[int, ...]) -> AveragePoolElement:
    """The steps of ``runtime[index]``: its window, the window's float32 sum, both counts and both results."""
    window = window_of(x_q, geometry, index, fill=int(x.zero_point))
    out_spatial = tuple(runtime.shape[2:])
    sums, _ = window_sums(x_q[index[0]:index[0] + 1, index[1]:index[1] + 1], x, geometry, out_spatial)  # its channel
    inside = int(window.inside.sum())
    counted = window_mask(geometry, tuple(x_q.shape[2:]), out_spatial, with_pads=True)[index[2:]] if include_pad \
        else window.inside
    return AveragePoolElement(
        index=index, x_q=window.values, inside=window.inside, positions=window.positions,
        total=float(sums[(0, 0, *index[2:])]), count=int(np.prod(geometry.kernel)) if include_pad else inside,
        definition_count=int(counted.sum()), **result_values(y, by_kernel, by_definition, runtime, float_output, index),
    )
