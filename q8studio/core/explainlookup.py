"""How one int8 Sigmoid or LeakyRelu really computes, checked bit for bit against ONNX Runtime on a real sample.

ONNX Runtime fuses DequantizeLinear -> Sigmoid / LeakyRelu -> QuantizeLinear into QLinearSigmoid /
QLinearLeakyRelu, which look every 8-bit value up in a table of 256 entries (see :mod:`.lookupkernels`). This
gathers the input's and the output's quantization, builds the table, runs the model on one sample with both
8-bit tensors exposed and looks the sample's input up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import Dataset
from .explainrun import (
    ExplainedLayer,
    checked_against_runtime,
    float_value,
    kernel_name,
    ran_as,
    requantized_sqnr,
    run_unary,
)
from .explainstep import result_lines, result_values, worked_index
from .lookupkernels import (
    TABLE_KERNELS,
    function_summary,
    input_codes,
    looked_up,
    lookup_table,
    table_function,
    unrounded_table,
)
from .model import LoadedModel, Node
from .qdq import dequantized, output_bounds
from .weights import QuantParams

KERNEL_CHECK = "the 256-entry table (dequantize, {function}, quantize each code)"


@dataclass(frozen=True)
class LookupElement:
    """Every step behind one output element: its 8-bit input, the table entry and how the entry was made."""

    index: tuple[int, ...]
    x_q: int
    x_real: float  # S_x (x_q - Z_x), float32
    f_value: float  # the function of x_real, float32
    kernel_y_q: int  # T[x_q]
    definition_y_q: int  # the same entry: the table holds the definition's result for every code
    y_real: float  # S_y (y_q - Z_y)
    runtime_y_q: int
    float_value: float | None

    def steps(self, x: QuantParams, y: QuantParams, function: str) -> list[str]:
        """The arithmetic of the element: which entry it reads, and how that entry was computed."""
        low, high = output_bounds(x)
        qmin, qmax = output_bounds(y)
        name = function.split(" ")[0]
        return [f"x_q = {self.x_q} reads the table's entry T[{self.x_q}] (its codes run {low} .. {high})",
                "the entry was made once per run, from the code alone:",
                f"  x = S_x·(x_q − Z_x) = {float(x.scale):.6g}·({self.x_q} − {int(x.zero_point)}) = "
                f"{self.x_real:.9g}  (float32)",
                f"  {name}(x) = {self.f_value:.9g}  (float32)",
                f"  y_q = round({name}(x)/S_y) + Z_y, in [{qmin}, {qmax}] = {self.kernel_y_q}",
                f"T[{self.x_q}] = {self.kernel_y_q}",
                *result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value)]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class LookupExplanation(ExplainedLayer):
    """Everything behind one int8 Sigmoid's or LeakyRelu's output on one sample, and how it compares."""

    x: QuantParams
    y: QuantParams
    function: str  # "LeakyRelu (alpha = 0.1)"
    table: np.ndarray  # T, the output code of every input code, lowest input code first
    unrounded: np.ndarray  # each entry before rounding and saturation, f(S_x (c - Z_x)) / S_y + Z_y
    x_q: np.ndarray
    example: LookupElement

    @property
    def codes(self) -> np.ndarray:
        """The input codes the table's entries stand for, lowest first."""
        return input_codes(self.x)

    def code_counts(self) -> np.ndarray:
        """How often each input code occurs on the sample: the table entries it reads."""
        return np.bincount((self.x_q.astype(np.int64) - output_bounds(self.x)[0]).reshape(-1),
                           minlength=self.table.size)

    def distinct_outputs(self) -> int:
        """The output codes the table can give: fewer than 256 where several inputs round to one output."""
        return int(np.unique(self.table).size)

    def table_summary(self) -> str:
        used = int(np.count_nonzero(self.code_counts()))
        return (f"{self.table.size} entries, {self.distinct_outputs()} distinct outputs; this sample reads {used} "
                "of them")

    def steps(self) -> list[str]:
        return self.example.steps(self.x, self.y, self.function)

    def to_dict(self) -> dict[str, object]:
        return {**self.run_dict(), "x": self.x.to_dict(), "y": self.y.to_dict(), "function": self.function,
                "table": self.table.tolist(), "code_counts": self.code_counts().tolist(),
                "distinct_outputs": self.distinct_outputs(), "example": self.example.to_dict(),
                "steps": self.steps()}


def explain_lookup(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                   float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                   threads: int = 0, notes: list[str] | None = None) -> LookupExplanation:
    """Explain Sigmoid or LeakyRelu ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see
    :func:`.explain.explain_node`)."""
    fused_kernel = TABLE_KERNELS[node.op_type]
    run = run_unary(int8_model, node, data, sample, threads, f"applies {node.op_type} to", fused_kernel)
    x, y, x_q, runtime, kernel = run.x, run.y, run.x_q, run.runtime, run.kernel
    function = table_function(node)
    table = lookup_table(x, y, function)
    by_table = looked_up(x_q, x, table)
    summary = function_summary(node)
    fused = ran_as(kernel, fused_kernel)
    title = KERNEL_CHECK.format(function=node.op_type)
    checks = [checked_against_runtime(title, by_table, runtime, lambda diff: _cause(node.op_type, diff))]
    notes = list(notes or []) + run.sample.notes(run.output_shape) + _notes(node.op_type, kernel_name(kernel), fused)
    float_tensor, float_output = float_value(float_model, int8_model.graph, node, y.tensor, run.sample, threads, notes)
    index = worked_index(node, element, runtime, y, float_output)
    x_at = int(x_q[index])
    x_real = dequantized(np.array(x_at), x)
    return LookupExplanation(
        node=node.name, op_type=node.op_type, kind=node.op_type, runtime_kernel=kernel_name(kernel), sample=sample,
        x=x, y=y, function=summary, table=table, unrounded=unrounded_table(x, y, function), x_q=x_q,
        runtime=runtime, checks=checks,
        example=LookupElement(index=index, x_q=x_at, x_real=float(x_real), f_value=float(function(x_real)),
                              **result_values(y, by_table, by_table, runtime, float_output, index)),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _cause(op_type: str, diff: np.ndarray) -> str:
    if int(diff.max()) > 1:
        return "unexpected: the table and ONNX Runtime disagree by more than one step"
    if op_type == "Sigmoid":
        return ("the table follows ONNX Runtime's x86 float32 sigmoid (a rational approximation evaluated with fused "
                "multiply-adds); on a CPU without them an entry near a rounding tie can round the other way")
    return "unexpected: each entry is one float32 multiply at most, which ONNX Runtime computes the same way"


def _notes(op_type: str, kernel: str, fused: bool) -> list[str]:
    if not fused:
        return [f"ONNX Runtime runs this {op_type} as {kernel} in float32 between DequantizeLinear and "
                "QuantizeLinear, not as a table; with an 8-bit input it still gives only the table's values."]
    notes = [f"{kernel} computes no {op_type} per element: once per run it dequantizes all 256 input codes, applies "
             f"{op_type} in float32 and quantizes the results into a table, then looks every x_q up in it."]
    if op_type == "Sigmoid":
        notes.append("ONNX Runtime's float32 sigmoid is a rational approximation (x86: mlas, with fused "
                     "multiply-adds), computed here the same way: the exact logistic would move an entry whose value "
                     "lies within a float32 step of a rounding tie.")
    return notes
