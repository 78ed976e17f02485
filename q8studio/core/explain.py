"""How one int8 layer really computes, checked bit for bit against ONNX Runtime on a real sample.

For a Conv, Gemm or MatMul of a QDQ int8 model (an Add: :mod:`.explainadd`; a Mul: :mod:`.explainmul`; a
GlobalAveragePool: :mod:`.explainpool`; a MaxPool or AveragePool: :mod:`.explainmaxpool`,
:mod:`.explainaveragepool`; a Sigmoid or LeakyRelu: :mod:`.explainlookup`; a Concat: :mod:`.explainconcat`; a
Softmax: :mod:`.explainsoftmax`; a layer that moves values, such as a Reshape or Transpose: :mod:`.explainmove`)
this gathers what the integer kernel uses (S_x, Z_x from the DequantizeLinear on the input; w_q, S_w, Z_w
from the one on the weight; the int32 bias; S_y, Z_y from the QuantizeLinear after the node;
M = S_x S_w / S_y, times a Gemm's alpha, split into M0 and a shift n), runs the model on one sample with the
node's integer input and output exposed, and recomputes the output with the integer reference kernels of
:mod:`.intkernels`. Exposing the QuantizeLinear output keeps ONNX Runtime's fusion intact, so its value is
what the fused integer kernel produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .data import Dataset
from .errors import Q8Error
from .explainadd import AddExplanation, explain_add
from .explainaveragepool import AveragePoolExplanation, explain_average_pool
from .explainconcat import ConcatExplanation, explain_concat
from .explainlookup import LookupExplanation, explain_lookup
from .explainmaxpool import MaxPoolExplanation, explain_max_pool
from .explainmove import MoveExplanation, explain_move
from .explainmul import MulExplanation, explain_mul
from .explainpool import PoolExplanation, explain_global_average_pool
from .explainrun import (
    ABSORBED_ACTIVATIONS,
    Check,
    ExplainedLayer,
    GemmScaling,
    dequantizer_of,
    float_value,
    gemm_scaling,
    kernel_name,
    kernel_of,
    removed_activation_note,
    requantized_sqnr,
    run_on_sample,
)
from .explainsample import sample_feed, sample_part
from .explainsoftmax import SoftmaxExplanation, explain_softmax
from .explainstep import WorkedElement, accumulators, conv_geometry, pick_element, worked_element
from .floatpath import recorded_kept_in_float
from .int8pairs import CODE_KERNELS, unfused_int8_note
from .intkernels import channel_multipliers, qlinear_conv, qlinear_gemm, qlinear_matmul, runtime_multiplier
from .intmath import Multiplier
from .metrics import measure
from .model import Graph, LoadedModel, Node, node_now_writing
from .movekernels import MOVERS
from .runtimegraph import RuntimeNode
from .weights import QuantParams, qdq_params

EXPLAINABLE_OPS = ("Conv", "Gemm", "MatMul", "Add", "Mul", "GlobalAveragePool", "MaxPool", "AveragePool", "Sigmoid",
                   "LeakyRelu", "Concat", "Softmax", *MOVERS)
EXPLAINABLE_WORDS = ("Conv, Gemm, MatMul, Add, Mul, GlobalAveragePool, MaxPool, AveragePool, Sigmoid, LeakyRelu, "
                     "Concat, Softmax, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice or Gather")


@dataclass(kw_only=True)
class NodeExplanation(ExplainedLayer):
    """Everything behind one int8 Conv, Gemm or MatMul's output on one sample, and how it compares."""

    attributes: dict[str, object]
    x: QuantParams
    w: QuantParams
    bias_q: np.ndarray | None
    y: QuantParams | None
    multipliers: list[Multiplier]
    x_q: np.ndarray
    reference: np.ndarray
    example: WorkedElement
    scaling: GemmScaling = field(default_factory=GemmScaling)

    @property
    def ort_multipliers(self) -> np.ndarray:
        """M as ONNX Runtime computes it, in float32."""
        scale = self.y.scale if self.y is not None else np.float32(1.0)
        return np.atleast_1d(runtime_multiplier(self.x.scale, self.w.scale, scale, self.scaling.alpha))

    def to_dict(self) -> dict[str, object]:
        return {
            **self.run_dict(), "attributes": self.attributes,
            "x": self.x.to_dict(), "w": self.w.to_dict(), "y": self.y.to_dict() if self.y else None,
            "bias_q": None if self.bias_q is None else self.bias_q.tolist(),
            "multipliers": [m.__dict__ for m in self.multipliers],
            "ort_multipliers": self.ort_multipliers.tolist(),
            "example": self.example.to_dict(), "scaling": self.scaling.__dict__,
        }


Explanation = (NodeExplanation | AddExplanation | MulExplanation | PoolExplanation | MaxPoolExplanation
               | AveragePoolExplanation | LookupExplanation | ConcatExplanation | SoftmaxExplanation | MoveExplanation)
"""What Explain tells of a layer, by kind: each has a title, checks against ONNX Runtime, notes and steps."""


INTEGER_KERNELS = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger")
"""How the names of ONNX Runtime's integer kernels begin; any other kernel of a quantized layer computes in float."""

WEIGHTLESS = {"Add": explain_add, "Mul": explain_mul, "GlobalAveragePool": explain_global_average_pool,
              "MaxPool": explain_max_pool, "AveragePool": explain_average_pool, "Sigmoid": explain_lookup,
              "LeakyRelu": explain_lookup, "Concat": explain_concat, "Softmax": explain_softmax,
              **dict.fromkeys(MOVERS, explain_move)}
"""The layers without weights, each explained by its own module; Conv, Gemm and MatMul are explained here."""


@dataclass(frozen=True)
class _Layer:
    """The quantization around one node, read from its Quantize/Dequantize neighbours."""

    x: QuantParams
    w: QuantParams
    bias_q: np.ndarray | None
    bias_scale: np.ndarray | None  # S_b, which ONNX Runtime's fused kernels take to be S_x S_w
    y: QuantParams | None
    y_tensor: str  # the runtime tensor holding the node's result (8-bit, or float when not requantized)
    activation: Node | None  # a Relu/Clip left between the node and its QuantizeLinear


def explain_node(
    int8_model: LoadedModel,
    node_name: str,
    data: Dataset,
    sample: int = 0,
    float_model: LoadedModel | None = None,
    *,
    element: tuple[int, ...] | None = None,
    threads: int = 0,
) -> Explanation:
    """Explain ``node_name`` of a QDQ int8 model on sample ``sample`` of ``data``.

    ``float_model`` adds the float value of the same tensor and the SQNR of the int8 output;
    ``element`` chooses the worked output element (default: the largest unsaturated one).
    An Add gets an :class:`~.explainadd.AddExplanation`, a Mul a :class:`~.explainmul.MulExplanation`, a
    GlobalAveragePool a
    :class:`~.explainpool.PoolExplanation`, a MaxPool a :class:`~.explainmaxpool.MaxPoolExplanation`, an
    AveragePool an :class:`~.explainaveragepool.AveragePoolExplanation`, a Sigmoid or LeakyRelu a
    :class:`~.explainlookup.LookupExplanation`, a Concat a :class:`~.explainconcat.ConcatExplanation`, a
    Softmax a :class:`~.explainsoftmax.SoftmaxExplanation`, a layer that moves values (Reshape, Flatten, Squeeze,
    Unsqueeze, Transpose, Slice, Gather) a :class:`~.explainmove.MoveExplanation`.
    """
    graph = int8_model.graph
    node, renamed = _find_node(graph, node_name, float_model.graph if float_model else None)
    refusal = unexplainable(node)
    if refusal:
        raise Q8Error(refusal)
    weightless = WEIGHTLESS.get(node.op_type)
    if weightless is not None:
        explanation = weightless(int8_model, node, data, sample, float_model, element=element, threads=threads,
                                 notes=renamed)
    else:
        explanation = _explain_weighted(int8_model, node, data, sample, float_model, element, threads, renamed)
    if not explanation.runtime_kernel.startswith(INTEGER_KERNELS) and node.op_type not in CODE_KERNELS:
        note = unfused_int8_note(graph, node)
        explanation.notes += [note] if note else []
    return explanation


def _explain_weighted(int8_model: LoadedModel, node: Node, data: Dataset, sample: int,
                      float_model: LoadedModel | None, element: tuple[int, ...] | None, threads: int,
                      renamed: list[str]) -> NodeExplanation:
    """A Conv's, Gemm's or MatMul's explanation."""
    graph = int8_model.graph
    layer = _layer(int8_model, node)
    on_sample = sample_feed(int8_model, data, sample)
    exposed = [layer.x.tensor, layer.y_tensor] + ([layer.w.tensor] if layer.w.tensor not in graph.initializers else [])
    runs, kernels = run_on_sample(int8_model, exposed, on_sample, threads, probe=on_sample.size > 1)
    values = runs[0]
    x_q, w_q, runtime = sample_part(node, layer.x.tensor, layer.w.tensor, layer.y_tensor, runs, on_sample)
    if w_q is None:
        w_q = int8_model.weight(layer.w.tensor)
    kernel = kernel_of(kernels, graph, node)
    scaling, fused_bias_note = gemm_scaling(node, layer.x, layer.w, layer.bias_scale, kernel)
    integer_ref, ort_ref = (_reference(node, layer, scaling, x_q, w_q, requant) for requant in ("integer", "ort"))
    notes = renamed + on_sample.notes(values[layer.y_tensor].shape) + _notes(node, layer, kernel, float_model)
    notes += [fused_bias_note] if fused_bias_note else []
    if layer.w.tensor not in graph.initializers:
        notes.append("The second input is an activation, quantized at run time like the first: 'w' below is its "
                     "8-bit value on this sample, not a stored weight.")
    y_tensor = layer.y.tensor if layer.y is not None else None
    float_tensor, float_output = float_value(float_model, graph, node, y_tensor, on_sample, threads, notes)
    index = element if element is not None else pick_element(runtime, layer.y, float_output)
    return NodeExplanation(
        node=node.name, op_type=node.op_type, kind=_kind(node, w_q), attributes=dict(node.attributes),
        x=layer.x, w=layer.w, bias_q=layer.bias_q, y=layer.y,
        multipliers=channel_multipliers(layer.x.scale, layer.w.scale, layer.y.scale if layer.y else 1.0,
                                        scaling.alpha),
        runtime_kernel=kernel_name(kernel), sample=sample, x_q=x_q,
        reference=integer_ref, runtime=runtime,
        checks=_checks(integer_ref, ort_ref, runtime, kernel, layer),
        example=worked_element(node, layer.x, layer.w, layer.bias_q, layer.y, x_q, w_q, index, runtime,
                               float_output, relu=layer.activation is not None, alpha=scaling.alpha,
                               bias_factor=scaling.bias_factor),
        float_tensor=float_tensor, float_output=float_output, sqnr_db=_sqnr(layer, runtime, float_output), notes=notes,
        scaling=scaling,
    )


def unexplainable(node: Node) -> str:
    """Why Explain cannot work ``node`` through, or "" when it can."""
    if node.op_type in EXPLAINABLE_OPS:
        return ""
    return (f"{node.name} is {node.op_type}, not {'/'.join(EXPLAINABLE_OPS)}: Explain works through the 8-bit "
            "arithmetic of those layers only.")


def _find_node(graph: Graph, name: str, float_graph: Graph | None) -> tuple[Node, list[str]]:
    """The node, the node pre-processing fused it into (``/mm1/MatMul`` -> ``/mm1/MatMul/MatMulAddFusion``),
    or, given the float graph, the node computing a float node quantization removed."""
    if name in graph.by_name:
        return graph.by_name[name], []
    fused = graph.fused_from(name)
    if fused:
        return fused[0], [f"Pre-processing fused {name} into {fused[0].name} (a {fused[0].op_type}); explaining that."]
    if float_graph is None or name not in float_graph.by_name:
        return graph.node_by_name(name), []
    writer = computing_node(graph, float_graph, name)
    if writer is None:
        raise Q8Error(f"{name} is not in the int8 model: pre-processing removed it, and no node computes it.")
    return graph.by_name[writer], [f"{name} is not in the int8 model: {writer} computes it; explaining that."]


def computing_node(int8_graph: Graph, float_graph: Graph, name: str) -> str | None:
    """The int8 model's node that computes float node ``name``: itself (or the node pre-processing fused it
    into), or for a node quantization removed the node now writing its result (:func:`.model.node_now_writing`:
    the Conv a BatchNormalization folded into, the Conv or Add whose output range does a Relu's clamp).
    """
    if name in int8_graph.by_name or int8_graph.fused_from(name):
        return name
    writer = node_now_writing(int8_graph, float_graph, name)
    return writer.name if writer is not None else None


def _layer(model: LoadedModel, node: Node) -> _Layer:
    graph = model.graph
    x_dq, w_dq = (dequantizer_of(graph, node.inputs[i]) for i in (0, 1))
    if x_dq is None or w_dq is None:
        if node.name in recorded_kept_in_float(model.proto):
            raise Q8Error(f"Node {node.name} was kept in float when this model was quantized: it has no integer "
                          "arithmetic to explain.")
        raise Q8Error(f"Node {node.name} runs in float: its inputs are not quantized (no DequantizeLinear feeds it).")
    bias_q = bias_scale = None
    if len(node.inputs) > 2 and node.inputs[2]:
        bias_dq = dequantizer_of(graph, node.inputs[2])
        if bias_dq is None:
            raise Q8Error(f"Node {node.name} has a float bias: the int8 model does not run it as an integer kernel.")
        bias_q = model.weight(bias_dq.inputs[0]).astype(np.int64)
        bias_scale = qdq_params(model, bias_dq).scale
    after, activation = _next_quantize(graph, node)
    y = qdq_params(model, after) if after is not None else None
    y_tensor = after.outputs[0] if after is not None else node.outputs[0]
    return _Layer(qdq_params(model, x_dq), qdq_params(model, w_dq), bias_q, bias_scale, y, y_tensor, activation)


def _next_quantize(graph: Graph, node: Node) -> tuple[Node | None, Node | None]:
    """The QuantizeLinear that requantizes the node's output, and a Relu/Clip kept before it."""
    consumers = [graph.nodes[i] for i in graph.consumers.get(node.outputs[0], [])]
    if len(consumers) == 1 and consumers[0].op_type in ABSORBED_ACTIVATIONS:
        activation = consumers[0]
        after = [graph.nodes[i] for i in graph.consumers.get(activation.outputs[0], [])]
        quantize = next((n for n in after if n.op_type == "QuantizeLinear"), None)
        return (quantize, activation) if quantize is not None else (None, None)
    return next((n for n in consumers if n.op_type == "QuantizeLinear"), None), None


def _reference(node: Node, layer: _Layer, scaling: GemmScaling, x_q: np.ndarray, w_q: np.ndarray, requant: str
               ) -> np.ndarray:
    """The node's output from integers alone; float32 accumulators times alpha S_x S_w when not requantized."""
    x, w, y = layer.x, layer.w, layer.y
    relu = layer.activation is not None
    if y is None:
        return _float_output(node, layer, scaling, x_q, w_q)
    common = {"y_qtype": np.dtype(y.dtype), "relu": relu, "requant": requant}
    if node.op_type == "Conv":
        return qlinear_conv(x_q, x.scale, int(x.zero_point), w_q, w.scale, w.zero_point, layer.bias_q, y.scale,
                            int(y.zero_point), **conv_geometry(node, x_q.shape, w_q.shape), **common)
    if node.op_type == "Gemm":
        return qlinear_gemm(x_q, x.scale, int(x.zero_point), w_q, w.scale, w.zero_point, _bias_steps(layer, scaling),
                            y.scale, int(y.zero_point), trans_a=bool(node.attributes.get("transA", 0)),
                            trans_b=bool(node.attributes.get("transB", 0)), alpha=scaling.alpha, **common)
    return qlinear_matmul(x_q, x.scale, int(x.zero_point), w_q, w.scale, w.zero_point, y.scale, int(y.zero_point),
                          **common)


def _bias_steps(layer: _Layer, scaling: GemmScaling) -> np.ndarray | None:
    """The int32 bias in accumulator steps: b_q times the Gemm's bias factor."""
    return None if layer.bias_q is None else layer.bias_q * scaling.bias_factor


def _float_output(node: Node, layer: _Layer, scaling: GemmScaling, x_q: np.ndarray, w_q: np.ndarray) -> np.ndarray:
    """A node that is not requantized: its float32 output is ``alpha S_x S_w acc`` (plus the bias)."""
    acc = accumulators(node, layer.x, layer.w, _bias_steps(layer, scaling), x_q, w_q)
    scale = np.float32(scaling.alpha) * np.float32(layer.x.scale) * layer.w.scale.astype(np.float32)
    axis = 1 if node.op_type == "Conv" else -1
    shape = [1] * acc.ndim
    shape[axis] = scale.size
    return acc.astype(np.float32) * scale.reshape(shape if scale.size > 1 else ())


def _kind(node: Node, w_q: np.ndarray) -> str:
    if node.op_type != "Conv":
        return node.op_type
    group = int(node.attributes.get("group", 1))
    if group == 1:
        return "Conv"
    return "depthwise Conv" if w_q.shape[1] == 1 else f"grouped Conv ({group} groups)"


def _checks(integer_ref: np.ndarray, ort_ref: np.ndarray, runtime: np.ndarray, kernel: RuntimeNode | None,
            layer: _Layer) -> list[Check]:
    """The integer path against ONNX Runtime, then (for requantized outputs) ONNX Runtime's own formula."""
    if layer.y is None:
        return [_check("reference S_x * S_w * acc", integer_ref, runtime, kernel, layer)]
    return [_check("integer reference (M0, n)", integer_ref, runtime, kernel, layer),
            _check("ONNX Runtime's float32 requantization", ort_ref, runtime, kernel, layer)]


def _check(
    title: str, reference: np.ndarray, runtime: np.ndarray, kernel: RuntimeNode | None, layer: _Layer
) -> Check:
    if reference.shape != runtime.shape:
        raise Q8Error(f"The reference output has shape {reference.shape} but ONNX Runtime's has {runtime.shape}.")
    if layer.y is None:  # float outputs: compare within float32 rounding
        diff = np.abs(reference.astype(np.float64) - runtime.astype(np.float64))
        tolerance = 1e-5 * max(1.0, float(np.abs(runtime).max(initial=0.0)))
        differing = int((diff > tolerance).sum())
        cause = "" if not differing else "float32 sums in a different order than the exact integer sum"
        return Check(title, runtime.size, differing, float(diff.max(initial=0.0)), cause, tolerance)
    diff = np.abs(reference.astype(np.int64) - runtime.astype(np.int64))
    differing = int((diff > 0).sum())
    return Check(title, runtime.size, differing, float(diff.max(initial=0)), _cause(title, differing, diff, kernel))


def _cause(title: str, differing: int, diff: np.ndarray, kernel: RuntimeNode | None) -> str:
    if not differing:
        return ""
    if int(diff.max()) > 1:
        return "unexpected: the reference and ONNX Runtime disagree by more than one step"
    if kernel is not None and kernel.op_type.startswith(("QLinear", "QGemm")):
        if title.startswith("integer"):
            return (f"{kernel.op_type} requantizes in float32, rint(float32(acc) * float32(M)); the integer path "
                    "applies M exactly as M0 * 2^-n. They round differently where acc * M lies within float32 "
                    "rounding of a half-integer.")
        return "unexpected: this formula should match ONNX Runtime's integer kernel exactly"
    op = kernel.op_type if kernel is not None else "a float kernel"
    return (f"ONNX Runtime ran this node as {op} in float32 between DequantizeLinear and QuantizeLinear, "
            "not as an integer kernel; float sums round differently from the exact integer sum.")


def _notes(node: Node, layer: _Layer, kernel: RuntimeNode | None, float_model: LoadedModel | None) -> list[str]:
    notes = []
    if kernel is None or not kernel.op_type.startswith(INTEGER_KERNELS):
        name = kernel.op_type if kernel else "an unknown kernel"
        notes.append(f"ONNX Runtime runs this node as {name}, a float kernel between DequantizeLinear and "
                     "QuantizeLinear: the integer arithmetic below is what it simulates, not what it executes.")
    if layer.y is None:
        notes.append("The output is not re-quantized: it stays float32 (S_x * S_w * acc), read by float operators.")
    if layer.activation is not None:
        notes.append(f"{layer.activation.op_type} {layer.activation.name} stays in the graph; with Z_y at the bottom "
                     "of the output range it only clamps at Z_y.")
    if float_model is not None:
        removed = removed_activation_note(float_model, node.outputs[0])
        producer = float_model.graph.producer.get(node.outputs[0])
        original = float_model.graph.nodes[producer] if producer is not None else None
        if removed is not None:
            notes.append(removed)
        elif original is not None and original.op_type == "BatchNormalization":
            notes.append(f"{original.name} is folded into this node's weights and bias.")
    return notes


def _sqnr(layer: _Layer, runtime: np.ndarray, float_output: np.ndarray | None) -> float | None:
    """SQNR (dB) of the runtime's output, dequantized when it is 8-bit, against the float model's."""
    if layer.y is not None:
        return requantized_sqnr(layer.y, runtime, float_output)
    if float_output is None or float_output.shape != runtime.shape:
        return None
    return measure(float_output, runtime).sqnr_db
