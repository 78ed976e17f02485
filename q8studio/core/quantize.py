"""Build the int8 QDQ model: our statistics and clipping, onnxruntime's graph rewriting.

onnxruntime.quantization places Quantize/DequantizeLinear nodes well; its calibrators keep
every activation in memory and its entropy method degenerates to min/max with defaults. So
we collect statistics ourselves, choose ranges ourselves, and hand them to ``quantize_static``
per tensor through its public ``TensorQuantOverrides`` (and a range cache, so it runs no
calibration pass of its own).
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Collection

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

from .calibrate import collect_statistics, tensors_to_calibrate
from .clipping import INT8, UINT8, activation_range, effective_qtype, method_for, needs_histogram, quant_params
from .data import Dataset
from .errors import Q8Error, QuantizerFailed, first_line
from .fileio import atomic_path, check_outputs
from .floatpath import keep_in_float
from .floatnodes import FloatNode, find_float_nodes, nodes_to_keep_in_float
from .heldoutputs import held_as_outputs, inputs_also_outputs, outputs_apart, outputs_rejoined, released
from .int8pairs import layers_beside_shared_int8
from .model import Graph, LoadedModel, Node, load_model
from .nameclash import names_restored, set_aside, stand_ins
from .poolwindows import past_end_pads
from .preprocess import PreparedModel, prepare_for_quantization
from .progress import NO_PROGRESS, Progress
from .quietlog import quiet_root_logger
from .recipe import Recipe
from .refusals import require_float_tensors
from .session import cpu_session, first_run_feed, quantizers_run_as_uint8, runtime_error
from .skeleton import save_with_weights_beside, skeleton_of, with_weights_outside
from .softmaxscales import SoftmaxScale, softmax_output_scales
from .stats import TensorStats
from .subgraphs import holds_subgraphs, read_by_subgraphs_and_folded, sort_topologically
from .weights import WeightError, weight_errors
from .weightscales import per_channel_weight_overrides, per_tensor_weights, prequantized


SCALE_SUFFIX = "_scale"  # onnxruntime names the scale of tensor X "X_scale"
PLACEHOLDER_RANGE = (-1.0, 1.0)
VALUE_PRESERVING_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"})


@dataclass(frozen=True, eq=False)
class CalibrationSource:
    """What a run's statistics were collected from: this very source model object, the data (its
    fingerprint and sample count) and the settings the statistics themselves depend on."""

    model: LoadedModel
    data: tuple
    samples: int
    ema_momentum: float
    histogram_values: int

    def same_as(self, other: CalibrationSource) -> bool:
        return (
            self.model is other.model
            and bool(self.data)
            and self.data == other.data
            and (self.samples, self.ema_momentum, self.histogram_values)
            == (other.samples, other.ema_momentum, other.histogram_values)
        )


@dataclass
class QuantizeResult:
    """What a quantization run produced and how: enough for the report, the GUI and evaluation."""

    output_path: Path
    int8: LoadedModel
    recipe: Recipe
    prepared: PreparedModel
    stats: dict[str, TensorStats]
    ranges: dict[str, tuple[float, float]]
    float_nodes: list[FloatNode]
    weights: list[WeightError]
    timings: dict[str, float] = field(default_factory=dict)
    calibration_samples: int = 0
    calibrated_on: CalibrationSource | None = None
    statistics_reused: int = 0  # how many tensors' statistics came from the previous run
    kept_float: tuple[str, ...] = ()  # the prepared (and int8) model's nodes the recipe kept in float
    unfused_int8: tuple[str, ...] = ()  # quantized layers ONNX Runtime runs in float here for want of uint8 codes

    def float_node(self, name: str) -> FloatNode | None:
        """The record of node ``name`` if it computes in float in the int8 model, with why."""
        return next((node for node in self.float_nodes if node.name == name), None)


def quantize_model(
    model: LoadedModel,
    calibration: Dataset,
    recipe: Recipe,
    output: str | Path,
    *,
    histograms: bool | None = None,
    previous: QuantizeResult | None = None,
    progress: Progress = NO_PROGRESS,
) -> QuantizeResult:
    """Calibrate, clip, quantize and verify; the int8 model appears at ``output`` only if it runs.

    ``histograms``: collect activation histograms (needed to show them, or to compare clipping
    methods afterwards); by default only when the recipe's method needs them. ``previous``: an
    earlier run; when it calibrated the same model object on the same data with the same
    statistics settings, its statistics are reused and only tensors it did not calibrate are (a new
    method, percentile, granularity or set of layers kept in float changes nothing calibration sees;
    a layer kept in float may need the range of a tensor that was inside an int8 layer before).
    """
    output = Path(output)
    check_outputs({"the int8 model": output}, files_read(model, calibration))
    require_float_tensors(model)
    timings: dict[str, float] = {}

    with _timed(timings, "preprocess_s"):
        progress.report("Pre-processing", 0, 1)
        prepared = prepare_for_quantization(model, per_channel=recipe.per_channel)
        keep_float, notes = nodes_to_keep_in_float(model, prepared.model, recipe.exclude)
        prepared.notes.extend(notes)
        as_prepared = recipe.with_changes(exclude=keep_float)  # the recipe in the prepared model's names

    with _timed(timings, "plan_s"):
        names = ranges_read_by_quantizer(prepared.model.proto, as_prepared)

    with _timed(timings, "calibrate_s"):
        data = calibration.limited(recipe.samples)
        source = CalibrationSource(model, data.fingerprint, data.count, recipe.ema_momentum, recipe.histogram_values)
        with_histograms = needs_histogram(recipe.method) if histograms is None else histograms
        stats = _reusable_statistics(previous, source, names, with_histograms)
        reused = len(stats)
        missing = [name for name in names if name not in stats]
        if reused:
            progress.report("Reusing the previous run's calibration statistics", 1, 1)
        if missing:
            stats.update(collect_statistics(
                prepared.model, data, names=missing, ema_momentum=recipe.ema_momentum, progress=progress,
                histograms=with_histograms, histogram_values=recipe.histogram_values,
            ))
        stats = {name: stats[name] for name in names}

    with _timed(timings, "ranges_s"):
        progress.report("Choosing ranges", 0, 1)
        ranges = activation_ranges(stats, recipe, output_tensors(prepared.model))

    with _timed(timings, "quantize_s"):
        progress.report("Writing the int8 model", 0, 1)
        with atomic_path(output) as staging:
            weight_scales: dict[str, list[dict]] = {}
            if recipe.per_channel:
                weight_scales = per_channel_weight_overrides(prepared.model, keep_float)
                prepared.notes.extend(_per_tensor_notes(prepared.model, keep_float))
            softmax_scales = softmax_output_scales(prepared.model.proto, ranges, as_prepared)
            prepared.notes.extend(scale.note() for scale in softmax_scales.values())
            ranges |= {tensor: scale.written_range for tensor, scale in softmax_scales.items()}
            _write_qdq_model(prepared.model.proto, ranges, as_prepared, staging, weight_scales, softmax_scales)
            _keep_float_at_run_time(staging, keep_float)
            with _naming_output(staging, output):
                _check_it_runs(staging, first_run_feed(prepared.model, data))
                int8 = _load_written(staging)
        unfused_int8 = _unfused_int8_layers(int8) if recipe.activation_type == "int8" else ()
        prepared.notes.extend([_unfused_int8_note(unfused_int8)] if unfused_int8 else [])
        prepared.notes.extend(_average_pool_past_end_notes(int8, set(unfused_int8)))

    int8 = replace(int8, path=output)  # the file just moved from staging; its content is what was checked
    return QuantizeResult(
        output_path=output,
        int8=int8,
        recipe=recipe,
        prepared=prepared,
        stats=stats,
        ranges=ranges,
        float_nodes=find_float_nodes(prepared.model, int8, keep_float),
        weights=weight_errors(prepared.model, int8),
        timings=timings,
        calibration_samples=data.count,
        calibrated_on=source,
        statistics_reused=reused,
        kept_float=keep_float,
        unfused_int8=unfused_int8,
    )


def files_read(model: LoadedModel, *data: Dataset) -> dict[str, Path]:
    """The model's files and those of ``data``: what quantizing reads, and must not write over."""
    files = model.source_files()
    files |= {f"the data {d.path.name}": d.path for d in data if d.path is not None}
    return files


def _reusable_statistics(
    previous: QuantizeResult | None, source: CalibrationSource, names: list[str], histograms: bool
) -> dict[str, TensorStats]:
    """Those of ``names`` whose statistics ``previous`` collected from the same source (with a
    histogram when one is needed); the caller calibrates the rest."""
    if previous is None or previous.calibrated_on is None or not previous.calibrated_on.same_as(source):
        return {}
    stats = previous.stats
    return {name: stats[name] for name in names if name in stats and (stats[name].histogram or not histograms)}


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Record the wall time of the ``with`` block as ``timings[phase]`` (seconds)."""
    started = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - started


def ranges_read_by_quantizer(prepared: onnx.ModelProto, recipe: Recipe) -> list[str]:
    """The activations whose ranges onnxruntime's quantizer will actually use for this recipe.

    Of the tensors around quantizable ops, many get no range of their own: a ReLU folds into the
    layer before it, MaxPool shares its input's scale. A dry run with placeholder ranges asks the
    quantizer itself (tens of milliseconds), and calibration then skips the rest: fewer exposed
    outputs keep ONNX Runtime's fusions, and fewer histograms cost less. The dry run quantizes
    weights per tensor whatever the recipe says: weight granularity decides nothing about
    activations, and per-channel weights were 70% of its time on SqueezeNet.

    It runs on the model's skeleton (:mod:`.skeleton`): the quantizer treats a large weight that is
    a graph input as one more activation, whose range is not among ``candidates``, and decides
    everything else as before (the same reads on every architecture of onnx's test data). Saving,
    shape-inferring and quantizing the weights was the whole cost on large models: 5.4 s of VGG-19.
    """
    candidates = tensors_to_calibrate(prepared)
    with tempfile.TemporaryDirectory(prefix="q8studio-dry-") as tmp:
        output = Path(tmp) / "dry.onnx"
        dry = recipe.with_changes(granularity="per-tensor")
        _write_qdq_model(skeleton_of(prepared), {name: PLACEHOLDER_RANGE for name in candidates}, dry, output,
                         names_back=False)
        quantized = onnx.load(str(output), load_external_data=False)
    initializers = {t.name for t in quantized.graph.initializer}
    aside = stand_ins(prepared.graph)  # the names the dry run's model still has (see nameclash)
    by_scale = {f"{aside.get(name, name)}{SCALE_SUFFIX}": name for name in candidates}
    own_name = {stand_in: name for name, stand_in in aside.items()}
    read = {
        by_scale.get(node.input[1], own_name.get(node.input[0], node.input[0]))
        for node in quantized.graph.node
        if node.op_type == "QuantizeLinear" and node.input[0] not in initializers
    }
    return [name for name in candidates if name in read]


def output_tensors(model: LoadedModel) -> set[str]:
    """The graph outputs and the tensors they merely reshape (their values, so their ranges, are the same)."""
    graph = model.graph
    found, pending = set(), list(graph.outputs)
    while pending:
        name = pending.pop()
        found.add(name)
        producer = graph.producer.get(name)
        if producer is not None and graph.nodes[producer].op_type in VALUE_PRESERVING_OPS:
            pending.append(graph.nodes[producer].inputs[0])
    return found


def activation_ranges(
    stats: dict[str, TensorStats], recipe: Recipe, outputs: Collection[str] = ()
) -> dict[str, tuple[float, float]]:
    """(rmin, rmax) of every calibrated tensor by the recipe's clipping method.

    The model's ``outputs`` keep their observed range whatever the method: a classifier's largest
    outputs decide its prediction, and clipping them turns the top classes into ties.

    Histogram searches run on every core, since numpy releases the GIL in its array operations:
    entropy's search took 2 ms a tensor on SqueezeNet, a tenth of the time after its calibration pass.
    """
    qtype = UINT8 if recipe.activation_type == "uint8" else INT8

    def range_of(name: str, s: TensorStats) -> tuple[str, tuple[float, float]]:
        method = method_for(name, recipe.method, outputs)
        return name, activation_range(
            s, method, qtype=qtype, symmetric=recipe.symmetric_activations, percentile=recipe.percentile
        )

    calibrated = [(name, s) for name, s in stats.items() if s.count > 0]
    if not needs_histogram(recipe.method):
        return dict(itertools.starmap(range_of, calibrated))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="q8studio-ranges") as pool:
        return dict(pool.map(range_of, *zip(*calibrated))) if calibrated else {}


def _write_qdq_model(
    prepared: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
    recipe: Recipe,
    output: Path,
    weight_scales: dict[str, list[dict]] | None = None,
    softmax_scales: dict[str, SoftmaxScale] | None = None,
    *,
    names_back: bool = True,
) -> None:
    """quantize_static with our ranges, and the per-channel ``weight_scales`` it would compute itself,
    most of them handed over as weights already quantized (:mod:`.weightscales`), and the Softmax outputs'
    ``softmax_scales`` (:mod:`.softmaxscales`) in place of their ranges. Its range cache must
    list every candidate tensor, even those whose range it never reads (see
    :func:`ranges_read_by_quantizer`): they get a placeholder.

    Tensors named as the quantizer names its own are renamed while it runs (:mod:`.nameclash`), and
    named back in the written model unless ``names_back`` is false."""
    aside = stand_ins(prepared.graph)
    if aside:
        prepared = set_aside(prepared, aside)
        ranges = {aside.get(name, name): bounds for name, bounds in ranges.items()}
        weight_scales = {aside.get(name, name): scales for name, scales in (weight_scales or {}).items()}
        softmax_scales = {aside.get(name, name): scale for name, scale in (softmax_scales or {}).items()}
    unread = {name: PLACEHOLDER_RANGE for name in tensors_to_calibrate(prepared) if name not in ranges}
    cached = {**unread, **ranges}
    overrides: dict[str, list[dict]] = {}
    if weight_scales:
        prepared, overrides = prequantized(prepared, weight_scales, _activation_scales(cached, recipe))
    passed_through = inputs_also_outputs(prepared)
    held = read_by_subgraphs_and_folded(prepared.graph)
    with tempfile.TemporaryDirectory(prefix="q8studio-quant-") as tmp:
        source = Path(tmp) / "prepared.onnx"
        save_with_weights_beside(prepared, source)
        if passed_through or held:
            _rewrite(source, lambda model: outputs_apart(model, passed_through),
                     lambda model: held_as_outputs(model, held))
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(_tensors_data(cached), cache)
        overrides |= {name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in ranges.items()}
        overrides |= {name: scale.override() for name, scale in (softmax_scales or {}).items()}
        try:
            with quiet_root_logger(logging.ERROR):  # quantize_static prints advice on every call
                quantize_static(
                    str(source),
                    str(output),
                    calibration_data_reader=None,
                    calibration_cache_path=str(cache),
                    quant_format=QuantFormat.QDQ,
                    per_channel=recipe.per_channel,
                    activation_type=QuantType.QUInt8 if recipe.activation_type == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=list(recipe.exclude),
                    extra_options={
                        "ActivationSymmetric": recipe.symmetric_activations,
                        "WeightSymmetric": True,
                        "TensorQuantOverrides": overrides,
                        # onnxruntime's QDQ default for MatMul is axis 1, the reduction axis of a
                        # batched [B, K, N] weight; the output channels are the last axis.
                        "QDQOpTypePerChannelSupportToAxis": {"MatMul": -1},
                    },
                )
        except OSError:  # the file could not be written (a full disk, say): the caller names the file
            raise
        except Exception as exc:  # the quantizer raises assorted types for unsupported graphs
            node = _node_at_fault(exc, prepared)
            where = f"node {node.name} ({node.op_type})" if node is not None else "this model"
            raise QuantizerFailed(f"onnxruntime's quantizer failed on {where}: {first_line(exc)}",
                                  node.name if node is not None else None, recipe.per_channel) from None
    fixes: list[Callable[[onnx.ModelProto], None]] = []
    if passed_through:
        fixes.append(lambda model: outputs_rejoined(model, passed_through))
    if held:
        fixes.append(lambda model: released(model, held))
    if holds_subgraphs(prepared.graph):  # the quantizer's order overlooks what subgraphs read
        fixes.append(lambda model: sort_topologically(model.graph))
    if aside and names_back:
        fixes.append(lambda model: names_restored(model, aside))
    if fixes:
        _rewrite(output, *fixes)


def _activation_scales(ranges: dict[str, tuple[float, float]], recipe: Recipe) -> dict[str, float]:
    """The scale onnxruntime's quantizer gives each activation of ``ranges`` under ``recipe``."""
    if not ranges:
        return {}
    symmetric = recipe.symmetric_activations
    qtype = effective_qtype(UINT8 if recipe.activation_type == "uint8" else INT8, symmetric)
    lows, highs = (np.array(bounds, dtype=np.float32) for bounds in zip(*ranges.values()))
    scales, _ = quant_params(lows, highs, qtype, symmetric)
    return dict(zip(ranges, scales.tolist()))


def _unfused_int8_layers(int8: LoadedModel) -> tuple[str, ...]:
    """The quantized layers ONNX Runtime on this CPU runs in float for want of uint8 codes (see :mod:`.int8pairs`)."""
    layers = layers_beside_shared_int8(int8.graph)
    return tuple(layers) if layers and quantizers_run_as_uint8(with_weights_outside(int8.proto)) else ()


def _unfused_int8_note(layers: tuple[str, ...]) -> str:
    shown = ", ".join(layers[:6]) + (f" and {len(layers) - 6} more" if len(layers) > 6 else "")
    return (f"With int8 activations ONNX Runtime on this CPU runs {len(layers)} quantized layer"
            f"{'' if len(layers) == 1 else 's'} in float: {shown}. Its kernels take uint8 codes, and it turns an "
            "int8 Quantize/Dequantize pair into uint8 only where the codes go to one layer; these layers read or "
            "write codes that go to several. uint8 activations (the default) fuse them.")


def _average_pool_past_end_notes(int8: LoadedModel, in_float: set[str]) -> list[str]:
    """The quantized AveragePools ONNX Runtime's QLinearAveragePool computes otherwise than the model: with ceil_mode
    and count_include_pad it divides a window reaching past the end pads by the whole kernel size, where ONNX (and
    ONNX Runtime's float AveragePool) counts the positions within the input and its pads."""
    graph, notes = int8.graph, []
    for node in graph.nodes:
        if (node.op_type != "AveragePool" or node.name in in_float or not node.attributes.get("ceil_mode")
                or not node.attributes.get("count_include_pad") or not _quantized_around(graph, node)):
            continue
        shapes = [graph.tensors[t].shape if t in graph.tensors else None for t in (node.inputs[0], node.outputs[0])]
        if not all(shape and all(isinstance(d, int) for d in shape[2:]) for shape in shapes):
            continue  # the windows' place is unknown until it runs
        if past_end_pads(node, shapes[0][2:], shapes[1][2:]):  # type: ignore[index]
            notes.append(f"{node.name} [AveragePool] has ceil_mode and count_include_pad: ONNX Runtime's "
                         "QLinearAveragePool divides its windows that reach past the end pads by the whole kernel "
                         "size, where the model divides by the positions within the input and its pads, so those "
                         f"outputs are another function in int8. Keep it in float (--exclude {node.name}) to avoid "
                         "it; Explain shows where.")
    return notes


def _quantized_around(graph: Graph, node: Node) -> bool:
    """Whether a DequantizeLinear feeds ``node`` and a QuantizeLinear reads its output: what ONNX Runtime fuses."""
    producer = graph.producer.get(node.inputs[0])
    readers = graph.consumers.get(node.outputs[0], [])
    return (producer is not None and graph.nodes[producer].op_type == "DequantizeLinear"
            and any(graph.nodes[i].op_type == "QuantizeLinear" for i in readers))


def _per_tensor_notes(model: LoadedModel, keep_float: Collection[str]) -> list[str]:
    """Why a per-channel run quantizes some weights per tensor (see :func:`.weightscales.per_tensor_weights`)."""
    return [f"{node.name} [ConvTranspose] has {node.attributes['group']} groups: its weight {weight} is quantized "
            "per tensor, since no axis of it holds one slice per output channel."
            for weight, node in per_tensor_weights(model, keep_float).items()]


def _node_at_fault(exc: BaseException, model: onnx.ModelProto) -> onnx.NodeProto | None:
    """The node of ``model`` onnxruntime's quantizer was working on when it raised ``exc``, read from
    the traceback, since its messages never name one: its operator quantizers hold the node (``node``
    or ``self.node``), its bias steps a record naming it (``node_name``). The innermost frame wins."""
    nodes = {node.name: node for node in model.graph.node if node.name}
    found = None
    frame = exc.__traceback__
    while frame is not None:
        local = frame.tb_frame.f_locals
        held = [local.get("node"), getattr(local.get("self"), "node", None)]
        held += [getattr(value, "node_name", None) for value in local.values()]
        for value in held:
            name = value.name if isinstance(value, onnx.NodeProto) else value
            if isinstance(name, str) and name in nodes:
                found = nodes[name]
        frame = frame.tb_next
    return found


def _rewrite(path: Path, *changes: Callable[[onnx.ModelProto], None]) -> None:
    """Apply ``changes`` in turn to the graph of the model file at ``path`` (one load, one save);
    weights stored beside it stay there."""
    model = onnx.load(str(path), load_external_data=False)
    for change in changes:
        change(model)
    onnx.save(model, str(path))


def _keep_float_at_run_time(path: Path, kept: tuple[str, ...]) -> None:
    """Rewrite the written model so ONNX Runtime computes the ``kept`` layers in float (with the
    quantizer's output alone, it computes most of them in int8 anyway) and list them in it (see
    :mod:`.floatpath`)."""
    if kept:
        _rewrite(path, lambda model: keep_in_float(model, kept))


@contextmanager
def _naming_output(staging: Path, output: Path) -> Iterator[None]:
    """A refusal of the file written to ``staging`` names ``output``, the file the user asked for."""
    try:
        yield
    except Q8Error as exc:
        raise Q8Error(str(exc).replace(staging.name, output.name), exc.details) from None


def _load_written(path: Path) -> LoadedModel:
    """The int8 model just written to ``path``, checked as any model q8studio opens."""
    try:
        return load_model(path)
    except Q8Error as exc:
        raise Q8Error(f"The int8 model was not written, because it is not valid: {exc}", exc.details) from None


def _check_it_runs(path: Path, feed: dict[str, np.ndarray]) -> None:
    """Load the written file with ONNX Runtime, as a user will, and run it once on ``feed`` (a whole
    batch when the model fixes its batch size): an int8 model is reported only once it runs."""
    try:
        cpu_session(path).run(None, feed)
    except Q8Error as exc:
        raise Q8Error(f"The int8 model was not written, because it does not run: {exc}", exc.details) from None
    except Exception as exc:  # ONNX Runtime raises assorted types at run time
        raise runtime_error("The int8 model was not written, because it does not run", exc) from None


def _tensors_data(ranges: dict[str, tuple[float, float]]) -> TensorsData:
    return TensorsData(
        CalibrationMethod.MinMax,
        {n: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for n, (lo, hi) in ranges.items()},
    )
