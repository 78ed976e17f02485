"""How one int8 MaxPool really computes, checked bit for bit against ONNX Runtime on a real sample.

A MaxPool of an int8 model keeps its input's scale and zero point, so ONNX Runtime runs it on the 8-bit
values themselves. This gathers the input's quantization (the DequantizeLinear before the node) and the
output's (the QuantizeLinear after it), runs the model on one sample with both 8-bit tensors exposed, and
recomputes the output the two ways of :mod:`.maxpoolkernels`: the largest 8-bit value of each window, and
dequantize, maximum, quantize.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from .data import Dataset
from .explainrun import (
    WindowElement,
    WindowPoolExplanation,
    checked_against_runtime,
    float_value,
    kernel_name,
    requantized_sqnr,
    run_unary,
)
from .explainstep import result_lines, result_values, worked_index
from .maxpoolkernels import dequantize_max_quantize, max_pool_8bit
from .model import LoadedModel, Node
from .poolwindows import PoolGeometry, pool_geometry, window_of
from .qdq import output_bounds, same_quantization
from .runtimegraph import RuntimeNode
from .weights import QuantParams

KERNEL_CHECK = "the largest 8-bit value of each window"
DEFINITION_CHECK = "dequantize, maximum, quantize (the QDQ graph)"


@dataclass(frozen=True, kw_only=True)
class MaxPoolElement(WindowElement):
    """Every step behind one output element: one window of one channel, and its largest value."""

    largest: int  # the largest 8-bit value inside the input
    at: tuple[int, ...]  # where it is in the window

    def steps(self, x: QuantParams, y: QuantParams) -> list[str]:
        """The arithmetic of the element, one line per step: the window, its maximum, the definition, the result."""
        z_x, s_x = int(x.zero_point), float(x.scale)
        qmin, qmax = output_bounds(y)
        lines = [self.window_line(", not compared"),
                 f"largest x_q of its {int(self.inside.sum())} values = {self.largest}  (window position "
                 f"{list(self.at)})"]
        if same_quantization(x, y):
            lines.append(f"S_y = S_x and Z_y = Z_x: y_q = max x_q = {self.kernel_y_q}  (no arithmetic, no rounding)")
        else:
            lines.append(f"S_y ≠ S_x or Z_y ≠ Z_x: y_q = rint(S_x·({self.largest} − {z_x})/S_y) + Z_y = "
                         f"{self.kernel_y_q}")
        real = s_x * (self.largest - z_x)
        lines += [
            f"definition: max S_x·(x_q − Z_x) = {s_x:.6g}·({self.largest} − {z_x}) = {real:.6g}",
            f"  y_q = round({real:.6g}/S_y) + Z_y, in [{qmin}, {qmax}] = {self.definition_y_q}",
            *result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value),
        ]
        return lines


@dataclass(kw_only=True)
class MaxPoolExplanation(WindowPoolExplanation):
    """Everything behind one int8 MaxPool's output on one sample, and how it compares."""

    example: MaxPoolElement

    def window_summary(self) -> str:
        return self.geometry.summary()

    def padding_role(self) -> str:
        """What becomes of a window's padded positions."""
        return "not compared"


def explain_max_pool(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                     float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                     threads: int = 0, notes: list[str] | None = None) -> MaxPoolExplanation:
    """Explain MaxPool ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see
    :func:`.explain.explain_node`)."""
    graph = int8_model.graph
    run = run_unary(int8_model, node, data, sample, threads, "takes the maximum of", "MaxPool on 8-bit values")
    x, y, x_q, runtime, kernel = run.x, run.y, run.x_q, run.runtime, run.kernel
    out_spatial = tuple(runtime.shape[2:])
    geometry = pool_geometry(node, tuple(x_q.shape[2:]))
    on_8bit = _runs_on_8bit_values(kernel, x, y)
    by_definition = dequantize_max_quantize(x_q, x, y, geometry, out_spatial)
    checks = [checked_against_runtime(DEFINITION_CHECK, by_definition, runtime, _cause)]
    by_kernel = max_pool_8bit(x_q, x, y, geometry, out_spatial)
    if on_8bit:
        checks.insert(0, checked_against_runtime(KERNEL_CHECK, by_kernel, runtime, _cause))
    notes = list(notes or []) + run.sample.notes(run.output_shape)
    notes += _notes(kernel.op_type if kernel else None, x, y, on_8bit)
    float_tensor, float_output = float_value(float_model, graph, node, y.tensor, run.sample, threads, notes)
    if float_output is not None and on_8bit:
        notes.append("A MaxPool on 8-bit values adds no error of its own: where it differs from the float model, "
                     "the difference is its input's.")
    index = worked_index(node, element, runtime, y, float_output)
    return MaxPoolExplanation(
        node=node.name, op_type="MaxPool", kind="MaxPool", runtime_kernel=kernel_name(kernel), sample=sample, x=x, y=y,
        geometry=geometry, x_q=x_q, runtime=runtime, checks=checks,
        example=_element(x, y, x_q, geometry, by_kernel, by_definition, runtime, float_output, index),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _runs_on_8bit_values(kernel: RuntimeNode | None, x: QuantParams, y: QuantParams) -> bool:
    """Whether ONNX Runtime's MaxPool read the 8-bit tensor: it drops the Dequantize/Quantize pair around a MaxPool
    whose input and output share their quantization, and then no DequantizeLinear feeds the kernel."""
    return kernel is not None and same_quantization(x, y) and "MaxPool" in kernel.op_type


def _cause(diff: np.ndarray) -> str:
    return "unexpected: a maximum of 8-bit values is exact, and should match ONNX Runtime everywhere"


def _notes(kernel: str | None, x: QuantParams, y: QuantParams, on_8bit: bool) -> list[str]:
    if on_8bit:
        return [f"ONNX Runtime removed the DequantizeLinear and QuantizeLinear around this MaxPool and runs {kernel} "
                f"on the {x.dtype} tensor itself: quantization keeps order, so the largest 8-bit value is the "
                "quantized largest real value, exactly."]
    if not same_quantization(x, y):
        return ["The output does not keep the input's scale and zero point, so ONNX Runtime runs this MaxPool in "
                "float32 between DequantizeLinear and QuantizeLinear, and the maximum is requantized."]
    return [f"ONNX Runtime runs this MaxPool as {kernel or 'an unknown kernel'}: the definition is what it computes."]


def _element(x: QuantParams, y: QuantParams, x_q: np.ndarray, geometry: PoolGeometry, by_kernel: np.ndarray,
             by_definition: np.ndarray, runtime: np.ndarray, float_output: np.ndarray | None, index: tuple[int, ...]
             ) -> MaxPoolElement:
    """The steps of ``runtime[index]``: its window, the window's largest value and both references' results."""
    window = window_of(x_q, geometry, index, fill=int(x.zero_point))
    largest = int(window.values[window.inside].max())
    at = tuple(int(i) for i in np.argwhere(window.inside & (window.values == largest))[0])
    return MaxPoolElement(
        index=index, x_q=window.values, inside=window.inside, positions=window.positions, largest=largest, at=at,
        **result_values(y, by_kernel, by_definition, runtime, float_output, index),
    )

