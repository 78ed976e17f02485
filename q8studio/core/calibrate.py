"""One streaming pass over the calibration data that records statistics of every tensor to quantize.

The model is run with those tensors exposed as extra outputs; each batch's values update
:class:`~q8studio.core.stats.TensorStats` and are dropped at once, so memory does not grow
with the number of samples (onnxruntime's own histogram calibrators keep them all). A Concat
whose inputs are all calibrated is not exposed: its statistics are its inputs' combined. A large
activation that cannot be negative is not exposed either, but summarised inside the model
(:mod:`.summaries`).
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from .data import Dataset
from .model import LoadedModel
from .optypes import QDQ_QUANTIZABLE_OPS
from .prefetch import for_each_prefetched
from .progress import NO_PROGRESS, Progress
from .session import BatchRunner, cpu_session
from .skeleton import with_weights_outside
from .stats import BatchExtent, TensorStats
from .summaries import add_summary_nodes, plan_summaries

_FLOAT_ELEM_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}


def tensors_to_calibrate(model: onnx.ModelProto) -> list[str]:
    """Float activations entering or leaving quantizable ops: the tensors onnxruntime needs ranges for."""
    typed = {vi.name: vi for vi in itertools.chain(model.graph.value_info, model.graph.output, model.graph.input)}
    initializers = {t.name for t in model.graph.initializer}
    names: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type not in QDQ_QUANTIZABLE_OPS:
            continue
        for name in itertools.chain(node.input, node.output):
            vi = typed.get(name)
            if vi is None or name in initializers or not vi.type.HasField("tensor_type"):
                continue
            if vi.type.tensor_type.elem_type in _FLOAT_ELEM_TYPES:
                names[name] = None
    return list(names)


def concat_parts(model: onnx.ModelProto, names: list[str]) -> dict[str, list[str]]:
    """The Concat outputs among ``names`` whose inputs are all among ``names``, with those inputs.

    A Concat's output holds exactly its inputs' values, so its statistics follow from theirs; not
    exposing it spares ONNX Runtime returning the largest activations of an Inception- or
    SqueezeNet-style model (a third of SqueezeNet's calibrated values; each exposed output costs
    inference time even when bound to a preallocated buffer) and numpy scanning them again.
    Graph order, so a Concat of Concats comes after its parts.
    """
    wanted = set(names)
    return {
        node.output[0]: list(node.input)
        for node in model.graph.node
        if node.op_type == "Concat" and node.output[0] in wanted and node.input
        and all(name in wanted for name in node.input)
    }


def collect_statistics(
    model: LoadedModel,
    data: Dataset,
    *,
    names: list[str] | None = None,
    ema_momentum: float = 0.9,
    histograms: bool = True,
    histogram_values: int = 0,
    progress: Progress = NO_PROGRESS,
) -> dict[str, TensorStats]:
    """Run ``model`` over ``data`` once and return statistics of ``names`` (default: every
    tensor onnxruntime might quantize), with histograms unless ``histograms`` is False, each
    binning at most ``histogram_values`` values of a sample (0: all).

    Inference of the next batch runs while this one updates the statistics
    (:func:`~.prefetch.for_each_prefetched`); at most two batches of activations are alive at
    once, whatever the number of samples.
    """
    names = tensors_to_calibrate(model.proto) if names is None else names
    combined = concat_parts(model.proto, names)
    exposed = [name for name in names if name not in combined]
    summaries = plan_summaries(model, exposed, histogram_values)
    whole = [name for name in exposed if name not in summaries]
    fetched = whole + [output for summary in summaries.values() for output in (summary.maxima, summary.grid)]
    split = with_weights_outside(model.proto)
    add_summary_nodes(split.shell, summaries.values())
    # Spinning pays when the numpy beside each run is light: min/max alone, or histograms of samples taken
    # in the model. Binning whole tensors beside it is not (the demo's 200 samples: 38 ms spinning, 34 without).
    light = not histograms or bool(summaries)
    session = cpu_session(split, outputs=fetched, spinning="within-runs" if light else "never")
    stats = {
        name: TensorStats(
            name, momentum=ema_momentum, histogram=histograms, values_per_sample=histogram_values,
            parts=tuple(combined.get(name, ())),
        )
        for name in names
    }
    done = 0
    progress.report("Calibrating", 0, data.count)

    def absorb(feed: dict[str, np.ndarray], values: list[np.ndarray]) -> None:
        nonlocal done
        samples = len(next(iter(feed.values())))
        got = dict(zip(fetched, values))
        extents = {name: stats[name].update(got[name], samples) for name in whole}
        for name, summary in summaries.items():
            extents[name] = stats[name].update_from_grid(
                got[summary.grid], got[summary.maxima], summary.values_per_sample, summary.stride)
        for name, parts in combined.items():
            extents[name] = BatchExtent.union(extents[part] for part in parts)
            stats[name].add_extent(extents[name])
        done += samples
        progress.report("Calibrating", done, data.count)

    runner = BatchRunner(model, session)
    for_each_prefetched(lambda feed: runner.run(fetched, feed), runner.feeds(data), absorb)
    for name, parts in combined.items():
        stats[name].combine_histograms([stats[part] for part in parts])
    return stats
