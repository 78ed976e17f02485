"""What ONNX Runtime really runs: its optimized graph, and which source node each kernel computes.

ONNX Runtime rewrites a model before running it: BatchNorm folds into Conv, activations fuse
into the layer before them, DQ -> Conv -> Q becomes one QLinearConv, and layout passes move
convolutions to NCHWc (float) or NHWC (int8) with Transpose/Reorder kernels around them. The
kernels keep traceable names: the source node's name (``/fc/Gemm``), the same rewritten
(``_token_<n>`` appended, ``fused `` prefixed, a fusion scope appended), or the fused output
tensor with ``_nchwc`` appended. A BatchNormalization or Mul by a per-channel constant that the
NCHWc pass runs as a depthwise convolution is named ``<output>_bn_nchwc`` / ``<output>_mul_nchwc``,
and moving a Quantize up (past a Reshape, say) leaves the layer before it writing
``<tensor>_pre_q``. Such a kernel is also checked against the model tensor it reads, which is
enough to tie every kernel back to a source node.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from .floatpath import is_written_out_dequantize
from .model import Graph
from .optypes import QDQ_OPS
from .session import cpu_session, session_options, write_optimized_graph

LAYOUT_OPS = frozenset({"Transpose", "ReorderInput", "ReorderOutput"})
_TOKEN_SUFFIX = re.compile(r"(_token_\d+)+$")
_FUSION_SCOPE = re.compile(r"(/\w*Fusion)+$")
_FAMILY_PREFIXES = ("QLinear", "Nhwc", "Fused", "Q")
_CONVERTED_OPS = {"_bn": "BatchNormalization", "_mul": "Mul"}
"""Name suffixes the NCHWc pass gives the nodes it runs as depthwise convolutions, and their op types."""


@dataclass(frozen=True)
class RuntimeNode:
    """One kernel of ONNX Runtime's optimized graph."""

    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def open_session(
    model: onnx.ModelProto, folder: Path, *, outputs: Sequence[str] = (), threads: int = 0, profile: bool = False
) -> tuple[ort.InferenceSession, list[RuntimeNode]]:
    """A CPU session (returning ``outputs`` too, see cpu_session) and the graph it runs; profiling
    files and the graph go to ``folder``, the graph's weights to a file of their own that is never read.
    A profiled session keeps ORT's spinning threads, as timing should (see session_options)."""
    options = session_options(threads=threads, spinning="always" if profile else "never")
    optimized_path = write_optimized_graph(options, folder)
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / "profile")
    session = cpu_session(model, outputs=outputs, options=options)
    optimized = onnx.load(optimized_path, load_external_data=False)
    nodes = [
        RuntimeNode(n.name, n.op_type, n.domain, tuple(n.input), tuple(n.output)) for n in optimized.graph.node
    ]
    return session, nodes


def op_family(op_type: str) -> str:
    """The plain ONNX operator a kernel implements: QLinearConv -> Conv, NhwcMaxPool -> MaxPool."""
    for prefix in _FAMILY_PREFIXES:
        rest = op_type[len(prefix):]
        if op_type.startswith(prefix) and rest[:1].isupper():
            return rest
    return op_type


def is_qdq(name: str, op_type: str) -> bool:
    """Quantize/Dequantize work: ONNX Runtime's own kernels, or a DequantizeLinear written out in float ops
    for a layer kept in float (:mod:`.floatpath`)."""
    return op_type in QDQ_OPS or is_written_out_dequantize(name)


def is_dequantize(name: str, op_type: str) -> bool:
    """Work turning 8-bit integers back into float32: a DequantizeLinear, or one written out."""
    return op_type == "DequantizeLinear" or is_written_out_dequantize(name)


def is_glue(kernel: RuntimeNode, graph: Graph) -> bool:
    """Quantize/Dequantize kernels, and layout kernels ONNX Runtime inserted (not the model's own)."""
    if is_qdq(kernel.name, kernel.op_type):
        return True
    return kernel.op_type in LAYOUT_OPS and source_node(kernel, graph) is None


def source_node(kernel: RuntimeNode, graph: Graph, runtime: Sequence[RuntimeNode] = ()) -> str | None:
    """The node of ``graph`` that ``kernel`` computes, or None for a kernel ONNX Runtime inserted.

    ``runtime``, the optimized graph, traces the tensor an NCHWc kernel reads back to the model.
    """
    found = resolve_name(kernel.name, graph.by_name)
    if found is not None:
        return found
    stem = _nchwc_stem(kernel.name)
    if stem is None:
        return None
    converted = _converted_node(stem, graph)
    if converted is not None:
        return converted
    written = _written_tensor(stem, graph)
    if written is not None:
        return _fused_root(graph, graph.producer[written], kernel, runtime)
    return _reader(kernel, graph, _read_tensor(kernel, graph, runtime))


def _read_tensor(kernel: RuntimeNode, graph: Graph, runtime: Sequence[RuntimeNode]) -> str | None:
    """The model tensor ``kernel`` reads first. It indexes the whole optimized graph, so it is asked
    only when a kernel's name leaves a choice."""
    return _model_tensor(kernel.inputs[0], graph, runtime) if kernel.inputs else None


def resolve_name(name: str, names: Container[str]) -> str | None:
    """The member of ``names`` that a rewritten node name stands for, if any.

    Rewrites append ``_token_<n>`` (layout), prefix ``fused `` (activation fusion) or append a
    fusion scope (``/mm1/MatMul/MatMulAddFusion`` from MatMul + Add); only whole names are accepted.
    """
    base = _TOKEN_SUFFIX.sub("", name).removeprefix("fused ")
    for candidate in (name, base, _FUSION_SCOPE.sub("", base)):
        if candidate in names:
            return candidate
    return None


def _nchwc_stem(name: str) -> str | None:
    """The tensor name an NCHWc kernel is named after (``r6`` of ``r6_nchwc``), None for other kernels."""
    base = _TOKEN_SUFFIX.sub("", name)
    return base[: -len("_nchwc")] if base.endswith("_nchwc") else None


def _converted_node(stem: str, graph: Graph) -> str | None:
    """The BatchNormalization or Mul an NCHWc kernel named ``<output>_bn`` / ``<output>_mul`` runs as
    a depthwise convolution: that node alone, not the convolution before it."""
    for suffix, op_type in _CONVERTED_OPS.items():
        tensor = _written_tensor(stem.removesuffix(suffix), graph) if stem.endswith(suffix) else None
        node = graph.nodes[graph.producer[tensor]] if tensor is not None else None
        if node is not None and node.op_type == op_type:
            return node.name
    return None


def _written_tensor(stem: str, graph: Graph) -> str | None:
    """The model tensor an NCHWc kernel named after ``stem`` writes, or wrote before later fusions.

    The stem is that tensor, or that tensor with a suffix (``_pre_q`` where it was renamed, ``_bn``
    where a node became a convolution): the longest leading run of ``_``-separated parts that a
    node writes is taken.
    """
    parts = stem.split("_")
    for end in range(len(parts), 0, -1):
        name = "_".join(parts[:end])
        if name in graph.producer:
            return name
    return None


def _fused_root(graph: Graph, index: int, kernel: RuntimeNode, runtime: Sequence[RuntimeNode]) -> str:
    """The node of the kernel's op type whose fused chain ends at node ``index`` (a BN or activation).

    Fusion (Conv + BatchNorm + Mul + Add + Relu) only swallows a tensor that nothing else reads, so
    the chain is what lies upstream of ``index`` through tensors with one reader: the walk keeps to
    the data and stays off the constants (an Unsqueeze'd scale) and off shared inputs. The nearest
    node of the kernel's op type is taken; of two (a residual Add of two convolutions), the one
    reading the model tensor the kernel reads. A chain with none is node ``index`` itself.
    """
    family = op_family(kernel.op_type)
    family_nodes = [graph.nodes[i] for i in _fused_chain(graph, index) if graph.nodes[i].op_type == family]
    if len(family_nodes) > 1:
        read = _read_tensor(kernel, graph, runtime)
        family_nodes = [node for node in family_nodes if read is not None and read in node.inputs] or family_nodes
    return (family_nodes or [graph.nodes[index]])[0].name


def _fused_chain(graph: Graph, index: int) -> list[int]:
    """Node ``index`` and, nearest first, the nodes upstream whose outputs only the chain reads."""
    chain, position = [index], 0
    outputs = set(graph.outputs)
    while position < len(chain):
        node = graph.nodes[chain[position]]
        position += 1
        for name in dict.fromkeys(node.inputs):
            producer = graph.producer.get(name)
            if producer is None or producer in chain or name in outputs:
                continue
            if set(graph.consumers.get(name, [])) == {node.index}:
                chain.append(producer)
    return chain


def _reader(kernel: RuntimeNode, graph: Graph, tensor: str | None) -> str | None:
    """The one node reading the model tensor the kernel reads first: of the kernel's op type if any."""
    readers = [graph.nodes[i] for i in dict.fromkeys(graph.consumers.get(tensor, []))] if tensor else []
    family = [node for node in readers if node.op_type == op_family(kernel.op_type)]
    for candidates in (family, readers):
        if len(candidates) == 1:
            return candidates[0].name
    return None


def _model_tensor(name: str, graph: Graph, runtime: Sequence[RuntimeNode]) -> str | None:
    """The model tensor a runtime tensor carries: back through inserted layout kernels, from an NCHWc
    kernel to the model tensor it writes, and from a kernel of a model node to that node's output."""
    producers = {output: (kernel, i) for kernel in runtime for i, output in enumerate(kernel.outputs)}
    while name not in graph.consumers:
        kernel, position = producers.get(name, (None, 0))
        if kernel is None:
            return None
        if kernel.op_type in LAYOUT_OPS and kernel.inputs:
            name = kernel.inputs[0]
            continue
        stem = _nchwc_stem(kernel.name)
        if stem is not None:
            return _written_tensor(stem, graph)
        node = graph.by_name.get(resolve_name(kernel.name, graph.by_name) or "")
        return node.outputs[position] if node is not None and len(node.outputs) == len(kernel.outputs) else None
    return name


def absorbed_nodes(graph: Graph, computed: set[str]) -> dict[str, str]:
    """Nodes with no kernel of their own -> the computed node whose kernel absorbed them.

    A folded BatchNorm, a fused activation or a residual Add summed into a convolution belong
    to the latest computed node upstream of them (walking through other absorbed nodes).
    Quantize/Dequantize nodes that vanished into integer kernels cost nothing and are left out.
    """
    anchor: dict[str, str] = {}
    qdq = {node.name for node in graph.nodes if is_qdq(node.name, node.op_type)}
    for node in graph.nodes:  # topological order: producers are settled first
        if node.name in computed:
            continue
        upstream = sorted((graph.producer[name] for name in node.inputs if name in graph.producer), reverse=True)
        for index in upstream:
            name = graph.nodes[index].name
            found = name if name in computed else anchor.get(name)
            if found is not None:
                anchor[node.name] = found
                break
    return {name: owner for name, owner in anchor.items() if name not in qdq}
