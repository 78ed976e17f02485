"""What ONNX Runtime really runs: its optimized graph, and which source node each kernel computes.

ONNX Runtime rewrites a model before running it: BatchNorm folds into Conv, activations fuse
into the layer before them, DQ -> Conv -> Q becomes one QLinearConv, and layout passes move
convolutions to NCHWc (float) or NHWC (int8) with Transpose/Reorder kernels around them. The
kernels keep traceable names: the source node's name (``/fc/Gemm``), the same rewritten
(``_token_<n>`` appended, ``fused `` prefixed, a fusion scope appended), or the fused output
tensor with ``_nchwc`` appended. That output may itself be renamed first: moving a Quantize up
(past a Reshape, say) leaves the layer before it writing ``<tensor>_pre_q``. Such a kernel is traced
by the model tensor it reads instead, which is enough to tie every kernel back to a source node.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from .model import Graph
from .session import cpu_session, session_options

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
LAYOUT_OPS = frozenset({"Transpose", "ReorderInput", "ReorderOutput"})
_TOKEN_SUFFIX = re.compile(r"(_token_\d+)+$")
_FUSION_SCOPE = re.compile(r"(/\w*Fusion)+$")
_FAMILY_PREFIXES = ("QLinear", "Nhwc", "Fused", "Q")


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
    options.optimized_model_filepath = str(folder / "optimized.onnx")
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.weights")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / "profile")
    session = cpu_session(model, outputs=outputs, options=options)
    optimized = onnx.load(options.optimized_model_filepath, load_external_data=False)
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


def is_glue(kernel: RuntimeNode, graph: Graph) -> bool:
    """Quantize/Dequantize kernels, and layout kernels ONNX Runtime inserted (not the model's own)."""
    if kernel.op_type in QDQ_OPS:
        return True
    return kernel.op_type in LAYOUT_OPS and source_node(kernel, graph) is None


def source_node(kernel: RuntimeNode, graph: Graph, runtime: Sequence[RuntimeNode] = ()) -> str | None:
    """The node of ``graph`` that ``kernel`` computes, or None for a kernel ONNX Runtime inserted.

    ``runtime``, the optimized graph, traces an NCHWc kernel whose output tensor the model lacks.
    """
    names = {node.name for node in graph.nodes}
    found = resolve_name(kernel.name, names)
    if found is not None:
        return found
    if kernel.name.endswith("_nchwc"):
        producer = graph.producer.get(kernel.name[: -len("_nchwc")])
        if producer is not None:
            return _fused_root(graph, producer, op_family(kernel.op_type))
        return _reader(kernel, graph, runtime)
    return None


def resolve_name(name: str, names: set[str]) -> str | None:
    """The member of ``names`` that a rewritten node name stands for, if any.

    Rewrites append ``_token_<n>`` (layout), prefix ``fused `` (activation fusion) or append a
    fusion scope (``/mm1/MatMul/MatMulAddFusion`` from MatMul + Add); only whole names are accepted.
    """
    base = _TOKEN_SUFFIX.sub("", name).removeprefix("fused ")
    for candidate in (name, base, _FUSION_SCOPE.sub("", base)):
        if candidate in names:
            return candidate
    return None


def _fused_root(graph: Graph, index: int, family: str) -> str:
    """Walk up from a fused kernel's output (a BN or activation) to the node of the kernel's op type."""
    start = index
    while graph.nodes[index].op_type != family:
        producers = [graph.producer[name] for name in graph.nodes[index].inputs if name in graph.producer]
        if not producers:
            return graph.nodes[start].name
        index = max(producers)
    return graph.nodes[index].name


def _reader(kernel: RuntimeNode, graph: Graph, runtime: Sequence[RuntimeNode]) -> str | None:
    """The one node of the kernel's op type that reads the model tensor the kernel reads first."""
    tensor = _model_tensor(kernel.inputs[0], graph, runtime) if kernel.inputs else None
    family = op_family(kernel.op_type)
    readers = [graph.nodes[i].name for i in graph.consumers.get(tensor, []) if graph.nodes[i].op_type == family]
    return readers[0] if len(readers) == 1 else None


def _model_tensor(name: str, graph: Graph, runtime: Sequence[RuntimeNode]) -> str | None:
    """The model tensor a runtime tensor carries: back through inserted layout kernels, and from an
    NCHWc kernel to the model tensor it is named after."""
    producers = {output: kernel for kernel in runtime for output in kernel.outputs}
    while name not in graph.consumers:
        kernel = producers.get(name)
        if kernel is not None and kernel.op_type in LAYOUT_OPS:
            name = kernel.inputs[0]
        elif kernel is not None and kernel.name.endswith("_nchwc"):
            return kernel.name[: -len("_nchwc")]
        else:
            return None
    return name


def absorbed_nodes(graph: Graph, computed: set[str]) -> dict[str, str]:
    """Nodes with no kernel of their own -> the computed node whose kernel absorbed them.

    A folded BatchNorm, a fused activation or a residual Add summed into a convolution belong
    to the latest computed node upstream of them (walking through other absorbed nodes).
    Quantize/Dequantize nodes that vanished into integer kernels cost nothing and are left out.
    """
    anchor: dict[str, str] = {}
    qdq = {node.name for node in graph.nodes if node.op_type in QDQ_OPS}
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
