"""How one int8 Softmax really computes, checked bit for bit against ONNX Runtime on a real sample.

ONNX Runtime fuses DequantizeLinear -> Softmax -> QuantizeLinear into QLinearSoftmax, which takes its
exponentials from a table of 256 entries and divides by the row's float32 sum (see :mod:`.softmaxkernels`). This
gathers the input's and the output's quantization, runs the model on one sample with both 8-bit tensors exposed,
and recomputes the output the two ways: ONNX Runtime's kernel and the QDQ graph's definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import Dataset
from .errors import Q8Error
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
from .qdq import dequantized, output_bounds
from .runtimegraph import RuntimeNode
from .softmaxkernels import (
    Rows,
    dequantize_softmax_quantize,
    exp_table,
    float_softmax,
    output_multiplier,
    qlinear_softmax,
    softmax_axis,
    softmax_sums,
    table_shift,
)
from .weights import QuantParams

FUSED_KERNEL = "QLinearSoftmax"
KERNEL_CHECK = "QLinearSoftmax's exponential table, float32 sum and K = floor(1/S_y) (x86)"
DEFINITION_CHECK = "dequantize, softmax, quantize (the QDQ graph)"
CAUSES = CheckCauses(
    KERNEL_CHECK, DEFINITION_CHECK,
    rounding=("QLinearSoftmax scales by K = floor(1/S_y), not 1/S_y, and takes its exponentials from a float32 "
              "table; the definition divides the float32 softmax by S_y. An output whose value lies near a "
              "half-integer rounds one step apart."),
    kernel="unexpected: this formula matches ONNX Runtime 1.32's x86 QLinearSoftmax exactly (another version?)",
    unfused="ONNX Runtime did not fuse this Softmax into QLinearSoftmax: it computed the definition in float32.",
    unfused_definition=("the definition's float32 exponentials are numpy's, ONNX Runtime's round differently in the "
                        "last bit: an output within a float32 step of a half-integer rounds one step apart"))


@dataclass(frozen=True)
class SoftmaxRow:
    """The row of D values the worked element is normalized with: the kernel's numbers for each of them."""

    x_q: np.ndarray  # the row's 8-bit input codes
    distances: np.ndarray  # d = x_max - x_q
    entries: np.ndarray  # E[d], float32
    total: float  # Σ E[d], float32, added in order
    quotients: np.ndarray  # E[d] K / Σ, before rounding
    kernel_y_q: np.ndarray
    runtime_y_q: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {name: value.tolist() if isinstance(value, np.ndarray) else value
                for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class SoftmaxElement:
    """Every step behind one output element of the Softmax."""

    index: tuple[int, ...]
    position: int  # its place in the row
    x_q: int
    x_max: int
    distance: int  # d = x_max - x_q
    entry: float  # E[d], float32
    total: float  # Σ, float32
    quotient: float  # E[d] K / Σ, double
    probability: float  # the definition's float32 softmax of the dequantized row, at the element
    kernel_y_q: int
    definition_y_q: int
    y_real: float
    runtime_y_q: int
    float_value: float | None

    def steps(self, x: QuantParams, y: QuantParams, length: int, shift: float, multiplier: float) -> list[str]:
        """The arithmetic of the element: its distance below the row's largest code, the table, the sum, the
        quotient; then the definition."""
        qmin, qmax = output_bounds(y)
        scale_x, scale_y, zero_y = float(np.float32(x.scale)), float(np.float32(y.scale)), int(y.zero_point)
        return [
            f"the row: D = {length} values; its largest code x_max = {self.x_max}",
            f"x_q = {self.x_q}: d = x_max − x_q = {self.distance}",
            f"E[d] = exp((b − d)·S_x) = exp(({shift:.6g} − {self.distance})·{scale_x:.6g}) = {self.entry:.9g}  "
            "(the table, float32)",
            f"Σ = E[d_1] + … + E[d_{length}] = {self.total:.9g}  (float32, added in order)",
            f"K = floor(1/S_y) = floor({1.0 / scale_y:.6f}) = {multiplier:g}",
            f"E[d]·K/Σ = {self.quotient:.9g}",
            f"y_q = rint(E[d]·K/Σ) + Z_y, in [{qmin}, {qmax}] = {self.kernel_y_q}",
            f"definition: p = softmax(S_x·(x_q − Z_x)) = {self.probability:.9g}  (float32); "
            f"round(p/S_y) + Z_y = round({self.probability / scale_y:.6g}) + {zero_y} = {self.definition_y_q}",
            *result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value),
        ]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class SoftmaxExplanation(ExplainedLayer):
    """Everything behind one int8 Softmax's output on one sample, and how it compares."""

    x: QuantParams
    y: QuantParams
    axis: int
    flattened: bool  # before opset 13: a row holds every value from the axis on
    length: int  # D
    shift: float  # b, in steps of S_x
    multiplier: float  # K = floor(1/S_y)
    row: SoftmaxRow
    example: SoftmaxElement

    @property
    def reciprocal(self) -> float:
        """1/S_y, which K rounds down."""
        return 1.0 / float(np.float32(self.y.scale))

    def table_shares(self) -> np.ndarray:
        """E[d]/E[0] for d = 0..255: the share of the row's largest entry each distance keeps (0 where the
        float32 entry underflows)."""
        table = exp_table(self.x, self.length).astype(np.float64)
        return table / table[0]

    def row_summary(self) -> str:
        """Where a row runs: "axis 1" or, before opset 13, "axis 1 on (flattened)"."""
        return f"axis {self.axis} on (flattened, opset < 13)" if self.flattened else f"axis {self.axis}"

    def steps(self) -> list[str]:
        return self.example.steps(self.x, self.y, self.length, self.shift, self.multiplier)

    def to_dict(self) -> dict[str, object]:
        return {**self.run_dict(), "x": self.x.to_dict(), "y": self.y.to_dict(), "axis": self.axis,
                "flattened": self.flattened, "length": self.length, "shift": self.shift,
                "multiplier": self.multiplier, "row": self.row.to_dict(), "example": self.example.to_dict(),
                "steps": self.steps()}


def explain_softmax(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                    float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                    threads: int = 0, notes: list[str] | None = None) -> SoftmaxExplanation:
    """Explain Softmax ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see
    :func:`.explain.explain_node`)."""
    run = run_unary(int8_model, node, data, sample, threads, "applies Softmax to", FUSED_KERNEL)
    x, y, x_q, runtime, kernel = run.x, run.y, run.x_q, run.runtime, run.kernel
    layout = Rows.of(runtime.shape, softmax_axis(node, int8_model.opset), int8_model.opset)
    if layout.axis == 0 and runtime.shape[0] != run.output_shape[0]:
        raise Q8Error(f"Node {node.name} normalizes across the batch axis, which holds other samples too; explain it "
                      "on a model with a batch of 1.")
    fused = ran_as(kernel, FUSED_KERNEL)
    by_kernel = qlinear_softmax(x_q, x, y, layout)
    by_definition = dequantize_softmax_quantize(x_q, x, y, layout)
    checks = kernel_and_definition_checks(runtime, fused, lambda title, diff: CAUSES.why(title, diff, fused),
                                          (KERNEL_CHECK, by_kernel), (DEFINITION_CHECK, by_definition))
    notes = list(notes or []) + run.sample.notes(run.output_shape) + _notes(kernel, fused, y)
    float_tensor, float_output = float_value(float_model, int8_model.graph, node, y.tensor, run.sample, threads, notes)
    index = worked_index(node, element, runtime, y, float_output)
    row_index, position = layout.place(index)
    row_codes = layout.rows(x_q)[row_index]
    sums = softmax_sums(row_codes[None], x, y)
    probability = float_softmax(dequantized(row_codes, x)[None])[0, position]
    row = SoftmaxRow(x_q=row_codes, distances=sums.distances[0], entries=sums.entries[0], total=float(sums.sums[0]),
                     quotients=sums.quotients[0], kernel_y_q=layout.rows(by_kernel)[row_index],
                     runtime_y_q=layout.rows(runtime)[row_index].astype(np.int64))
    return SoftmaxExplanation(
        node=node.name, op_type="Softmax", kind="Softmax", runtime_kernel=kernel_name(kernel), sample=sample,
        x=x, y=y, axis=layout.axis, flattened=layout.flattened, length=layout.length,
        shift=table_shift(x, layout.length), multiplier=float(output_multiplier(y)), row=row,
        runtime=runtime, checks=checks,
        example=SoftmaxElement(index=index, position=position, x_q=int(row_codes[position]),
                               x_max=int(row_codes.max()), distance=int(row.distances[position]),
                               entry=float(row.entries[position]), total=row.total,
                               quotient=float(row.quotients[position]), probability=float(probability),
                               **result_values(y, by_kernel, by_definition, runtime, float_output, index)),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _notes(kernel: RuntimeNode | None, fused: bool, y: QuantParams) -> list[str]:
    if not fused:
        return [unfused_note("this Softmax", kernel, FUSED_KERNEL)]
    notes = [f"{FUSED_KERNEL} computes no exponential per element: once per run it tabulates exp(−S_x·d) for the "
             "256 distances d a code can lie below its row's largest (times a constant that cancels and keeps the sum "
             "in float32's range); per row it adds the entries in float32 and divides each by the sum."]
    exact, multiplier = 1.0 / float(np.float32(y.scale)), float(output_multiplier(y))
    if exact - multiplier >= 1e-3:  # not for a scale chosen as 1/K, whose reciprocal is K within float32
        notes.append(f"ONNX Runtime multiplies by K = floor(1/S_y) = {multiplier:g}, not 1/S_y = {exact:.6g}: every "
                     f"output is {100 * multiplier / exact:.3f}% of the definition's, {exact - multiplier:.3f} of a "
                     "step low at a probability of 1.")
    return notes
