"""Layers kept in float: the ones a user asks for, and which ones did not become int8 and why."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass

from .errors import Q8Error
from .model import LoadedModel, node_now_writing
from .optypes import QDQ_QUANTIZABLE_OPS
from .subgraphs import layers_inside


FLOAT_PARAMETERS: dict[str, tuple[int, ...]] = {"Resize": (1, 2)}
"""Float inputs onnxruntime's quantizer leaves float in an int8 layer (a Resize's roi and scales):
no sign of a float layer."""


@dataclass(frozen=True)
class FloatNode:
    name: str
    op_type: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class FloatTally:
    """An int8 model's float nodes in the two kinds every view names apart, counted once.

    ``kept``: kept in float on request, the recipe's exclusions (a user's, or Keep slower layers in
    float's). ``left``: left in float by the quantizer on its own, an operator it has no int8 form of,
    or a node reading only float tensors (a Flatten between two layers kept in float). "Kept" means the
    first kind alone, counted in nodes: the unit a user keeps, a recipe lists and the graph badges;
    three views counting three ways (17 nodes, 18 nodes, 10 layers) could not all be right.
    """

    kept: tuple[FloatNode, ...]
    left: tuple[FloatNode, ...]

    @property
    def kept_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.kept)

    def is_kept(self, name: str) -> bool:
        return any(node.name == name for node in self.kept)


def tally_float_nodes(float_nodes: Iterable[FloatNode], kept: Collection[str]) -> FloatTally:
    """``float_nodes`` (:func:`find_float_nodes`) split by whether ``kept``, the nodes the recipe kept in
    float (in the int8 model's names), holds them; whatever reason a node gives (a node Keep slower layers
    in float chose says so), the recipe decides."""
    nodes = list(float_nodes)
    return FloatTally(tuple(node for node in nodes if node.name in kept),
                      tuple(node for node in nodes if node.name not in kept))


def nodes_to_keep_in_float(
    source: LoadedModel, prepared: LoadedModel, requested: tuple[str, ...],
) -> tuple[tuple[str, ...], list[str]]:
    """The prepared model's nodes for the layers a user asked to keep in float, and notes.

    Users name nodes of the model they opened; pre-processing changes some. It folds a BatchNorm
    into the convolution before it, which then writes the BatchNorm's output: keeping the BatchNorm
    in float keeps that convolution. It fuses a MatMul and the Add after it into a Gemm named after
    the MatMul (``mm/MatMulAddFusion``), which writes the Add's output: keeping either keeps the Gemm.
    A node pre-processing removed without a trace (an Identity, a Dropout) computes nothing to keep
    and is noted; a name in neither model is an error.
    """
    in_prepared, in_source = prepared.graph.by_name, source.graph.by_name
    names: list[str] = []
    notes: list[str] = []
    unknown: list[str] = []
    for name in dict.fromkeys(requested):
        if name in in_prepared:
            names.append(name)
            continue
        if name not in in_source:
            unknown.append(name)
            continue
        layer = _layer_now_computing(name, source, prepared)
        if layer is not None:
            names.append(layer)
            notes.append(f"{name} is folded into {layer}: keeping {layer} in float.")
        else:
            notes.append(f"{name} is removed by pre-processing: there is nothing of it to keep in float.")
    if unknown:
        raise Q8Error(f"No node named {', '.join(repr(m) for m in unknown)} in the model; nothing to keep in float.")
    return tuple(dict.fromkeys(names)), notes


def _layer_now_computing(name: str, source: LoadedModel, prepared: LoadedModel) -> str | None:
    """The prepared model's node that computes what node ``name`` of the source model did, if any: the one
    now writing its output (:func:`.model.node_now_writing`), else the one pre-processing named after it
    when fusing it with later nodes."""
    writer = node_now_writing(prepared.graph, source.graph, name)
    if writer is not None:
        return writer.name
    fused = prepared.graph.fused_from(name)
    return fused[0].name if len(fused) == 1 else None


def find_float_nodes(prepared: LoadedModel, int8: LoadedModel, exclude: tuple[str, ...]) -> list[FloatNode]:
    """Nodes of the int8 model that compute in float: the ones in ``exclude`` (as the quantizer
    was told), operators the quantizer has no int8 form of (even when fed by a
    DequantizeLinear), and quantizable ones reading a float tensor directly.

    Nodes that vanished (a ReLU absorbed into the output range of the layer before it) and nodes
    without float inputs (shape arithmetic) are not float layers and are not listed.
    """
    dequantized = {o for n in int8.graph.nodes if n.op_type == "DequantizeLinear" for o in n.outputs}
    original = prepared.graph.by_name
    kept = []
    for node in int8.graph.nodes:
        if node.name not in original or node.kind == "qdq":
            continue
        parameters = FLOAT_PARAMETERS.get(node.op_type, ())
        read = [name for position, name in enumerate(node.inputs) if position not in parameters]
        float_inputs = [
            name for name in (*read, *int8.graph.subgraph_reads.get(node.index, ()))
            if name and int8.graph.tensors.get(name) is not None and int8.graph.tensors[name].is_float
        ]
        quantized = node.op_type in QDQ_QUANTIZABLE_OPS and all(name in dequantized for name in float_inputs)
        if node.name in exclude or (float_inputs and not quantized):
            inside = layers_inside(int8.proto.graph.node[node.index])
            kept.append(FloatNode(node.name, node.op_type, _reason(node.name, node.op_type, exclude, inside)))
    return kept


def _reason(name: str, op_type: str, exclude: tuple[str, ...], inside: list[str]) -> str:
    if name in exclude:
        return "kept in float on request"
    if op_type not in QDQ_QUANTIZABLE_OPS:
        reason = f"onnxruntime's quantizer has no int8 form of {op_type}"
        if inside:  # the user would look for these in vain among the float layers
            reason += f" and does not enter it: {len(inside)} layer(s) inside stay float ({', '.join(inside)})"
        return reason
    return "left in float by the quantizer: its inputs are not quantized"
