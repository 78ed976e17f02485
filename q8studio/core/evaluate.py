"""Float32 vs int8 side by side: accuracy, agreement, output error, latency, size, per-layer error.

Both models run over the same data with their intermediate tensors exposed; an activation X of
the float model is matched to the DequantizeLinear output that stands for X in the int8 model.
Errors are accumulated batch by batch, so evaluation memory does not grow with the data.

Accuracy and agreement come from one output, named in the result (:func:`scored_output`): the
classifier whose classes fit the labels, since a model may export features or auxiliary heads before its
logits. Classifier scores count by their argmax, class ids as they are (an ArgMax output). Class ids get no
output error: a wrong class is not "close" to the right one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data import Dataset
from .errors import Q8Error
from .floatpath import is_written_out_dequantize, written_out_result
from .latency import alternating_latency
from .metrics import ErrorAccumulator
from .model import LoadedModel, Node
from .prefetch import for_each_prefetched
from .progress import NO_PROGRESS, Progress
from .runcounts import LATENCY_RUNS
from .session import BatchRunner, cpu_session

INPUT_OP = "Input"  # the op type shown for a model input, which no node computes
CLASS_IDS = "class ids"


@dataclass(frozen=True)
class LayerError:
    """Error of one quantized activation, as the int8 model computes it (errors of earlier layers included)."""

    tensor: str
    node: str
    op_type: str
    sqnr_db: float
    mse: float
    cosine: float
    max_abs_error: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class NotMeasured:
    """An output whose float-vs-int8 error means nothing, and why."""

    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"sqnr_db": None, "mse": None, "cosine": None, "max_abs_error": None, "not_applicable": self.reason}


@dataclass
class ModelScore:
    """One model's column of the side-by-side table."""

    top1: float | None
    latency_ms: float
    file_size: int
    unstored_parameters: int = 0  # parameters the file does not hold (LoadedModel.unstored_parameters)


@dataclass
class ErrorAnalysis:
    """How far the int8 model's outputs and activations are from float32 on some data."""

    samples: int
    outputs: dict[str, ErrorAccumulator | NotMeasured]
    layers: list[LayerError]
    float_top1: float | None
    int8_top1: float | None
    agreement: float | None
    scored_output: str | None  # the output accuracy and agreement come from; None when none could be scored

    def to_dict(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "float32_top1": self.float_top1,
            "int8_top1": self.int8_top1,
            "top1_agreement": self.agreement,
            "scored_output": self.scored_output,
            "outputs": {name: acc.to_dict() for name, acc in self.outputs.items()},
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass
class Comparison:
    """The side-by-side view: error analysis plus latency and size of both models."""

    errors: ErrorAnalysis
    float32: ModelScore
    int8: ModelScore
    threads: int = 0

    @property
    def speedup(self) -> float:
        return self.float32.latency_ms / self.int8.latency_ms if self.int8.latency_ms else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            **self.errors.to_dict(),
            "float32": self.float32.__dict__,
            "int8": self.int8.__dict__,
            "speedup": self.speedup,
            "latency_threads": self.threads,
        }


def dequantized_counterparts(int8: LoadedModel) -> dict[str, str]:
    """Float activation name -> the int8 model's DequantizeLinear output that approximates it (or the
    output of the same arithmetic written out, where only layers kept in float read it)."""
    graph = int8.graph
    counterparts = {}
    for node in graph.nodes:
        if node.op_type != "QuantizeLinear" or node.inputs[0] in graph.initializers:
            continue
        readers = [graph.nodes[i] for i in graph.consumers.get(node.outputs[0], [])]
        dequantized = [r.outputs[0] for r in readers if r.op_type == "DequantizeLinear"]
        dequantized += [written_out_result(graph, r) for r in readers if is_written_out_dequantize(r.name)]
        if dequantized:
            counterparts[node.inputs[0]] = dequantized[0]
    return counterparts


def compare_models(
    float_model: LoadedModel,
    int8_model: LoadedModel,
    data: Dataset,
    *,
    latency_runs: int = LATENCY_RUNS,
    threads: int = 0,
    progress: Progress = NO_PROGRESS,
) -> Comparison:
    """Errors, accuracy, latency and size of both models on ``data``."""
    require_labels_fit(data, float_model)
    errors = analyse_errors(float_model, int8_model, data, progress=progress)
    float_ms, int8_ms = measure_latency(
        float_model, int8_model, data, runs=latency_runs, threads=threads, progress=progress
    )
    return Comparison(
        errors=errors,
        float32=ModelScore(errors.float_top1, float_ms, float_model.file_size, float_model.unstored_parameters()),
        int8=ModelScore(errors.int8_top1, int8_ms, int8_model.file_size),
        threads=threads,
    )


def analyse_errors(
    float_model: LoadedModel, int8_model: LoadedModel, data: Dataset, *, progress: Progress = NO_PROGRESS
) -> ErrorAnalysis:
    """Run both models over ``data`` with intermediate tensors exposed and accumulate their differences.

    The next batch runs while this one's differences are summed (:func:`~.prefetch.for_each_prefetched`).
    """
    require_same_inputs(float_model, int8_model)
    outputs = list(float_model.graph.outputs)
    pairs = {
        name: dq for name, dq in dequantized_counterparts(int8_model).items()
        if name in float_model.graph.tensors and name not in outputs
    }
    float_runner = BatchRunner(float_model, cpu_session(float_model.proto, outputs=list(pairs)))
    int8_runner = BatchRunner(int8_model, cpu_session(int8_model.proto, outputs=list(pairs.values())))
    float_names = outputs + list(pairs)
    int8_names = list(int8_model.graph.outputs) + list(pairs.values())

    output_errors = {name: ErrorAccumulator() for name in outputs}
    class_id_outputs: set[str] = set()
    layer_errors = {name: ErrorAccumulator() for name in pairs}
    scored = scored_output(float_model, data.labels)
    top1 = _Top1(data.labels)
    done = 0
    progress.report("Comparing", 0, data.count)

    def run_both(feed: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return float_runner.run(float_names, feed), int8_runner.run(int8_names, feed)

    def absorb(feed: dict[str, np.ndarray], runs: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
        nonlocal done
        float_values, int8_values = dict(zip(float_names, runs[0])), dict(zip(int8_names, runs[1]))
        for name, int8_name in zip(outputs, int8_model.graph.outputs):
            _require_same_shape(name, float_values[name], int8_values[int8_name])
            if _class_ids(float_values[name]) is not None:
                class_id_outputs.add(name)
            else:
                output_errors[name].update(float_values[name], int8_values[int8_name])
        for name, dq in pairs.items():
            _require_same_shape(name, float_values[name], int8_values[dq])
            layer_errors[name].update(float_values[name], int8_values[dq])
        top1.update(float_values[scored.name], int8_values[int8_model.graph.outputs[scored.index]], done)
        done += len(next(iter(feed.values())))
        progress.report("Comparing", done, data.count)

    for_each_prefetched(run_both, float_runner.feeds(data), absorb)
    return ErrorAnalysis(
        samples=data.count,
        outputs={
            name: NotMeasured(CLASS_IDS) if name in class_id_outputs else acc for name, acc in output_errors.items()
        },
        layers=_layer_table(float_model, {**layer_errors, **_quantized_outputs(int8_model, output_errors, class_id_outputs)}),
        float_top1=top1.float_accuracy,
        int8_top1=top1.int8_accuracy,
        agreement=top1.agreement,
        scored_output=scored.name if top1.agreement is not None else None,
    )


def measure_latency(
    float_model: LoadedModel,
    int8_model: LoadedModel,
    data: Dataset,
    *,
    runs: int = LATENCY_RUNS,
    warmup: int = 5,
    threads: int = 0,
    progress: Progress = NO_PROGRESS,
) -> tuple[float, float]:
    """Median latency (ms) of one sample, or of one batch when the float model fixes its batch size,
    through both models, alternating runs so both see the same machine state."""
    require_same_inputs(float_model, int8_model)
    float_ms, int8_ms = alternating_latency(
        [float_model, int8_model], data, runs=runs, warmup=warmup, threads=threads, progress=progress
    )
    return float_ms, int8_ms


def require_same_inputs(float_model: LoadedModel, int8_model: LoadedModel) -> None:
    """Both models must take the same inputs to run on the same samples: say so before running either."""
    float_inputs, int8_inputs = ([t.name for t in m.input_specs()] for m in (float_model, int8_model))
    if sorted(float_inputs) != sorted(int8_inputs):
        raise Q8Error(
            f"The float32 and int8 models take different inputs (float32: {', '.join(float_inputs)}; "
            f"int8: {', '.join(int8_inputs)}): compare a model with its own int8 version."
        )


def _require_same_shape(tensor: str, float_value: np.ndarray, int8_value: np.ndarray) -> None:
    """Two unrelated models may share input and tensor names (exported by the same tool)."""
    if float_value.shape != int8_value.shape:
        raise Q8Error(
            f"The models disagree on the shape of {tensor!r} (float32 {list(float_value.shape)}, int8 "
            f"{list(int8_value.shape)}): compare a model with its own int8 version."
        )


def require_labels_fit(data: Dataset, model: LoadedModel) -> None:
    """Before measuring accuracy: a class id the model cannot output would make it silently 0%.

    Only where labels are used: calibration ignores them, so a superset's labels do not block it.
    """
    if data.labels is None:
        return
    low, high = int(data.labels.min()), int(data.labels.max())
    scored = scored_output(model, data.labels)
    classes = scored.classes
    if low < 0 or (classes is not None and high >= classes):
        if not classes:
            what = "class ids start at 0"
        elif len(model.graph.outputs) == 1:
            what = f"the model's output has {classes} classes (0 to {classes - 1})"
        else:
            what = (f"no output of the model has that many classes: top-1 would be scored on {scored.name!r}, "
                    f"which has {classes} (0 to {classes - 1})")
        raise Q8Error(f"{Path(data.source).name}: 'labels' range from {low} to {high}, but {what}.")


class ScoredOutput(NamedTuple):
    """The model output top-1 accuracy and agreement are measured on, and its class count where the graph fixes it."""

    index: int
    name: str
    classes: int | None


def scored_output(model: LoadedModel, labels: np.ndarray | None) -> ScoredOutput:
    """With labels, the classifier output whose classes cover them most closely: features or an auxiliary
    head exported before the logits ([N, 16] before [N, 4] for labels 0..3) must not be scored against
    them. Failing that, the first whose class count is unknown; then the first classifier output, whose
    too few classes :func:`require_labels_fit` reports. Without labels, the first classifier output; with
    none, the first output."""
    outputs = model.graph.outputs
    classifiers = [
        ScoredOutput(index, name, _class_count(model, name))
        for index, name in enumerate(outputs) if _is_classifier(model, name)
    ]
    if not classifiers:
        return ScoredOutput(0, outputs[0], None)
    if labels is None or not labels.size:
        return classifiers[0]
    high = int(labels.max())

    def misfit(candidate: ScoredOutput) -> tuple[int, int]:
        if candidate.classes is None:
            return 1, 0
        return (0, candidate.classes) if candidate.classes > high else (2, 0)

    return min(classifiers, key=misfit)  # min keeps the first of equals


def _is_classifier(model: LoadedModel, output: str) -> bool:
    """Whether the graph says ``output`` is class ids (an ArgMax's, or integers [N] / [N, 1]) or scores
    [N, C] (trailing 1s allowed), C fixed at 2 or more or unknown."""
    graph = model.graph
    if _argmax_of(model, output) is not None:
        return True
    info = graph.tensors[output]
    dims = _score_dims(info.shape or ())
    if (info.dtype or "").startswith(("int", "uint")):
        return len(dims) == 1 or (len(dims) == 2 and dims[1] == 1)
    return len(dims) == 2 and not (isinstance(dims[1], int) and dims[1] < 2)


def _class_count(model: LoadedModel, output: str) -> int | None:
    """Classes of a classifier output when it is [N, C] (trailing 1s allowed) with C fixed, or the class ids
    an ArgMax picks from such scores."""
    graph = model.graph
    argmax = _argmax_of(model, output)
    if argmax is not None:
        shape = graph.tensors[argmax.inputs[0]].shape or ()
        axis = int(argmax.attributes.get("axis", 0))  # type: ignore[call-overload]
        classes = shape[axis] if -len(shape) <= axis < len(shape) else None
        return classes if isinstance(classes, int) and classes >= 2 else None
    dims = _score_dims(graph.tensors[output].shape or ())
    return dims[1] if len(dims) == 2 and isinstance(dims[1], int) and dims[1] >= 2 else None


def _argmax_of(model: LoadedModel, output: str) -> Node | None:
    """The ArgMax node that computes ``output``, if one does."""
    graph = model.graph
    producer = graph.nodes[graph.producer[output]] if output in graph.producer else None
    return producer if producer is not None and producer.op_type == "ArgMax" else None


class _Top1:
    """Top-1 accuracy of both models and their agreement, for classifier-shaped outputs [N, classes]
    (trailing axes of size 1 ignored) or class ids [N] / [N, 1]."""

    def __init__(self, labels: np.ndarray | None) -> None:
        self.labels = labels
        self.total = self.float_correct = self.int8_correct = self.agree = 0
        self.applicable = True

    def update(self, float_out: np.ndarray, int8_out: np.ndarray, start: int) -> None:
        float_pred, int8_pred = _predictions(float_out), _predictions(int8_out)
        if float_pred is None or int8_pred is None:
            self.applicable = False
            return
        self.total += len(float_pred)
        self.agree += int((float_pred == int8_pred).sum())
        if self.labels is not None:
            truth = self.labels[start:start + len(float_pred)]
            self.float_correct += int((float_pred == truth).sum())
            self.int8_correct += int((int8_pred == truth).sum())

    @property
    def agreement(self) -> float | None:
        return self.agree / self.total if self.applicable and self.total else None

    @property
    def float_accuracy(self) -> float | None:
        return self.float_correct / self.total if self._labelled else None

    @property
    def int8_accuracy(self) -> float | None:
        return self.int8_correct / self.total if self._labelled else None

    @property
    def _labelled(self) -> bool:
        return self.applicable and self.labels is not None and self.total > 0


def _predictions(output: np.ndarray) -> np.ndarray | None:
    """The class of each sample: class ids as they are, scores [N, classes] by their argmax; None otherwise."""
    ids = _class_ids(output)
    if ids is not None:
        return ids
    scores = _as_scores(output)
    return scores.argmax(axis=1) if scores.ndim == 2 and scores.shape[1] >= 2 else None


def _class_ids(output: np.ndarray) -> np.ndarray | None:
    """An integer output with one value per sample ([N] or [N, 1], as ArgMax gives) as [N]; None otherwise."""
    one_per_sample = output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)
    return output.reshape(-1) if one_per_sample and np.issubdtype(output.dtype, np.integer) else None


def _as_scores(output: np.ndarray) -> np.ndarray:
    """[N, C, 1, 1] (a convolutional head) as [N, C]; other shapes unchanged."""
    return output.reshape(_score_dims(output.shape))


def _score_dims(dims: Sequence[int | str | None]) -> tuple[int | str | None, ...]:
    """A shape without the trailing axes of size 1 beyond the second: [N, C, 1, 1] is scores [N, C]."""
    dims = tuple(dims)
    while len(dims) > 2 and dims[-1] == 1:
        dims = dims[:-1]
    return dims


def _quantized_outputs(int8_model: LoadedModel, output_errors: dict[str, ErrorAccumulator],
                       class_ids: set[str]) -> dict[str, ErrorAccumulator]:
    """The errors of the model outputs the int8 model quantizes (a DequantizeLinear writes them): the last
    layer's error, a row of the per-layer table like any other quantized activation."""
    graph = int8_model.graph
    quantized = {
        name for name in graph.outputs
        if graph.producer.get(name) is not None and graph.nodes[graph.producer[name]].op_type == "DequantizeLinear"
    }
    return {name: acc for name, acc in output_errors.items() if name in quantized and name not in class_ids}


def _layer_table(float_model: LoadedModel, errors: dict[str, ErrorAccumulator]) -> list[LayerError]:
    """One row per compared tensor, named by the node that computes it; a model input, which no node
    computes, by its own name (a model with two inputs had two rows called "(input)")."""
    rows = []
    for tensor, acc in errors.items():
        producer = float_model.graph.producer.get(tensor)
        node = float_model.graph.nodes[producer] if producer is not None else None
        rows.append(LayerError(
            tensor, node.name if node else tensor, node.op_type if node else INPUT_OP,
            acc.sqnr_db, acc.mse, acc.cosine, acc.max_abs,
        ))
    return sorted(rows, key=lambda row: row.sqnr_db)
