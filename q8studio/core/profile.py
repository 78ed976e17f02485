"""Where int8 really ran and what it cost, layer by layer, from ONNX Runtime's own profiler.

Both models run the same sample under the profiler (:mod:`.kernelprofile`). Source nodes that
share a kernel in either model form one layer row, so both columns always time the same work:
Conv + BatchNorm + ReLU fused in float; a residual Add summed into a float convolution but run
as its own QLinearAdd in int8. Quantize/Dequantize and layout kernels are glue, charged to the
layers that need them: a layer pays in int8 only if it beats float with its glue included.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass, field, replace

from .data import Dataset
from .errors import Q8Error
from .evaluate import measure_latency, require_same_inputs
from .floatpath import is_written_out_dequantize, recorded_kept_in_float, written_out_result
from .kernelprofile import KernelTime, ModelProfile, profile_model
from .macs import MAC_OPS, count_macs
from .model import Graph, LoadedModel
from .progress import NO_PROGRESS, Progress
from .runcounts import LATENCY_RUNS, PROFILE_RUNS
from .runtimegraph import is_dequantize, is_qdq, resolve_name
from .session import first_run_feed

PAYS_BELOW = 0.95
"""An int8 model taking 95% of the float32 time or more does not repay its accuracy loss."""
SPEEDUP_DECIMALS = 2
"""Layer speed-ups are shown to two decimals ("0.97x"), in the terminal and in the window alike."""

RUNTIME_ROW = "(runtime)"
"""The op type of a row of kernels that no node of either model accounts for."""
NOT_QDQ = re.compile(r"^(Q[A-Z]|DynamicQuantize)|Integer")
"""Integer operators of the QOperator format and of dynamic quantization (QLinearConv, QGemm, MatMulInteger,
DynamicQuantizeLinear), which a QDQ model never holds: it computes with float operators between
QuantizeLinear and DequantizeLinear, and ONNX Runtime fuses them at load time."""


def int8_pays(ratio: float) -> bool:
    """Whether an int8/float32 time ratio repays int8's accuracy loss, decided on the ratio as shown
    (two decimals), so "0.95x" never comes with "int8 pays"."""
    return round(ratio, SPEEDUP_DECIMALS) < PAYS_BELOW


@dataclass(frozen=True)
class LayerTiming:
    """One layer: the source nodes it covers, the kernels that ran it and its time in each model (us)."""

    node: str
    op_type: str
    members: tuple[str, ...]
    float_kernels: tuple[str, ...]
    int8_kernels: tuple[str, ...]
    float_us: float
    float_glue_us: float
    int8_us: float
    int8_glue_us: float
    macs: int
    """Multiply-accumulates of the layer's float32 nodes in the profiled run, those in :attr:`macs_unknown` left out."""
    integer_macs: int
    integer: bool  # every int8 kernel of the layer computes on integers
    kept_float: bool = False
    """The int8 model computes the layer in float and it holds a node the recipe kept in float (see
    :func:`mark_kept_float`)."""
    kept_nodes: tuple[str, ...] = ()  # the nodes of the layer the recipe kept in float
    macs_unknown: tuple[str, ...] = ()
    """Nodes of the layer that multiply-accumulate but whose count is unknown (:mod:`.macs`)."""

    @property
    def macs_known(self) -> bool:
        return not self.macs_unknown

    @property
    def kept_label(self) -> str:
        """How to name the layer as kept in float, in one name as it counts as one layer: by the node naming the
        row when it, or the node pre-processing fused it into (``mm1/MatMulAddFusion`` for ``mm1``), was kept; else
        by the nodes kept, which need not be the one naming the row (a residual Add kept in float shares the row
        of the Conv it fuses with in float32)."""
        if not self.kept_nodes or any(resolve_name(name, (self.node,)) for name in self.kept_nodes):
            return self.node
        return " + ".join(self.kept_nodes)

    @property
    def computes_in_float(self) -> bool:
        """Whether the int8 model runs this layer of the model with float kernels."""
        return self.in_model and bool(self.int8_kernels) and not self.integer

    @property
    def float_total_us(self) -> float:
        return self.float_us + self.float_glue_us

    @property
    def int8_total_us(self) -> float:
        return self.int8_us + self.int8_glue_us

    @property
    def speedup(self) -> float:
        """Float time over int8 time, glue included: above 1 means int8 pays for this layer."""
        if self.int8_total_us <= 0.0:
            return math.inf if self.float_total_us > 0.0 else 1.0
        return self.float_total_us / self.int8_total_us

    @property
    def in_model(self) -> bool:
        """Whether the row is a model node: only those can be excluded or kept in float."""
        return self.op_type != RUNTIME_ROW

    @property
    def slower_in_int8(self) -> bool:
        """Whether int8 made the layer slower. Only a layer the int8 model computes with integer
        kernels can be: one it runs with float kernels (a layer kept in float) times float against
        float, its difference is noise, and keeping it in float would change nothing.

        Decided on the speed-up as shown (:data:`SPEEDUP_DECIMALS`): a layer 0.4% slower shows as 1.00x
        and is not called slower, a difference far below what one profile can tell apart."""
        return self.in_model and self.integer and round(self.speedup, SPEEDUP_DECIMALS) < 1.0

    def to_dict(self) -> dict[str, object]:
        """The fields, with null MACs when some are unknown: a reader would take a partial count for the whole."""
        known = {} if self.macs_known else {"macs": None, "integer_macs": None}
        return {**self.__dict__, **known, "speedup": self.speedup, "slower_in_int8": self.slower_in_int8}


@dataclass(frozen=True)
class Boundary:
    """A kernel of the int8 model converting between float32 and 8-bit integers at run time."""

    kernel: str
    op_type: str
    tensor: str  # the float32 side
    at: str  # "model input", "model output", "inside the model" or a constant dequantized every run
    layers: tuple[str, ...]  # the int8 layers it serves
    enters_int8: bool  # a Quantize; else a Dequantize

    @property
    def of_constant(self) -> bool:
        """A weight or bias dequantized on every run: a cost, but not where data crosses between float32 and int8."""
        return self.at.startswith("constant")

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class ProfileReport:
    """Per-layer kernels and times of both models, glue, integer MAC share and float32 boundaries."""

    layers: list[LayerTiming]
    float32: ModelProfile
    int8: ModelProfile
    boundaries: list[Boundary]
    latency_ms: tuple[float, float] | None = None  # clean (unprofiled) float32, int8
    threads: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def integer_mac_share(self) -> float:
        """The share of the counted multiply-accumulates that integer kernels ran (see :attr:`macs_unknown`)."""
        total = sum(layer.macs for layer in self.layers)
        return sum(layer.integer_macs for layer in self.layers) / total if total else 0.0

    @property
    def macs_unknown(self) -> list[str]:
        """Nodes whose multiply-accumulates :attr:`integer_mac_share` leaves out, not knowing them."""
        return [node for layer in self.layers for node in layer.macs_unknown]

    def mac_share_text(self, decimals: int = 0) -> str:
        """The integer share in words ("53% of the multiply-accumulates"), said to be of those counted when
        some are unknown: a float layer whose MACs are not known must not leave a bare 100% behind."""
        share = f"{100 * self.integer_mac_share:.{decimals}f}% of the multiply-accumulates"
        unknown = self.macs_unknown
        if not unknown:
            return share
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        return f"{share} counted (unknown for {shown})"

    @property
    def computes_in_int8(self) -> bool:
        """Whether the int8 model computes any layer with integer kernels."""
        return any(layer.integer for layer in self.layers)

    @property
    def float_islands(self) -> list[LayerTiming]:
        """Layers the int8 model computes in float among integer layers though nothing asked for it: an
        operator without an int8 kernel, a pattern ONNX Runtime did not fuse. Each costs Quantize/Dequantize
        glue. Layers the recipe kept in float are :attr:`kept_in_float`, not islands; without an integer
        layer there is nothing for a float layer to be an island in."""
        return self.left_in_float if self.computes_in_int8 else []

    @property
    def left_in_float(self) -> list[LayerTiming]:
        """Layers the int8 model computes in float that hold no node kept in float on request."""
        return [layer for layer in self.layers if layer.computes_in_float and not layer.kept_float]

    @property
    def kept_in_float(self) -> list[LayerTiming]:
        """Layers the int8 model computes in float holding a node the recipe kept in float."""
        return [layer for layer in self.layers if layer.kept_float]

    @property
    def ratio(self) -> float:
        """int8 time / float32 time: clean latencies when measured, else profiled run times."""
        float_time, int8_time = self.latency_ms or (self.float32.run_us, self.int8.run_us)
        return int8_time / float_time if float_time else math.inf

    @property
    def speedup(self) -> float:
        """float32 time / int8 time: the inverse of :attr:`ratio`."""
        return 1.0 / self.ratio if self.ratio else math.inf

    @property
    def pays(self) -> bool:
        """Whether int8 is measurably faster than float32 for this model: never when no layer computes in
        int8, whatever the timing noise between two float models says."""
        return self.computes_in_int8 and int8_pays(self.ratio)

    def headline(self, typographic: bool = False) -> str:
        """The verdict's first clause: whether int8 pays for this model here, and its time against float32's."""
        times = f"{self.ratio:.2f}{'×' if typographic else 'x'} the float32 time"
        if not self.computes_in_int8:
            return f"No layer computes in int8: the int8 model takes {times}"
        pays = "int8 pays" if self.pays else "int8 does not pay here"
        return f"{pays}: it takes {times}"

    def verdict(self, typographic: bool = False) -> str:
        """One plain sentence: does int8 pay for this model here, and where its time goes.

        ``typographic`` writes × and µs, as the GUI does everywhere; terminals and JSON get x and us.
        """
        micro = "µs" if typographic else "us"
        slower = sum(layer.slower_in_int8 for layer in self.layers)
        return (
            f"{self.headline(typographic)}; {slower} of {len(self.layers)} layers are "
            f"slower in int8; integer kernels ran {self.mac_share_text()}; "
            f"glue costs {self.int8.qdq_us:.1f} {micro} (Quantize/Dequantize) + {self.int8.layout_us:.1f} {micro} "
            "(layout) per run."
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "threads": self.threads,
            "latency_ms": dict(zip(("float32", "int8"), self.latency_ms)) if self.latency_ms else None,
            "ratio_int8_to_float": self.ratio,
            "verdict": self.verdict(),
            "integer_mac_share": self.integer_mac_share,
            "macs_unknown": self.macs_unknown,
            "float32": self.float32.to_dict(),
            "int8": self.int8.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
            "slower_in_int8": slower_in_int8(self),
            "float_islands": [layer.node for layer in self.float_islands],
            "kept_in_float": [layer.node for layer in self.kept_in_float],
            "boundaries": [b.to_dict() for b in self.boundaries],
            "notes": self.notes,
        }


def profile_models(
    float_model: LoadedModel,
    int8_model: LoadedModel,
    data: Dataset,
    *,
    runs: int = PROFILE_RUNS,
    warmup: int = 10,
    threads: int = 0,
    latency_runs: int = LATENCY_RUNS,
    kept_float: Collection[str] | None = None,
    progress: Progress = NO_PROGRESS,
) -> ProfileReport:
    """Profile both models on the first sample of ``data`` (the first batch when the float model fixes
    its batch size) and join their kernels layer by layer.

    ``latency_runs`` > 0 also times both models without the profiler (alternating runs): the
    profiler costs a few microseconds per kernel, too much to judge small models by. ``kept_float``:
    the int8 model's nodes its recipe kept in float (:attr:`~.quantize.QuantizeResult.kept_float`),
    which tells the layers kept in float from float islands; without it, those the int8 file lists in
    its metadata (:func:`~.floatpath.recorded_kept_in_float`).
    """
    require_same_inputs(float_model, int8_model)
    require_qdq(int8_model)
    sample = first_run_feed(float_model, data)
    progress.report("Profiling", 0, 2)
    float_profile = profile_model(float_model, sample, runs=runs, warmup=warmup, threads=threads)
    progress.report("Profiling", 1, 2)
    int8_profile = profile_model(int8_model, sample, runs=runs, warmup=warmup, threads=threads)
    progress.report("Profiling", 2, 2)
    if kept_float is None:
        kept_float = recorded_kept_in_float(int8_model.proto)
    macs = count_macs(float_model, {name: array.shape for name, array in sample.items()})
    layers = mark_kept_float(join_layers(float_model.graph, int8_model.graph, float_profile, int8_profile, macs),
                             kept_float)
    latency = None
    if latency_runs > 0:
        latency = measure_latency(float_model, int8_model, data, runs=latency_runs, threads=threads, progress=progress)
    report = ProfileReport(layers, float_profile, int8_profile, [], latency, threads)
    report.boundaries = find_boundaries(int8_model.graph, int8_profile, layers)
    return report


def require_qdq(int8_model: LoadedModel) -> None:
    """Refuse an int8 model in the QOperator format or quantized dynamically: layers are joined through the
    float operators a QDQ model keeps, which those formats replace, so float layers met the wrong kernels and
    the verdict was confidently wrong (every int8 layer slower, 0% of the MACs in integer kernels)."""
    found = sorted({node.op_type for node in int8_model.graph.nodes if NOT_QDQ.search(node.op_type)})
    if found:
        how = "dynamic quantization" if any(op.startswith("Dynamic") for op in found) else "the QOperator format"
        raise Q8Error(f"{int8_model.path.name} has {'/'.join(found)} operators ({how}); profile compares a float model "
                      "with the QDQ int8 model q8studio writes (or onnxruntime's quantize_static in QDQ format).")


def slower_in_int8(report: ProfileReport) -> list[str]:
    """Integer-computed layers whose int8 time, their share of Quantize/Dequantize and layout glue included,
    exceeds float32's (a speed-up shown below 1.00x): the layers keeping slower layers in float acts on."""
    return [layer.node for layer in report.layers if layer.slower_in_int8]


def mark_kept_float(layers: list[LayerTiming], kept: Collection[str]) -> list[LayerTiming]:
    """``layers`` with :attr:`LayerTiming.kept_float` set on the float layers holding a node of ``kept``, the
    nodes kept in float on request. A float layer beside them (a Flatten between two kept layers) is float
    because they are, but nobody asked for it: it is left in float (:attr:`ProfileReport.left_in_float`),
    so that every view counts the kept ones alike. A layer holding a kept node that the int8 model runs
    with integer kernels all the same is not marked: it is not float."""
    wanted = set(kept)
    return [
        replace(layer, kept_float=True, kept_nodes=tuple(m for m in layer.members if m in wanted))
        if layer.computes_in_float and wanted.intersection(layer.members) else layer
        for layer in layers
    ]


def layers_holding(report: ProfileReport, nodes: Collection[str]) -> list[LayerTiming]:
    """The layers (rows of the report) that hold any of ``nodes``: a set of nodes in the report's unit."""
    wanted = set(nodes)
    return [layer for layer in report.layers if wanted.intersection(layer.members)]


def speedup_overlay(report: ProfileReport) -> dict[str, float]:
    """Node -> its layer's float32 time over int8 time, glue included, for colouring the graph (< 1: slower)."""
    return {m: layer.speedup for layer in report.layers if layer.int8_kernels for m in layer.members}


def kernel_overlay(report: ProfileReport) -> dict[str, float]:
    """Node -> 1.0 where the int8 model computes its layer with integer kernels, 0.0 where with float ones."""
    return {m: float(layer.integer) for layer in report.layers if layer.int8_kernels for m in layer.members}


def boundary_marks(report: ProfileReport) -> dict[str, set[str]]:
    """Badge -> nodes: "Q" on layers where float32 enters int8 at run time, "DQ" where it leaves.

    Weights and biases dequantized on every run are left out: they are constants, not data flow.
    """
    marks: dict[str, set[str]] = {"Q": set(), "DQ": set()}
    for boundary in report.boundaries:
        if not boundary.of_constant:
            marks["Q" if boundary.enters_int8 else "DQ"].update(boundary.layers)
    return marks


class _Groups:
    """Union-find over node names: nodes that share a kernel in either model end up in one layer."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        self.parent.setdefault(name, name)
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class _Row:
    members: list[str] = field(default_factory=list)
    kernels: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))
    compute_us: list[float] = field(default_factory=lambda: [0.0, 0.0])
    glue_us: list[float] = field(default_factory=lambda: [0.0, 0.0])


def join_layers(float_graph: Graph, int8_graph: Graph, fp: ModelProfile, qp: ModelProfile,
                macs: Mapping[str, int | None]) -> list[LayerTiming]:
    """One row per group of source nodes computed together, in the float model's order; ``macs``: the
    float nodes' multiply-accumulates in the profiled run (:func:`~.macs.count_macs`)."""
    qp, aliases = _renamed(qp, float_graph.by_name)
    groups = _Groups()
    for alias, name in aliases.items():  # keep the int8 model's own names in the row too
        groups.union(alias, name)
    for name, writer in _taken_over(float_graph, int8_graph).items():
        groups.union(name, writer)
    for profile in (fp, qp):
        for kernel in profile.kernels:
            if not kernel.glue:
                groups.find(kernel.node or kernel.name)
        for node, anchor in profile.absorbed.items():
            groups.union(node, anchor)
    rows: dict[str, _Row] = defaultdict(_Row)
    for name in list(groups.parent):
        rows[groups.find(name)].members.append(name)
    for side, profile in enumerate((fp, qp)):
        for kernel in profile.kernels:
            _charge(rows, groups, side, kernel, profile.glue_owners.get(kernel.name))
    order = _order(float_graph, int8_graph)
    integer_nodes = _integer_nodes(qp)
    return sorted(
        (_layer(row, float_graph, int8_graph, order, integer_nodes, macs) for row in rows.values() if row.members),
        key=lambda layer: min(order.get(m, math.inf) for m in layer.members),
    )


def _renamed(qp: ModelProfile, float_names: Container[str]) -> tuple[ModelProfile, dict[str, str]]:
    """The int8 profile with nodes renamed to the float nodes they came from (pre-processing fusions)."""
    aliases: dict[str, str] = {}

    def name(n: str) -> str:
        found = n if n in float_names else resolve_name(n, float_names) or n
        if found != n:
            aliases[n] = found
        return found

    kernels = [replace(k, node=name(k.node)) if k.node else k for k in qp.kernels]
    owners = {k: [name(n) for n in v] for k, v in qp.glue_owners.items()}
    absorbed = {name(k): name(v) for k, v in qp.absorbed.items()}
    return replace(qp, kernels=kernels, glue_owners=owners, absorbed=absorbed), aliases


def _taken_over(float_graph: Graph, int8_graph: Graph) -> dict[str, str]:
    """Float nodes the int8 model lacks -> the int8 node writing their output instead.

    Quantization drops a Relu after an Add (the Add's quantized range clips it), and the Add then
    writes the Relu's tensor: the float Relu kernel and the int8 QLinearAdd do the same work.
    """
    taken = {}
    for node in float_graph.nodes:
        writers = [int8_graph.nodes[int8_graph.producer[t]] for t in node.outputs if t in int8_graph.producer]
        writers = [w for w in writers if not is_qdq(w.name, w.op_type)]
        if node.name not in int8_graph.by_name and writers:
            taken[node.name] = writers[0].name
    return taken


def _charge(rows: dict[str, _Row], groups: _Groups, side: int, kernel: KernelTime, owners: list[str] | None) -> None:
    if not kernel.glue:
        row = rows[groups.find(kernel.node or kernel.name)]
        row.compute_us[side] += kernel.us
        suffix = "" if side == 0 or kernel.integer else " (float)"
        row.kernels[side].append(kernel.label + suffix)
        return
    owners = owners or [kernel.name]
    for owner in owners:
        row = rows[groups.find(owner)]
        if not row.members:
            row.members.append(owner)
        row.glue_us[side] += kernel.us / len(owners)


def _order(float_graph: Graph, int8_graph: Graph) -> dict[str, float]:
    order: dict[str, float] = {node.name: float(node.index) for node in float_graph.nodes}
    for node in int8_graph.nodes:
        order.setdefault(node.name, len(float_graph.nodes) + node.index)
    return order


def _integer_nodes(qp: ModelProfile) -> set[str]:
    """Nodes of the int8 model computed by an integer kernel, their absorbed nodes included."""
    direct = {k.node for k in qp.kernels if k.node is not None and not k.glue and k.integer}
    return direct | {node for node, anchor in qp.absorbed.items() if anchor in direct}


def _layer(row: _Row, float_graph: Graph, int8_graph: Graph, order: dict[str, float], integer: set[str],
           counts: Mapping[str, int | None]) -> LayerTiming:
    """The row as a layer; its MACs are its float32 nodes' (a node pre-processing fused in the int8 model
    shares the row of the float node it came from, which counts its work)."""
    members = sorted(row.members, key=lambda m: order.get(m, math.inf))
    nodes = {n.name: n for n in int8_graph.nodes} | {n.name: n for n in float_graph.nodes}
    anchor = next((m for m in members if m in nodes and nodes[m].op_type in MAC_OPS), members[0])
    macs = {m: counts[m] for m in members if m in counts}
    known = {m: count for m, count in macs.items() if count is not None}
    return LayerTiming(
        node=anchor,
        op_type=nodes[anchor].op_type if anchor in nodes else RUNTIME_ROW,
        members=tuple(members),
        float_kernels=tuple(row.kernels[0]),
        int8_kernels=tuple(row.kernels[1]),
        float_us=row.compute_us[0],
        float_glue_us=row.glue_us[0],
        int8_us=row.compute_us[1],
        int8_glue_us=row.glue_us[1],
        macs=sum(known.values()),
        integer_macs=sum(count for m, count in known.items() if m in integer),
        integer=bool(row.kernels[1]) and not any(k.endswith(" (float)") for k in row.kernels[1]),
        macs_unknown=tuple(m for m, count in macs.items() if count is None),
    )


def _written_out_result(int8_graph: Graph, kernel: str, fallback: str) -> str:
    """The float tensor a written-out DequantizeLinear gives, named as in the model, not its first step."""
    node = resolve_name(kernel, int8_graph.by_name)
    return written_out_result(int8_graph, int8_graph.by_name[node]) if node is not None else fallback


def _quantized_from(int8_graph: Graph, kernel: str, fallback: str) -> str:
    """The float tensor a Dequantize inside the model gives back, named as in the float model: the input
    of the QuantizeLinear that made its integers (``X``, not onnxruntime's ``X_DequantizeLinear_Output``)."""
    node = resolve_name(kernel, int8_graph.by_name)
    if node is None:
        return fallback
    producer = int8_graph.producer.get(int8_graph.by_name[node].inputs[0])
    quantize = int8_graph.nodes[producer] if producer is not None else None
    return quantize.inputs[0] if quantize is not None and quantize.op_type == "QuantizeLinear" else fallback


def find_boundaries(int8_graph: Graph, qp: ModelProfile, layers: list[LayerTiming]) -> list[Boundary]:
    """The Quantize/Dequantize kernels that still run: where float32 enters and leaves int8."""
    row_of = {member: layer.node for layer in layers for member in layer.members}
    runtime = {k.name: k for k in qp.graph}
    found = []
    for kernel in qp.kernels:
        # a DequantizeLinear written out in float ops is one boundary, at the kernel reading the integers
        if not is_qdq(kernel.name, kernel.op_type) or (is_written_out_dequantize(kernel.name) and not kernel.integer):
            continue
        entering = not is_dequantize(kernel.name, kernel.op_type)
        source, result = runtime[kernel.name].inputs[0], runtime[kernel.name].outputs[0]
        if is_written_out_dequantize(kernel.name):
            result = _written_out_result(int8_graph, kernel.name, result)
        tensor = source if entering else result
        if source in int8_graph.initializers:
            at = "constant, dequantized on every run"
        elif tensor in (int8_graph.inputs if entering else int8_graph.outputs):
            at = "model input" if entering else "model output"
        else:
            at = "inside the model"
            if not entering:
                tensor = _quantized_from(int8_graph, kernel.name, tensor)
        owners = qp.glue_owners.get(kernel.name, [])
        layers = tuple(dict.fromkeys(row_of.get(o, o) for o in owners))
        found.append(Boundary(kernel.name, kernel.op_type, tensor, at, layers, entering))
    return found
