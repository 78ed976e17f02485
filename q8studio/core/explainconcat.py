"""How one int8 Concat really computes, checked bit for bit against ONNX Runtime on a real sample.

A Concat of a QDQ model joins 8-bit tensors that may each have their own scale and zero point into one output
with its own. ONNX Runtime fuses it into QLinearConcat, which copies an input quantized as the output and
passes any other through a 256-entry requantization table, ``T[c] = sat(rint(S_i (c - Z_i) / S_y) + Z_y)``
(see :mod:`.lookupkernels`): no arithmetic per element either way. This gathers every input's quantization and
the output's, runs the model on one sample with all of them exposed, and rebuilds the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import Dataset
from .errors import Q8Error
from .explainrun import (
    ExplainedLayer,
    checked_against_runtime,
    dequantizer_of,
    float_value,
    kernel_name,
    kernel_of,
    requantized_sqnr,
    run_on_sample,
    sole_reader,
)
from .explainsample import sample_feed
from .explainstep import checked_index, pick_element, result_lines, result_values
from .lookupkernels import identity, input_codes, looked_up, lookup_table
from .model import LoadedModel, Node
from .qdq import dequantized, output_bounds, same_quantization
from .weights import QuantParams, qdq_params

FUSED_KERNEL = "QLinearConcat"
KERNEL_CHECK = "copies and requantization tables"


@dataclass(frozen=True)
class ConcatInput:
    """One input of the Concat: its quantization, and the table that requantizes it (None: it is copied)."""

    params: QuantParams
    table: np.ndarray | None
    start: int  # where its part of the output begins along the axis
    size: int  # how long it is along the axis

    @property
    def copied(self) -> bool:
        return self.table is None

    @property
    def codes(self) -> np.ndarray:
        """The input codes the table's entries stand for, lowest first."""
        return input_codes(self.params)

    def to_dict(self) -> dict[str, object]:
        return {"params": self.params.to_dict(), "copied": self.copied, "start": self.start, "size": self.size,
                "table": None if self.table is None else self.table.tolist()}


@dataclass(frozen=True)
class ConcatElement:
    """Every step behind one output element: the input it comes from, its 8-bit value, and what became of it."""

    index: tuple[int, ...]
    source: int  # which input
    source_index: tuple[int, ...]  # where in that input
    x_q: int
    x_real: float  # S_i (x_q - Z_i), float32
    kernel_y_q: int
    definition_y_q: int
    y_real: float
    runtime_y_q: int
    float_value: float | None

    def steps(self, inputs: list[ConcatInput], y: QuantParams) -> list[str]:
        """The arithmetic of the element: none when its input is copied, one table entry when it is requantized."""
        x = inputs[self.source].params
        qmin, qmax = output_bounds(y)
        lines = [f"from input {self.source} at {list(self.source_index)}: x_q = {self.x_q}"]
        if inputs[self.source].copied:
            lines.append(f"input {self.source} has the output's scale and zero point: copied, y_q = x_q = "
                         f"{self.kernel_y_q}  (no arithmetic, no rounding)")
        else:
            lines += [f"input {self.source} is requantized: y_q = T_x{self.source}[x_q], an entry made once per run:",
                      f"  x = S_x{self.source}·(x_q − Z_x{self.source}) = {float(x.scale):.6g}·({self.x_q} − "
                      f"{int(x.zero_point)}) = {self.x_real:.9g}  (float32)",
                      f"  y_q = round(x/S_y) + Z_y, in [{qmin}, {qmax}] = {self.kernel_y_q}"]
        return lines + result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class ConcatExplanation(ExplainedLayer):
    """Everything behind one int8 Concat's output on one sample, and how it compares."""

    axis: int
    inputs: list[ConcatInput]
    y: QuantParams
    example: ConcatElement

    def steps(self) -> list[str]:
        return self.example.steps(self.inputs, self.y)

    def to_dict(self) -> dict[str, object]:
        return {**self.run_dict(), "axis": self.axis, "inputs": [i.to_dict() for i in self.inputs],
                "y": self.y.to_dict(), "example": self.example.to_dict(), "steps": self.steps()}


def explain_concat(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                   float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                   threads: int = 0, notes: list[str] | None = None) -> ConcatExplanation:
    """Explain Concat ``node`` of a QDQ int8 model on sample ``sample`` of ``data`` (see
    :func:`.explain.explain_node`)."""
    graph = int8_model.graph
    params, y = _quantization(int8_model, node)
    on_sample = sample_feed(int8_model, data, sample)
    names = [p.tensor for p in params] + [y.tensor]
    runs, kernels = run_on_sample(int8_model, names, on_sample, threads)
    shape = runs[0][y.tensor].shape
    x_qs = [on_sample.layer_rows(runs[0][p.tensor], shape, "Concat") for p in params]
    runtime = on_sample.layer_rows(runs[0][y.tensor], shape, "Concat")
    axis = int(node.attributes.get("axis", 0)) % runtime.ndim
    inputs = _inputs(params, y, x_qs, axis)
    by_kernel = np.concatenate([x_q.astype(np.int64) if i.copied else looked_up(x_q, i.params, i.table)
                                for i, x_q in zip(inputs, x_qs)], axis=axis)
    kernel = kernel_of(kernels, graph, node)
    checks = [checked_against_runtime(KERNEL_CHECK, by_kernel, runtime, _cause)]
    notes = list(notes or []) + on_sample.notes(shape) + _notes(inputs, kernel_name(kernel))
    float_tensor, float_output = float_value(float_model, graph, node, y.tensor, on_sample, threads, notes)
    index = checked_index(node, element if element is not None else _pick(runtime, y, inputs, axis), runtime.shape)
    return ConcatExplanation(
        node=node.name, op_type="Concat", kind="Concat", runtime_kernel=kernel_name(kernel), sample=sample,
        axis=axis, inputs=inputs, y=y, runtime=runtime, checks=checks,
        example=_element(inputs, x_qs, y, axis, by_kernel, runtime, float_output, index),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _quantization(model: LoadedModel, node: Node) -> tuple[list[QuantParams], QuantParams]:
    graph = model.graph
    before = [dequantizer_of(graph, name) for name in node.inputs]
    if any(dq is None for dq in before):
        raise Q8Error(f"Node {node.name} runs in float: not every input is quantized (a DequantizeLinear feeds each "
                      "input of an int8 Concat).")
    after = sole_reader(graph, node.outputs[0])
    if after is None or after.op_type != "QuantizeLinear":
        raise Q8Error(f"Node {node.name}'s output is not re-quantized: ONNX Runtime joins the dequantized inputs in "
                      "float32, so there is no 8-bit arithmetic to explain.")
    params = [qdq_params(model, dq) for dq in before]  # type: ignore[arg-type]
    y = qdq_params(model, after)
    if y.per_channel or any(p.per_channel for p in params):
        raise Q8Error(f"Node {node.name} has per-channel activation scales; QLinearConcat takes one scale per tensor.")
    return params, y


def _inputs(params: list[QuantParams], y: QuantParams, x_qs: list[np.ndarray], axis: int) -> list[ConcatInput]:
    """Each input with its table (None when it is copied) and its place along the axis."""
    inputs, start = [], 0
    for p, x_q in zip(params, x_qs):
        table = None if same_quantization(p, y) else lookup_table(p, y, identity)
        inputs.append(ConcatInput(p, table, start, int(x_q.shape[axis])))
        start += int(x_q.shape[axis])
    return inputs


def _pick(runtime: np.ndarray, y: QuantParams, inputs: list[ConcatInput], axis: int) -> tuple[int, ...]:
    """The largest unsaturated element of a requantized input's part (of any part when every input is copied):
    a copy shows no arithmetic."""
    requantized = [i for i in inputs if not i.copied] or inputs
    candidates = np.full(runtime.shape, int(y.zero_point), np.int64)  # Z_y: magnitude 0, never picked first
    for i in requantized:
        part = [slice(None)] * runtime.ndim
        part[axis] = slice(i.start, i.start + i.size)
        candidates[tuple(part)] = runtime[tuple(part)]
    return pick_element(candidates, y, None)


def _element(inputs: list[ConcatInput], x_qs: list[np.ndarray], y: QuantParams, axis: int, by_kernel: np.ndarray,
             runtime: np.ndarray, float_output: np.ndarray | None, index: tuple[int, ...]) -> ConcatElement:
    source = next(n for n, i in enumerate(inputs) if i.start <= index[axis] < i.start + i.size)
    source_index = tuple(i - inputs[source].start if d == axis else i for d, i in enumerate(index))
    x_q = int(x_qs[source][source_index])
    return ConcatElement(index=index, source=source, source_index=source_index, x_q=x_q,
                         x_real=float(dequantized(np.array(x_q), inputs[source].params)),
                         **result_values(y, by_kernel, by_kernel, runtime, float_output, index))


def _cause(diff: np.ndarray) -> str:
    return ("unexpected: a copy is exact, and a table entry one float32 multiply and divide that ONNX Runtime "
            "computes alike")


def _notes(inputs: list[ConcatInput], kernel: str) -> list[str]:
    if kernel != FUSED_KERNEL:
        return [f"ONNX Runtime runs this Concat as {kernel} in float32 between DequantizeLinear and QuantizeLinear; "
                "it gives the same values as the copies and tables."]
    copied = sum(i.copied for i in inputs)
    return [f"QLinearConcat copies the {copied} input{'s' * (copied != 1)} quantized as its output and requantizes "
            f"the other {len(inputs) - copied} through a 256-entry table each: no arithmetic per element. An input "
            "whose range is wider than the output's is clipped by its table."]
