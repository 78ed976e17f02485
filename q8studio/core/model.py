"""Load and validate an ONNX model and describe it as a format-neutral graph.

Every user-facing problem (missing file, not ONNX, truncated, missing external data,
invalid graph) becomes a one-line :class:`Q8Error`; the rest of q8studio works on
:class:`LoadedModel`, never on raw file paths.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from .errors import Q8Error, first_line
from .opsets import OLDEST_RUNNABLE_OPSET, converted, onnx_opset, prelu_slopes_per_channel
from .optypes import QDQ_OPS, QDQ_QUANTIZABLE_OPS, node_kind
from .renaming import fresh_name
from .skeleton import is_set_aside, skeleton_of, transformed
from .subgraphs import subgraph_reads

CONSTANT_NUMBERS = {
    "value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64,
}
"""A Constant node's number attributes and the type of the tensor each makes."""
CONSTANT_VALUES = frozenset({"value", *CONSTANT_NUMBERS})
"""The Constant attributes holding numbers (strings and sparse tensors are not weights)."""


@dataclass(frozen=True)
class TensorInfo:
    """Name, static shape (``None``/str for unknown or symbolic dims) and element type of a tensor."""

    name: str
    shape: tuple[int | str | None, ...] | None
    dtype: str | None
    is_initializer: bool = False

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float16", "float64")

    def shape_text(self) -> str:
        if self.shape is None:
            return "?"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class Node:
    """One graph node; ``namespace`` comes from exporter scopes like ``/encoder/layer.3/Add``."""

    index: int
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, object]
    namespace: tuple[str, ...]
    kind: str
    quantizable: bool


@dataclass
class Graph:
    """Nodes, tensors and the edges between them, in topological order."""

    nodes: list[Node]
    tensors: dict[str, TensorInfo]
    inputs: list[str]
    outputs: list[str]
    initializers: set[str]
    subgraph_reads: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Node index -> the values its subgraphs (an If's branches, a Loop's body) read from this graph
    without naming them as its inputs: the node is among their ``consumers`` all the same."""
    producer: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, list[int]] = field(default_factory=dict)
    by_name: dict[str, Node] = field(default_factory=dict, init=False, repr=False)
    """Node name -> node: profiling looks up a node per kernel, thousands of times on a large model."""
    constants: set[str] = field(default_factory=set, init=False, repr=False)
    """Outputs of nodes whose values the file fixes: a Constant holding numbers, a ConstantOfShape of
    a fixed shape. Some files hold their weights so (onnx's light_* models, by ConstantOfShape), and
    pre-processing folds them into initializers; what the model holds is shown as its weights."""

    def __post_init__(self) -> None:
        self.by_name = {node.name: node for node in self.nodes}
        for node in self.nodes:
            for name in node.outputs:
                self.producer[name] = node.index
            for name in (*node.inputs, *self.subgraph_reads.get(node.index, ())):
                if name:
                    self.consumers.setdefault(name, []).append(node.index)
            if self._makes_constant(node):
                self.constants.update(node.outputs)

    def _makes_constant(self, node: Node) -> bool:
        """Whether ``node`` outputs a fixed value; a ConstantOfShape's shape input comes before it."""
        if node.domain not in ("", "ai.onnx"):
            return False
        if node.op_type == "Constant":
            return not CONSTANT_VALUES.isdisjoint(node.attributes)
        return node.op_type == "ConstantOfShape" and self.is_constant(node.inputs[0])

    def is_constant(self, name: str) -> bool:
        """Whether a tensor's value is in the file: an initializer or a constant node's output."""
        return name in self.initializers or name in self.constants

    def edges(self) -> list[tuple[int, int, str]]:
        """(producer node, consumer node, tensor name) for every tensor flowing between nodes."""
        result = []
        for name, consumer_list in self.consumers.items():
            src = self.producer.get(name)
            if src is not None:
                result.extend((src, dst, name) for dst in consumer_list)
        return result

    def fused_from(self, name: str) -> list[Node]:
        """The nodes pre-processing named after node ``name`` when it fused that node with later ones:
        ``/mm1/MatMul/MatMulAddFusion`` for the MatMul ``/mm1/MatMul`` and the Add after it."""
        scope = name.rstrip("/") + "/"
        return [node for node in self.nodes if node.name.startswith(scope)]

    def node_by_name(self, name: str) -> Node:
        node = self.by_name.get(name)
        if node is None:
            raise Q8Error(f"The model has no node named '{name}'.")
        return node


def node_now_writing(graph: Graph, source: Graph, name: str) -> Node | None:
    """The node of ``graph``, a model made from ``source`` (pre-processed or quantized), that now writes what
    ``source``'s node ``name`` wrote: its output, or the output of nodes after it that ``graph`` lacks too.
    A BatchNormalization folds into its Conv, which writes its output; int8 drops a Relu after a Conv or an
    Add (the output range clamps at zero), which then writes the Relu's. Quantize/Dequantize nodes only
    convert a value and are passed over. None when no node does (a Dropout pre-processing dropped).
    """
    start = source.by_name.get(name)
    removed = [start] if start is not None else []
    seen = {name}
    while removed:  # downstream in the source graph, through the nodes ``graph`` lacks
        node = removed.pop(0)
        for tensor in node.outputs:
            writer = graph.producer.get(tensor)
            if writer is not None and graph.nodes[writer].op_type not in QDQ_OPS:
                return graph.nodes[writer]
            for index in source.consumers.get(tensor, []):
                after = source.nodes[index]
                if after.name not in graph.by_name and after.name not in seen:
                    seen.add(after.name)
                    removed.append(after)
    return None


@dataclass
class LoadedModel:
    """A validated model (shape-inferred, every node named) and its neutral graph."""

    path: Path
    proto: onnx.ModelProto
    graph: Graph
    external_files: tuple[str, ...] = ()
    file_size: int = 0
    """Bytes on disk when loaded, external data files included (for a model made in memory, its
    serialized size): taken once, so a run still reports it after the file is moved or deleted."""
    notes: tuple[str, ...] = ()
    """What loading changed in the model in memory (the file itself is never changed)."""

    @property
    def opset(self) -> int:
        return onnx_opset(self.proto)

    @cached_property
    def _initializers(self) -> dict[str, onnx.TensorProto]:
        return {t.name: t for t in self.proto.graph.initializer}

    def weight(self, name: str) -> np.ndarray:
        """The value of an initializer or of a constant node's output (:attr:`Graph.constants`) as a numpy array."""
        if name in self._initializers:
            return numpy_helper.to_array(self._initializers[name])
        if name not in self.graph.constants:
            raise Q8Error(f"'{name}' is not a weight (initializer or constant) of this model.")
        node = self._constant_node(name)
        if node.op_type == "ConstantOfShape":
            return np.full(self._filled_shape(node), _fill_value(node))
        attribute = _constant_attribute(node)
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        return np.asarray(onnx.helper.get_attribute_value(attribute), CONSTANT_NUMBERS[attribute.name])

    def parameter_count(self) -> int:
        """Values held in initializers and constant nodes, counted without reading a weight's values.
        int64 tensors are shapes, axes and indices, not parameters (ONNX makes them all int64)."""
        held = sum(math.prod(t.dims) for t in self.proto.graph.initializer if t.data_type != onnx.TensorProto.INT64)
        tensors = self.graph.tensors
        constants = [name for name in self.graph.constants if name not in tensors or tensors[name].dtype != "int64"]
        return held + sum(self._constant_size(name) for name in constants)

    def unstored_parameters(self) -> int:
        """The parameter count when the file is too small to hold the parameters (under a byte each, which even
        int8 takes): its graph computes them when it runs (onnx's light_* models fill theirs with
        ConstantOfShape), so its size says nothing of theirs. 0 when the file holds them."""
        count = self.parameter_count()
        return count if self.file_size < count else 0

    def _constant_node(self, name: str) -> onnx.NodeProto:
        return self.proto.graph.node[self.graph.producer[name]]

    def _constant_size(self, name: str) -> int:
        """A constant's size from its shape: a ConstantOfShape's values are not made just to count them."""
        node = self._constant_node(name)
        if node.op_type == "ConstantOfShape":
            return math.prod(self._filled_shape(node))
        attribute = _constant_attribute(node)
        return math.prod(attribute.t.dims) if attribute.name == "value" else int(self.weight(name).size)

    def _filled_shape(self, node: onnx.NodeProto) -> tuple[int, ...]:
        return tuple(int(d) for d in self.weight(node.input[0]))

    def input_specs(self) -> list[TensorInfo]:
        """The model inputs a user must feed (initializers listed as inputs excluded)."""
        return [self.graph.tensors[n] for n in self.graph.inputs]

    def source_files(self) -> dict[str, Path]:
        """The files the model was read from, named as messages name them: no output may replace one."""
        files = {"the source model": self.path}
        files |= {f"the model's external data '{name}'": self.path.parent / name for name in self.external_files}
        return files

    def quantizable_nodes(self) -> list[Node]:
        """Layers int8 quantization could take: none once the model is quantized, whose remaining
        float Conv or MatMul sit between DequantizeLinear and QuantizeLinear nodes already."""
        if self.is_quantized:
            return []
        return [n for n in self.graph.nodes if n.quantizable]

    def int8_nodes(self) -> list[Node]:
        """Quantize/dequantize and integer operators: a model that has them is already quantized."""
        return [n for n in self.graph.nodes if n.kind == "qdq"]

    @cached_property
    def is_quantized(self) -> bool:
        """Whether the model already has int8 operators (it is then no longer quantizable)."""
        return bool(self.int8_nodes())

    def summary(self) -> dict[str, object]:
        """What ``q8studio inspect`` prints: nodes by op, parameters, quantizable layers."""
        return {
            "path": str(self.path),
            "opset": self.opset,
            "notes": list(self.notes),
            "ir_version": self.proto.ir_version,
            "producer": f"{self.proto.producer_name} {self.proto.producer_version}".strip(),
            "file_size_bytes": self.file_size,
            "inputs": [_tensor_dict(t) for t in self.input_specs()],
            "outputs": [_tensor_dict(self.graph.tensors[n]) for n in self.graph.outputs],
            "node_count": len(self.graph.nodes),
            "ops": dict(Counter(n.op_type for n in self.graph.nodes).most_common()),
            "parameters": self.parameter_count(),
            "already_quantized": self.is_quantized,
            "quantizable_nodes": [n.name for n in self.quantizable_nodes()],
        }


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read, validate and shape-infer an ONNX model; raise Q8Error with the reason if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise Q8Error(f"No such file: {path}")
    if not path.is_file():
        raise Q8Error(f"{path} is not a file.")
    proto = _parse(path)
    _require_known_opset(proto, path)
    external_files = tuple(sorted(_external_data_files(proto)))
    _load_external_data(proto, path, external_files)
    proto, notes = _runnable_opset(proto)
    skeleton = skeleton_of(proto)
    try:
        onnx.checker.check_model(skeleton, full_check=False)
    except onnx.checker.ValidationError as exc:
        raise Q8Error(f"{path.name} is not a valid ONNX model: {first_line(exc)}") from None
    _check_weight_sizes(proto, path)
    proto = _infer_shapes(proto, skeleton)
    _name_nodes(proto)
    size = sum(file.stat().st_size for file in [path, *(path.parent / name for name in external_files)])
    return LoadedModel(path=path, proto=proto, graph=build_graph(proto), external_files=external_files, file_size=size,
                       notes=notes)


def model_from_proto(proto: onnx.ModelProto, path: Path) -> LoadedModel:
    """Wrap an in-memory model (e.g. one q8studio produced) without re-reading it."""
    proto = _infer_shapes(proto, skeleton_of(proto))
    _name_nodes(proto)
    return LoadedModel(path=path, proto=proto, graph=build_graph(proto), file_size=proto.ByteSize())


def _parse(path: Path) -> onnx.ModelProto:
    data = path.read_bytes()
    if not data:
        raise Q8Error(f"{path.name} is empty.")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError:
        if _looks_like_onnx_prefix(data):
            raise Q8Error(f"{path.name} is truncated or corrupted (the ONNX data ends early).") from None
        raise Q8Error(f"{path.name} is not an ONNX model (its content is not an ONNX protobuf).") from None
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise Q8Error(f"{path.name} is not an ONNX model (no graph found in it).")
    if len(proto.graph.node) == 0:
        raise Q8Error(f"{path.name} contains an empty graph (no nodes).")
    return proto


def _require_known_opset(proto: onnx.ModelProto, path: Path) -> None:
    """onnx's checker lets an opset from the future through; every later step would fail on it, each
    with a message of its own."""
    newest = onnx.defs.onnx_opset_version()
    opset = onnx_opset(proto)
    if opset > newest:
        raise Q8Error(f"{path.name} uses ONNX opset {opset}, newer than the newest this installation knows ({newest}); "
                      "update onnx and onnxruntime, or export the model at a lower opset.")


def _runnable_opset(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """``proto`` upgraded to the oldest opset ONNX Runtime runs, by onnx's version converter (on the
    skeleton: it reads no weight values), if it is older; the note says so. A model the converter
    cannot upgrade stays as it is: ONNX Runtime's refusal will then name the operator it lacks."""
    current = onnx_opset(proto)
    if not 0 < current < OLDEST_RUNNABLE_OPSET:
        return proto, ()
    try:
        upgraded = transformed(proto, _upgraded_to_runnable).assembled()
    except Q8Error as exc:
        return proto, (f"Opset {current} is older than ONNX Runtime runs ({OLDEST_RUNNABLE_OPSET}), and onnx's "
                       f"version converter cannot upgrade this model ({exc}).",)
    return upgraded, (f"Upgraded from opset {current} to {OLDEST_RUNNABLE_OPSET}, the oldest ONNX Runtime runs, in "
                      "memory (the file is unchanged).",)


def _upgraded_to_runnable(skeleton: onnx.ModelProto) -> onnx.ModelProto:
    return prelu_slopes_per_channel(converted(skeleton, OLDEST_RUNNABLE_OPSET))


def _looks_like_onnx_prefix(data: bytes) -> bool:
    """ONNX files start with field 1 (ir_version, varint): tag byte 0x08 and a small version."""
    return len(data) >= 2 and data[0] == 0x08 and 0 < data[1] < 32


def _external_data_files(proto: onnx.ModelProto) -> set[str]:
    files = set()
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    files.add(entry.value)
    return files


def _load_external_data(proto: onnx.ModelProto, path: Path, files: tuple[str, ...]) -> None:
    for name in files:
        if not (path.parent / name).is_file():
            raise Q8Error(f"{path.name} needs the external data file '{name}', which is missing next to it.")
    if files:
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:  # the last: a location outside the folder
            raise Q8Error(f"Could not read the external data of {path.name}: {first_line(exc)}") from None


def _check_weight_sizes(proto: onnx.ModelProto, path: Path) -> None:
    """The checker's test that a weight holds as many values as its shape says, for the weights it
    does not see: it checks the skeleton, since handing it the whole model copied every weight
    twice (a 575 MB VGG-19 peaked at 1.7 GB while loading). External data is loaded by now."""
    for tensor in proto.graph.initializer:
        if not is_set_aside(tensor):
            continue
        if tensor.HasField("raw_data"):
            held = len(tensor.raw_data) // onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        else:
            held = len(getattr(tensor, onnx.helper.tensor_dtype_to_field(tensor.data_type)))
        needed = math.prod(tensor.dims)
        if held != needed:
            raise Q8Error(
                f"{path.name} is not a valid ONNX model: weight {tensor.name!r} holds {held:,} values "
                f"where its shape {list(tensor.dims)} needs {needed:,}."
            )


def _infer_shapes(proto: onnx.ModelProto, skeleton: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with the tensor types and shapes ONNX infers added (in place, and returned).

    Best effort: a model that fails inference is still usable, just with fewer shapes. Inference
    runs on ``proto``'s skeleton (:mod:`.skeleton`): it reads no weight values, and serializing a
    large model's weights for it took longer than the inference itself.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(
            skeleton, check_type=False, strict_mode=False, data_prop=True
        ).graph
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError):
        return proto
    for listing in ("value_info", "output"):
        target = getattr(proto.graph, listing)
        del target[:]
        target.extend(getattr(inferred, listing))
    return proto


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Give unnamed or duplicate-named nodes unique names: exclusion and reports refer to nodes by name,
    and ONNX Runtime refuses a graph with two nodes of one name. A made-up name ("MatMul_1") never
    takes a name the exporter gave another node: the exporter's names are reserved first."""
    taken = {node.name for node in proto.graph.node if node.name}
    seen: set[str] = set()
    for index, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            node.name = fresh_name(f"{node.op_type}_{index}", taken)
        seen.add(node.name)


def build_graph(proto: onnx.ModelProto) -> Graph:
    """The neutral graph of a (shape-inferred) model."""
    g = proto.graph
    initializers = {t.name for t in g.initializer}
    tensors: dict[str, TensorInfo] = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        tensors[vi.name] = _value_info(vi, vi.name in initializers)
    for init in g.initializer:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name
        tensors[init.name] = TensorInfo(init.name, tuple(init.dims), dtype, True)
    nodes = [_node(i, n, tensors) for i, n in enumerate(g.node)]
    for node in nodes:
        for name in node.inputs + node.outputs:
            if name and name not in tensors:
                tensors[name] = TensorInfo(name, None, None)
    inputs = [vi.name for vi in g.input if vi.name not in initializers]
    reads = {index: tuple(sorted(names)) for index, node in enumerate(g.node) if (names := subgraph_reads(node))}
    return Graph(nodes, tensors, inputs, [o.name for o in g.output], initializers, reads)


def _node(index: int, proto: onnx.NodeProto, tensors: dict[str, TensorInfo]) -> Node:
    attributes = {a.name: _attribute_value(a) for a in proto.attribute}
    float_input = any(tensors.get(name, TensorInfo(name, None, None)).is_float for name in proto.input if name)
    return Node(
        index=index,
        name=proto.name,
        op_type=proto.op_type,
        domain=proto.domain,
        inputs=tuple(proto.input),
        outputs=tuple(proto.output),
        attributes=attributes,
        namespace=namespace_of(proto.name),
        kind=node_kind(proto.op_type),
        quantizable=proto.domain in ("", "ai.onnx") and proto.op_type in QDQ_QUANTIZABLE_OPS and float_input,
    )


def namespace_of(node_name: str) -> tuple[str, ...]:
    """Scope path of an exporter-written name: '/encoder/layer.3/attn/MatMul' -> ('encoder', 'layer.3', 'attn')."""
    parts = [p for p in node_name.split("/") if p]
    return tuple(parts[:-1])


def _attribute_value(attr: onnx.AttributeProto) -> object:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value).tolist() if np.prod(value.dims) <= 16 else f"tensor{list(value.dims)}"
    if isinstance(value, onnx.GraphProto):
        return f"subgraph '{value.name}' ({len(value.node)} nodes)"
    if isinstance(value, list):
        return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value if not hasattr(v, "node")]
    return value


def _constant_attribute(node: onnx.NodeProto) -> onnx.AttributeProto:
    return next(a for a in node.attribute if a.name in CONSTANT_VALUES)


def _fill_value(node: onnx.NodeProto) -> np.ndarray:
    """A ConstantOfShape's one value and its type; without the attribute, a float32 zero."""
    given = next((a.t for a in node.attribute if a.name == "value"), None)
    return numpy_helper.to_array(given).reshape(()) if given is not None else np.zeros((), np.float32)


def _value_info(vi: onnx.ValueInfoProto, is_initializer: bool) -> TensorInfo:
    if not vi.type.HasField("tensor_type"):
        return TensorInfo(vi.name, None, None, is_initializer)
    tt = vi.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name if tt.elem_type else None
    shape = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    return TensorInfo(vi.name, shape, dtype, is_initializer)


def _tensor_dict(t: TensorInfo) -> dict[str, object]:
    return {"name": t.name, "shape": list(t.shape) if t.shape is not None else None, "dtype": t.dtype}
