"""Which layers of the prepared model did not become int8, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .model import LoadedModel
from .optypes import QDQ_QUANTIZABLE_OPS


@dataclass(frozen=True)
class FloatNode:
    name: str
    op_type: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def find_float_nodes(prepared: LoadedModel, int8: LoadedModel, exclude: tuple[str, ...]) -> list[FloatNode]:
    """Nodes of the int8 model that compute in float: operators the quantizer has no int8 form of
    (even when fed by a DequantizeLinear), and quantizable ones reading a float tensor directly.

    Nodes that vanished (a ReLU absorbed into the output range of the layer before it) and nodes
    without float inputs (shape arithmetic) are not float layers and are not listed.
    """
    dequantized = {o for n in int8.graph.nodes if n.op_type == "DequantizeLinear" for o in n.outputs}
    original = {n.name for n in prepared.graph.nodes}
    kept = []
    for node in int8.graph.nodes:
        if node.name not in original or node.kind == "qdq":
            continue
        float_inputs = [
            name for name in node.inputs
            if name and int8.graph.tensors.get(name) is not None and int8.graph.tensors[name].is_float
        ]
        quantized = node.op_type in QDQ_QUANTIZABLE_OPS and all(name in dequantized for name in float_inputs)
        if float_inputs and not quantized:
            kept.append(FloatNode(node.name, node.op_type, _reason(node.name, node.op_type, exclude)))
    return kept


def _reason(name: str, op_type: str, exclude: tuple[str, ...]) -> str:
    if name in exclude:
        return "kept in float on request"
    if op_type not in QDQ_QUANTIZABLE_OPS:
        return f"onnxruntime's quantizer has no int8 form of {op_type}"
    return "left in float by the quantizer: its inputs are not quantized"
