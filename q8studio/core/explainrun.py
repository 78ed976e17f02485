"""Running an int8 model on the sample a layer is explained on, and comparing the layer's output with ours.

Shared by every kind of explained layer (:mod:`.explain` for Conv, Gemm and MatMul, :mod:`.explainadd` for
Add, :mod:`.explainpool` for GlobalAveragePool, :mod:`.explainmaxpool` for MaxPool): the run that exposes the
layer's 8-bit tensors, the kernel ONNX Runtime chose for the layer and how it applies a Gemm's alpha and beta,
a one-input layer's input and output quantization, the float model's value of the same tensor, the QuantizeLinear
after a layer, and the record of one element-by-element comparison.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import numpy as np

from .errors import Q8Error
from .data import Dataset
from .explainsample import SampleFeed, sample_feed
from .metrics import measure
from .model import Graph, LoadedModel, Node
from .poolwindows import PoolGeometry, window_place
from .runtimegraph import RuntimeNode, open_session, source_node
from .session import BatchRunner
from .weights import QuantParams, qdq_params

ABSORBED_ACTIVATIONS = ("Relu", "Clip")
"""Activations the quantizer removes after a layer: the clamp to its output range does their work."""

WHOLE_TOLERANCE = 1e-6
"""Relative: a bias scale written as beta * S_x * S_w in float32 is that multiple only up to float32 rounding."""


@dataclass(frozen=True)
class GemmScaling:
    """A Gemm's alpha and beta as the kernel that ran applies them (all 1 for Conv and MatMul).

    alpha scales the whole accumulator, so it is part of M. The bias enters the int32 accumulator
    ``bias_factor`` times: beta S_b / (alpha S_x S_w) steps per step of b_q where ONNX Runtime runs
    the QDQ graph in float, once where its fused QGemm adds b_q as it stands.
    """

    alpha: float = 1.0
    beta: float = 1.0
    bias_scale: float | None = None  # S_b / (S_x S_w) when the bias's scale is not S_x S_w
    bias_factor: int = 1

    def summary(self) -> str:
        """One line for a Gemm whose alpha, beta or bias factor is not 1, "" for any other layer."""
        if (self.alpha, self.beta, self.bias_factor) == (1.0, 1.0, 1):
            return ""
        parts = [f"Gemm alpha = {self.alpha:g}, beta = {self.beta:g}"]
        if self.alpha != 1.0:
            parts.append("M = alpha·S_x·S_w/S_y")
        if self.bias_factor != 1:
            parts.append(f"the int32 accumulator adds {self.bias_factor}·b_q (beta·S_b/(alpha·S_x·S_w) = "
                         f"{self.bias_factor})")
        return f"{parts[0]}: {'; '.join(parts[1:])}" if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Check:
    """One output compared element by element with ONNX Runtime's."""

    reference: str
    total: int
    differing: int
    max_diff: float
    cause: str = ""
    tolerance: float = 0.0  # 0 for integer outputs; float32 outputs match within rounding

    @property
    def bit_exact(self) -> bool:
        return self.exact and self.tolerance == 0.0

    @property
    def exact(self) -> bool:
        return self.differing == 0

    @property
    def fraction(self) -> float:
        return self.differing / self.total if self.total else 0.0

    def summary(self) -> str:
        if self.exact:
            agreement = "bit-exact with" if self.tolerance == 0.0 else f"within {self.tolerance:.1g} of"
            return f"{self.reference}: {agreement} ONNX Runtime ({self.total} elements)"
        return (f"{self.reference}: {self.differing} of {self.total} elements ({100 * self.fraction:.3f}%) differ "
                f"from ONNX Runtime, by at most {self.max_diff:g}")

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "exact": self.exact, "bit_exact": self.bit_exact, "fraction": self.fraction}


@dataclass(kw_only=True)
class ExplainedLayer:
    """What every kind of explanation records besides its layer's own numbers: the node, the kernel ONNX Runtime
    ran for it, the sample, the runtime's output and the checks against it, and the float model's comparison."""

    node: str
    op_type: str
    kind: str  # "depthwise Conv", "Add": the title's name for the layer
    runtime_kernel: str
    sample: int
    runtime: np.ndarray
    checks: list[Check]
    float_tensor: str | None = None
    float_output: np.ndarray | None = None
    sqnr_db: float | None = None
    notes: list[str] = field(default_factory=list)

    def run_dict(self) -> dict[str, object]:
        """The JSON of these common parts; each kind adds its own numbers and worked element."""
        return {"node": self.node, "op_type": self.op_type, "kind": self.kind, "sample": self.sample,
                "runtime_kernel": self.runtime_kernel, "checks": [c.to_dict() for c in self.checks],
                "float_tensor": self.float_tensor, "sqnr_db": self.sqnr_db, "notes": self.notes}


@dataclass(frozen=True, kw_only=True)
class WindowElement:
    """What a MaxPool's and an AveragePool's worked elements share: the window of one output element and the
    results of both references, ONNX Runtime's and the float model's."""

    index: tuple[int, ...]
    x_q: np.ndarray  # the window's 8-bit values, [kernel...]; padded positions hold Z_x (shown greyed)
    inside: np.ndarray  # which window positions lie in the input, not in the padding
    positions: tuple[tuple[int, ...], ...]  # per spatial axis, the input positions the window covers
    kernel_y_q: int
    definition_y_q: int
    y_real: float  # S_y (y_q - Z_y) of the kernel's y_q
    runtime_y_q: int
    float_value: float | None

    def window_line(self, padding: str) -> str:
        """The first step: where the window lies, and how many of its positions are padding (``padding`` says
        what becomes of them)."""
        padded = int(self.inside.size - self.inside.sum())
        return (f"window of channel {self.index[1]}: {window_place(self.positions)}"
                + (f" ({padded} in the padding{padding})" if padded else ""))

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "x_q": self.x_q.tolist(), "inside": self.inside.tolist()}


@dataclass(kw_only=True)
class WindowPoolExplanation(ExplainedLayer):
    """What a MaxPool's and an AveragePool's explanations share: the two tensors' quantization, the windows, the
    8-bit input on the sample; each kind adds its worked element (``example``, with ``steps`` and ``to_dict``)."""

    x: QuantParams
    y: QuantParams
    geometry: PoolGeometry
    x_q: np.ndarray
    example: Any

    def steps(self) -> list[str]:
        return self.example.steps(self.x, self.y)

    def to_dict(self) -> dict[str, object]:
        return {**self.run_dict(), "x": self.x.to_dict(), "y": self.y.to_dict(), "geometry": self.geometry.__dict__,
                "example": self.example.to_dict(), "steps": self.steps()}


@dataclass(frozen=True, kw_only=True)
class BinaryElement:
    """What an Add's and a Mul's worked elements share: the element's two 8-bit inputs, their real values, and
    the results of both references, ONNX Runtime's and the float model's."""

    index: tuple[int, ...]
    a_q: int
    b_q: int
    real_a: float  # S_a (a_q - Z_a)
    real_b: float
    kernel_y_q: int
    definition_y_q: int
    y_real: float  # S_y (y_q - Z_y) of the kernel's y_q
    runtime_y_q: int
    float_value: float | None

    def input_lines(self, a: QuantParams, b: QuantParams) -> list[str]:
        """The first steps: both inputs dequantized."""
        return [f"{name} = S_{name}·({name}_q − Z_{name}) = {float(params.scale):.6g}·({code} − "
                f"{int(params.zero_point)}) = {real:.6g}"
                for name, params, code, real in (("a", a, self.a_q, self.real_a), ("b", b, self.b_q, self.real_b))]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def binary_inputs(a: QuantParams, b: QuantParams, a_q: np.ndarray, b_q: np.ndarray, index: tuple[int, ...],
                  shape: tuple[int, ...]) -> dict[str, Any]:
    """A :class:`BinaryElement`'s inputs at ``index`` of an output of ``shape`` (an input may broadcast)."""
    a_at, b_at = (int(np.broadcast_to(v, shape)[index]) for v in (a_q, b_q))
    return {"index": index, "a_q": a_at, "b_q": b_at, "real_a": float(np.float32(a.scale)) * (a_at - int(a.zero_point)),
            "real_b": float(np.float32(b.scale)) * (b_at - int(b.zero_point))}


@dataclass(kw_only=True)
class BinaryExplanation(ExplainedLayer):
    """What an Add's and a Mul's explanations share: the three tensors' quantization, a Relu kept before the
    QuantizeLinear, the 8-bit inputs on the sample; each kind adds what its kernel computes once per call and its
    worked element (``example``, with ``steps``)."""

    a: QuantParams
    b: QuantParams
    y: QuantParams
    relu: bool  # a Relu kept between the layer and its QuantizeLinear
    a_q: np.ndarray
    b_q: np.ndarray
    example: Any

    def steps(self) -> list[str]:
        raise NotImplementedError

    def binary_dict(self) -> dict[str, object]:
        """The JSON of these parts; each kind adds its kernel's constants."""
        return {**self.run_dict(), "a": self.a.to_dict(), "b": self.b.to_dict(), "y": self.y.to_dict(),
                "relu": self.relu, "example": self.example.to_dict(), "steps": self.steps()}


def kernel_name(kernel: RuntimeNode | None) -> str:
    """The op type of the kernel that ran, as an explanation's title shows it."""
    return kernel.op_type if kernel else "(not found)"


def run_on_sample(model: LoadedModel, names: list[str], sample: SampleFeed, threads: int, *, probe: bool = False
                  ) -> tuple[list[dict[str, np.ndarray]], list[RuntimeNode]]:
    """Run ``model`` with ``names`` exposed and return their values on the whole feed, and with ``probe`` also on
    the feed with the sample's inputs changed (one session for both); also return the kernels ONNX Runtime ran."""
    names = list(dict.fromkeys(names))
    with tempfile.TemporaryDirectory(prefix="q8studio-explain-") as tmp:
        session, kernels = open_session(model.proto, Path(tmp), outputs=names, threads=threads)
        runner = BatchRunner(model, session)
        runs = [dict(zip(names, runner.run(names, sample.feed)))]
        if probe:
            try:
                runs.append(dict(zip(names, runner.run(names, sample.changed()))))
            except Q8Error as error:
                raise Q8Error(f"{error} (a run with sample {sample.first + sample.index}'s inputs changed, made "
                              "to find its part of the batch; use a model with a batch of 1 or an unfixed batch)"
                              ) from None
    return runs, kernels


def kernel_of(kernels: list[RuntimeNode], graph: Graph, node: Node) -> RuntimeNode | None:
    """The kernel ONNX Runtime ran for ``node`` (a fused one included), None when no kernel stands for it."""
    return next((k for k in kernels if source_node(k, graph, kernels) == node.name), None)


def sole_reader(graph: Graph, tensor: str) -> Node | None:
    """The single node reading ``tensor``, None when none or several do: the QuantizeLinear after a layer."""
    readers = graph.consumers.get(tensor, [])
    return graph.nodes[readers[0]] if len(readers) == 1 else None


def checked_against_runtime(title: str, reference: np.ndarray, runtime: np.ndarray,
                            cause: Callable[[np.ndarray], str]) -> Check:
    """How ``reference`` compares with ONNX Runtime's 8-bit output element by element; ``cause`` says why, given
    the absolute differences, when any differ."""
    diff = np.abs(reference - runtime.astype(np.int64))
    differing = int(np.count_nonzero(diff))
    return Check(title, runtime.size, differing, float(diff.max(initial=0)), cause(diff) if differing else "")


def ran_as(kernel: RuntimeNode | None, fused_kernel: str) -> bool:
    """Whether ONNX Runtime ran the layer as ``fused_kernel`` (its QLinear kernel) rather than in float."""
    return kernel is not None and kernel.op_type == fused_kernel


UNEXPECTED_GAP = "unexpected: the reference and ONNX Runtime disagree by more than one step"


@dataclass(frozen=True)
class CheckCauses:
    """Why a layer's two checks (:func:`kernel_and_definition_checks`) differ from ONNX Runtime where they do, in
    the layer's own words; a difference beyond one step is unexpected whatever ran."""

    kernel_check: str  # the titles of the two checks
    definition_check: str
    rounding: str  # fused: how the kernel rounds a near-tie otherwise than the definition
    kernel: str  # fused, yet the kernel's reference differs: which kernel it was built to match
    unfused: str  # not fused: why the kernel's reference differs
    unfused_definition: str = "unexpected: the unfused graph computes exactly this"

    def why(self, title: str, diff: np.ndarray, fused: bool) -> str:
        """The cause for check ``title`` whose absolute differences are ``diff``."""
        if int(diff.max()) > 1:
            return UNEXPECTED_GAP
        if fused:
            return self.rounding if title == self.definition_check else self.kernel
        return self.unfused if title == self.kernel_check else self.unfused_definition


def kernel_and_definition_checks(runtime: np.ndarray, fused: bool, cause: Callable[[str, np.ndarray], str],
                                 kernel: tuple[str, np.ndarray], definition: tuple[str, np.ndarray]) -> list[Check]:
    """The fused kernel's reference and the QDQ graph's definition (each a title and its output) against ONNX
    Runtime, ``cause(title, diffs)`` saying why where one differs; the check the kernel that ran should meet
    comes first: the kernel's when ONNX Runtime fused the layer, else the definition's."""
    checks = [checked_against_runtime(title, reference, runtime, lambda diff, t=title: cause(t, diff))
              for title, reference in (kernel, definition)]
    return checks if fused else checks[::-1]


def unfused_note(layer: str, kernel: RuntimeNode | None, fused_kernel: str) -> str:
    """Why the definition is what ran: ONNX Runtime left ``layer`` ("this Add") in float32 between its
    DequantizeLinear and QuantizeLinear instead of fusing it into ``fused_kernel``."""
    name = kernel.op_type if kernel else "an unknown kernel"
    return (f"ONNX Runtime runs {layer} as {name} in float32 between DequantizeLinear and QuantizeLinear, not as "
            f"{fused_kernel}: the definition is what it computes.")


def kept_relu_notes(node: Node, relu: bool, float_model: LoadedModel | None) -> list[str]:
    """For an Add or a Mul: a Relu left before its QuantizeLinear, or the float model's Relu the quantizer removed
    after it (whose clamp the output range does)."""
    if relu:
        return [f"A Relu stays between the {node.op_type} and its QuantizeLinear, so ONNX Runtime cannot fuse them."]
    removed = removed_activation_note(float_model, node.outputs[0]) if float_model is not None else None
    return [removed] if removed is not None else []


def dequantizer_of(graph: Graph, tensor: str) -> Node | None:
    """The DequantizeLinear writing ``tensor``, None when another node (or none) does: an int8 layer's inputs."""
    index = graph.producer.get(tensor)
    node = graph.nodes[index] if index is not None else None
    return node if node is not None and node.op_type == "DequantizeLinear" else None


def unary_quantization(model: LoadedModel, node: Node, computes: str, kernel: str) -> tuple[QuantParams, QuantParams]:
    """The quantization of a one-input layer's input and output (a pooling, an activation); a Q8Error when either
    stays float or is per channel. ``computes`` says what the layer does in float ("averages"), ``kernel`` names
    the 8-bit kernel."""
    graph = model.graph
    before = dequantizer_of(graph, node.inputs[0])
    if before is None:
        raise Q8Error(f"Node {node.name} runs in float: no DequantizeLinear feeds it, so its input is not 8-bit.")
    after = sole_reader(graph, node.outputs[0])
    if after is None or after.op_type != "QuantizeLinear":
        raise Q8Error(f"Node {node.name}'s output is not re-quantized: ONNX Runtime {computes} the dequantized input "
                      "in float32, so there is no 8-bit arithmetic to explain.")
    x, y = qdq_params(model, before), qdq_params(model, after)
    if x.per_channel or y.per_channel:
        raise Q8Error(f"Node {node.name} has per-channel activation scales; {kernel} takes one scale per tensor.")
    return x, y


@dataclass(frozen=True)
class UnaryRun:
    """A one-input layer's quantization, its 8-bit input and output on the sample, and the kernel ONNX Runtime ran."""

    x: QuantParams
    y: QuantParams
    sample: SampleFeed
    output_shape: tuple[int, ...]  # the whole run's, which holds several samples when the batch is fixed
    x_q: np.ndarray
    runtime: np.ndarray
    kernel: RuntimeNode | None


def run_unary(model: LoadedModel, node: Node, data: Dataset, sample: int, threads: int, computes: str,
              kernel: str) -> UnaryRun:
    """Run ``model`` on sample ``sample`` with one-input ``node``'s 8-bit input and output exposed (the
    arguments after ``threads`` are :func:`unary_quantization`'s)."""
    x, y = unary_quantization(model, node, computes, kernel)
    on_sample = sample_feed(model, data, sample)
    runs, kernels = run_on_sample(model, [x.tensor, y.tensor], on_sample, threads)
    shape = runs[0][y.tensor].shape
    x_q, runtime = (on_sample.layer_rows(runs[0][t], shape, node.op_type) for t in (x.tensor, y.tensor))
    return UnaryRun(x, y, on_sample, shape, x_q, runtime, kernel_of(kernels, model.graph, node))


def binary_quantization(model: LoadedModel, node: Node, computes: str, kernel: str
                        ) -> tuple[QuantParams, QuantParams, QuantParams, bool]:
    """The quantization of a two-input layer's inputs and output (an Add, a Mul), and whether a Relu sits before
    its QuantizeLinear; a Q8Error when any stays float or is per channel. ``computes`` says what the layer does
    in float ("adds"), ``kernel`` names the 8-bit kernel."""
    graph = model.graph
    inputs = [dequantizer_of(graph, name) for name in node.inputs[:2]]
    if len(node.inputs) != 2 or any(dq is None for dq in inputs):
        raise Q8Error(f"Node {node.name} runs in float: its inputs are not both quantized (a DequantizeLinear feeds "
                      f"each input of an int8 {node.op_type}).")
    after, relu = sole_reader(graph, node.outputs[0]), False
    if after is not None and after.op_type == "Relu":
        after, relu = sole_reader(graph, after.outputs[0]), True
    if after is None or after.op_type != "QuantizeLinear":
        raise Q8Error(f"Node {node.name}'s output is not re-quantized: ONNX Runtime {computes} the dequantized inputs "
                      "in float32, so there is no 8-bit arithmetic to explain.")
    a, b = (qdq_params(model, dq) for dq in inputs)  # type: ignore[arg-type]
    y = qdq_params(model, after)
    if a.per_channel or b.per_channel or y.per_channel:
        raise Q8Error(f"Node {node.name} has per-channel activation scales; {kernel} takes one scale per tensor.")
    return a, b, y, relu


@dataclass(frozen=True)
class BinaryRun:
    """A two-input layer's quantization, its 8-bit inputs and output on the sample, and the kernel that ran."""

    a: QuantParams
    b: QuantParams
    y: QuantParams
    relu: bool  # a Relu kept between the layer and its QuantizeLinear
    sample: SampleFeed
    output_shape: tuple[int, ...]  # the whole run's, which holds several samples when the batch is fixed
    a_q: np.ndarray
    b_q: np.ndarray
    runtime: np.ndarray
    kernel: RuntimeNode | None


def run_binary(model: LoadedModel, node: Node, data: Dataset, sample: int, threads: int, computes: str,
               kernel: str) -> BinaryRun:
    """Run ``model`` on sample ``sample`` with two-input ``node``'s 8-bit inputs and output exposed (the
    arguments after ``threads`` are :func:`binary_quantization`'s)."""
    a, b, y, relu = binary_quantization(model, node, computes, kernel)
    on_sample = sample_feed(model, data, sample)
    runs, kernels = run_on_sample(model, [a.tensor, b.tensor, y.tensor], on_sample, threads)
    shape = runs[0][y.tensor].shape
    a_q, b_q, runtime = (on_sample.layer_rows(runs[0][t], shape, node.op_type) for t in (a.tensor, b.tensor, y.tensor))
    return BinaryRun(a, b, y, relu, on_sample, shape, a_q, b_q, runtime, kernel_of(kernels, model.graph, node))


def float_value(float_model: LoadedModel | None, int8_graph: Graph, node: Node, y_tensor: str | None,
                sample: SampleFeed, threads: int, notes: list[str]) -> tuple[str | None, np.ndarray | None]:
    """The float model's tensor standing for ``node``'s output, and its value on the sample (its rows of a batch);
    (None, None) without a float model, and with one that has no such tensor, said in ``notes``.

    It has the node's output name (after BatchNorm folding, the BatchNorm's output; with a ReLU removed, the
    ReLU's), or, when the output is requantized (``y_tensor``, the QuantizeLinear's output), the name the
    DequantizeLinear after it restores (a model output).
    """
    if float_model is None:
        return None, None
    candidates = [node.outputs[0]]
    if y_tensor is not None:
        candidates += [int8_graph.nodes[i].outputs[0] for i in int8_graph.consumers.get(y_tensor, [])]
    name = next((c for c in candidates if c in float_model.graph.tensors), None)
    if name is None:
        notes.append("The float model has no tensor of the same name to compare with.")
        return None, None
    runs, _ = run_on_sample(float_model, [name], sample, threads)
    return name, sample.rows(runs[0][name])


def requantized_sqnr(y: QuantParams, runtime: np.ndarray, float_output: np.ndarray | None) -> float | None:
    """SQNR (dB) of the runtime's 8-bit output, dequantized, against the float model's."""
    if float_output is None or float_output.shape != runtime.shape:
        return None
    centered = runtime.astype(np.float64) - y.zero_point.astype(np.float64)
    return measure(float_output, y.scale.astype(np.float64) * centered).sqnr_db


def removed_activation_note(float_model: LoadedModel, tensor: str) -> str | None:
    """The note for a Relu or Clip of the float model the quantizer removed, whose output name ``tensor`` the
    int8 layer now writes; None when the float model computes ``tensor`` otherwise."""
    producer = float_model.graph.producer.get(tensor)
    original = float_model.graph.nodes[producer] if producer is not None else None
    if original is None or original.op_type not in ABSORBED_ACTIVATIONS:
        return None
    return (f"{original.op_type} {original.name} of the float model was removed by the quantizer: the clamp to the "
            "output range [Z_y, qmax] does its work.")


def gemm_scaling(node: Node, x: QuantParams, w: QuantParams, bias_scale: np.ndarray | None,
                 kernel: RuntimeNode | None) -> tuple[GemmScaling, str]:
    """How a Gemm's alpha and beta enter the integer arithmetic of the kernel that ran, and a note when the
    fused QGemm computes another bias than the QDQ graph; a Q8Error with the reason when no integer
    arithmetic reproduces it.

    The QDQ graph adds ``beta S_b b_q`` to ``alpha S_x S_w acc``: in accumulator steps of alpha S_x S_w
    the bias is worth ``beta S_b / (alpha S_x S_w)`` steps per step of b_q, which an int32 accumulator can
    add only when it is a whole number (onnxruntime's quantizer writes S_b = beta S_x S_w and resets
    beta to 1, so alpha = 0.5 makes it 2 beta). QGemm adds b_q as it stands, whatever S_b says.
    """
    if node.op_type != "Gemm":
        return GemmScaling(), ""
    alpha, beta = (float(node.attributes.get(name, 1.0)) for name in ("alpha", "beta"))  # type: ignore[arg-type]
    if not (np.isfinite(alpha) and alpha > 0):
        raise Q8Error(f"{node.name} is a Gemm with alpha = {alpha:g}: Explain needs alpha > 0, for "
                      "M = alpha·S_x·S_w/S_y to be a positive multiplier M0·2^-n.")
    if bias_scale is None:  # no bias
        return GemmScaling(alpha, beta), ""
    product = np.float64(x.scale) * w.scale.astype(np.float64).reshape(-1)
    units = bias_scale.astype(np.float64).reshape(-1) / product  # S_b / (S_x S_w), per channel
    shown_units = None if _whole(units, 1.0) else float(units[0])
    steps = beta * units / alpha
    shown = (f"{steps.min():.6g}" if np.ptp(steps) <= WHOLE_TOLERANCE * np.abs(steps).max()
             else f"{steps.min():.6g} to {steps.max():.6g} by channel")
    if kernel is not None and kernel.op_type == "QGemm":
        note = "" if _whole(steps, 1.0) else (
            "ONNX Runtime's QGemm adds b_q to the accumulator as it stands, in steps of alpha·S_x·S_w, but this "
            f"model's bias is worth beta·S_b/(alpha·S_x·S_w) = {shown} such steps per step of b_q: the fused kernel "
            "computes another output than the QDQ graph defines (the reference follows the kernel).")
        return GemmScaling(alpha, beta, shown_units, 1), note
    factor = float(np.rint(steps[0]))
    if not _whole(steps, factor) or abs(factor) >= 2**31:
        raise Q8Error(f"{node.name} cannot be worked through in integers: with alpha = {alpha:g} and beta = {beta:g} "
                      f"its bias is worth beta·S_b/(alpha·S_x·S_w) = {shown} accumulator steps per step of b_q, "
                      "not one whole number the int32 accumulator can add.")
    return GemmScaling(alpha, beta, shown_units, int(factor)), ""


def _whole(values: np.ndarray, target: float) -> bool:
    """Whether every value is ``target`` up to float32 rounding of the scales they come from."""
    return bool(np.all(np.abs(values - target) <= WHOLE_TOLERANCE * max(1.0, abs(target))))

