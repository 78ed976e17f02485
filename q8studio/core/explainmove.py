"""How one int8 Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice or Gather really computes, checked bit
for bit against ONNX Runtime on a real sample.

Such a layer moves values without computing any (see :mod:`.movekernels`). This gathers the input's
quantization (the DequantizeLinear before the node) and the output's (the QuantizeLinear after it), the
indices a Slice or Gather reads, runs the model on one sample with the 8-bit tensors exposed, finds the input
element behind every output element, and checks the copy and the QDQ graph's definition against ONNX Runtime.
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
    kernel_of,
    requantized_sqnr,
    run_on_sample,
    unary_quantization,
)
from .explainsample import sample_feed
from .explainstep import result_lines, result_values, worked_index
from .model import LoadedModel, Node
from .movekernels import RESHAPES, dequantize_move_quantize, moved_8bit, source_positions
from .qdq import same_quantization
from .runtimegraph import RuntimeNode
from .weights import QuantParams

KERNEL_CHECK = "the 8-bit values copied"
MERGED = "(no kernel: merged into its neighbours)"
"""The kernel's name when ONNX Runtime's optimizer removed the layer, as it does a Transpose that its integer
convolutions' channels-last layout makes undone."""
DEFINITION_CHECK = "dequantize, move, quantize (the QDQ graph)"
SLICE_OPERANDS = ("starts", "ends", "axes", "steps")
SHOWN_INDICES = 8
"""A Gather's indices are listed in its summary up to this many."""


@dataclass(frozen=True, kw_only=True)
class MoveElement:
    """Every step behind one output element: the input element it is, and what became of its 8-bit value."""

    index: tuple[int, ...]
    source: tuple[int, ...]  # where in the input (as the model ran it) the element comes from
    x_q: int
    kernel_y_q: int
    definition_y_q: int
    y_real: float
    runtime_y_q: int
    float_value: float | None

    def steps(self, x: QuantParams, y: QuantParams) -> list[str]:
        """The element's arithmetic, which is none when the output keeps the input's quantization."""
        z_x = int(x.zero_point)
        lines = [f"output element {list(self.index)} is input element {list(self.source)}: x_q = {self.x_q}"]
        if same_quantization(x, y):
            lines.append(f"S_y = S_x and Z_y = Z_x: y_q = x_q = {self.kernel_y_q}  (no arithmetic, no rounding)")
        else:
            lines.append(f"S_y ≠ S_x or Z_y ≠ Z_x: y_q = round(S_x·({self.x_q} − {z_x})/S_y) + Z_y = "
                         f"{self.definition_y_q}")
        return lines + result_lines(y, self.kernel_y_q, self.y_real, self.runtime_y_q, self.float_value)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class MoveExplanation(ExplainedLayer):
    """Everything behind one int8 layer that moves values, on one sample, and how it compares."""

    x: QuantParams
    y: QuantParams
    movement: str  # what the layer does to the shape, in a line: "[1, 8, 4, 4] -> [1, 128], row-major order kept"
    x_q: np.ndarray  # the input's 8-bit values as the model ran them (every sample of a fixed batch)
    example: MoveElement

    def steps(self) -> list[str]:
        return self.example.steps(self.x, self.y)

    def to_dict(self) -> dict[str, object]:
        return {**self.run_dict(), "x": self.x.to_dict(), "y": self.y.to_dict(), "movement": self.movement,
                "example": self.example.to_dict(), "steps": self.steps()}


def explain_move(int8_model: LoadedModel, node: Node, data: Dataset, sample: int = 0,
                 float_model: LoadedModel | None = None, *, element: tuple[int, ...] | None = None,
                 threads: int = 0, notes: list[str] | None = None) -> MoveExplanation:
    """Explain ``node`` (a Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice or Gather) of a QDQ int8 model on
    sample ``sample`` of ``data`` (see :func:`.explain.explain_node`)."""
    graph = int8_model.graph
    x, y = unary_quantization(int8_model, node, "moves", f"{node.op_type} on 8-bit values")
    operand_names = _operand_names(node)
    stored = {key: int8_model.weight(name) for key, name in operand_names.items() if name in graph.initializers}
    exposed = [name for key, name in operand_names.items() if key not in stored]
    x_stored = x.tensor in graph.initializers  # a Gather's table of embeddings
    on_sample = sample_feed(int8_model, data, sample)
    runs, kernels = run_on_sample(int8_model, exposed + [y.tensor] + ([] if x_stored else [x.tensor]), on_sample,
                                  threads)
    x_q = int8_model.weight(x.tensor) if x_stored else runs[0][x.tensor]
    whole = runs[0][y.tensor]
    operands = {**stored, **{key: runs[0][operand_names[key]] for key in operand_names if key not in stored},
                **_slice_attributes(node)}
    positions = source_positions(node.op_type, node.attributes, x_q.shape, whole.shape, operands)
    runtime, by_kernel, by_definition, at = (
        on_sample.layer_rows(v, whole.shape, node.op_type)
        for v in (whole, moved_8bit(x_q, positions), dequantize_move_quantize(x_q, x, y, positions), positions))
    kernel = kernel_of(kernels, graph, node)
    on_8bit = same_quantization(x, y) and (kernel is None or x.tensor in kernel.inputs)
    checks = [checked_against_runtime(DEFINITION_CHECK, by_definition, runtime, _cause)]
    if on_8bit:
        checks.insert(0, checked_against_runtime(KERNEL_CHECK, by_kernel, runtime, _cause))
    notes = list(notes or []) + on_sample.notes(whole.shape) + _notes(node.op_type, kernel, x, y, on_8bit)
    float_tensor, float_output = float_value(float_model, graph, node, y.tensor, on_sample, threads, notes)
    if float_output is not None and on_8bit:
        notes.append(f"A {node.op_type} on 8-bit values adds no error of its own: where it differs from the float "
                     "model, the difference is its input's.")
    index = worked_index(node, element, runtime, y, float_output)
    source = tuple(int(i) for i in np.unravel_index(int(at[index]), x_q.shape))
    return MoveExplanation(
        node=node.name, op_type=node.op_type, kind=node.op_type, runtime_kernel=kernel.op_type if kernel else MERGED,
        sample=sample, x=x, y=y, movement=_movement(node, x_q.shape, whole.shape, operands), x_q=x_q,
        runtime=runtime, checks=checks,
        example=MoveElement(index=index, source=source, x_q=int(x_q[source]),
                            **result_values(y, by_kernel, by_definition, runtime, float_output, index)),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=requantized_sqnr(y, runtime, float_output),
        notes=notes,
    )


def _operand_names(node: Node) -> dict[str, str]:
    """The tensors after the first that say where elements go: a Gather's indices, a Slice's starts to steps."""
    if node.op_type == "Gather":
        return {"indices": node.inputs[1]}
    if node.op_type == "Slice":
        return {key: name for key, name in zip(SLICE_OPERANDS, node.inputs[1:]) if name}
    return {}


def _slice_attributes(node: Node) -> dict[str, np.ndarray]:
    """A Slice-1's starts, ends and axes, which later opsets made inputs."""
    if node.op_type != "Slice":
        return {}
    return {key: np.asarray(node.attributes[key], np.int64) for key in SLICE_OPERANDS if key in node.attributes}


def _movement(node: Node, x_shape: tuple[int, ...], y_shape: tuple[int, ...], operands: dict[str, np.ndarray]) -> str:
    """What the layer does to the shape, in a line."""
    shapes = f"{list(x_shape)} → {list(y_shape)}"
    if node.op_type in RESHAPES:
        return f"{shapes}, row-major order kept"
    if node.op_type == "Transpose":
        perm = node.attributes.get("perm")
        return f"{shapes}, perm {list(perm) if perm is not None else 'reversed'}"  # type: ignore[call-overload]
    if node.op_type == "Gather":
        indices = operands["indices"].reshape(-1)
        listed = ", ".join(str(int(i)) for i in indices[:SHOWN_INDICES]) + (", …" if indices.size > SHOWN_INDICES
                                                                            else "")
        return f"{shapes}, indices [{listed}] along axis {int(node.attributes.get('axis', 0))}"  # type: ignore
    parts = [f"{key} {operands[key].reshape(-1).tolist()}" for key in SLICE_OPERANDS if key in operands]
    return f"{shapes}, {', '.join(parts)}"


def _cause(diff: np.ndarray) -> str:
    return "unexpected: a copy of 8-bit values is exact, and should match ONNX Runtime everywhere"


def _notes(op_type: str, kernel: RuntimeNode | None, x: QuantParams, y: QuantParams, on_8bit: bool) -> list[str]:
    """What ONNX Runtime ran: ``on_8bit`` when it moved the codes themselves (it drops the Dequantize/Quantize pair
    around a layer whose output keeps its input's quantization), or the layer vanished in its optimizer."""
    if kernel is None:
        return [f"ONNX Runtime runs no kernel for this {op_type}: its optimizer merged the move into the layers "
                "around it (its integer convolutions work channels-last, which a Transpose to channels-last "
                "undoes), and the codes arrive in the order the layer defines, unchanged."]
    if on_8bit:
        return [f"ONNX Runtime removed the DequantizeLinear and QuantizeLinear around this {op_type} and runs "
                f"{kernel.op_type} on the {x.dtype} tensor itself: every output code is an input code, copied."]
    if not same_quantization(x, y):
        return [f"The output does not keep the input's scale and zero point, so ONNX Runtime runs this {op_type} in "
                "float32 between DequantizeLinear and QuantizeLinear, and each moved value is requantized."]
    return [f"ONNX Runtime runs this {op_type} as {kernel.op_type} in float32 between DequantizeLinear and "
            "QuantizeLinear: the definition is what it computes, and it gives the same codes as a copy."]

