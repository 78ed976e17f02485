"""One streaming pass over the calibration data that records statistics of every tensor to quantize.

The model is run with those tensors exposed as extra outputs; each batch's values update
:class:`~q8studio.core.stats.TensorStats` and are dropped at once, so memory does not grow
with the number of samples (onnxruntime's own histogram calibrators keep them all).
"""

from __future__ import annotations

import copy
import itertools

import onnx
from .data import Dataset
from .model import LoadedModel
from .optypes import QDQ_QUANTIZABLE_OPS
from .progress import NO_PROGRESS, Progress
from .session import cpu_session
from .stats import TensorStats

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


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns the given intermediate tensors."""
    augmented = copy.deepcopy(model)
    existing = {o.name for o in augmented.graph.output}
    typed = {vi.name: vi for vi in itertools.chain(model.graph.value_info, model.graph.input)}
    for name in names:
        if name not in existing:
            augmented.graph.output.append(copy.deepcopy(typed[name]) if name in typed else onnx.ValueInfoProto(name=name))
    return augmented


def batch_size_for(model: LoadedModel, preferred: int = 8) -> int:
    """Run several samples per call when the model's batch axis allows it (faster), else one."""
    sizes = set()
    for spec in model.input_specs():
        first = spec.shape[0] if spec.shape else None
        sizes.add(first if isinstance(first, int) and first > 0 else preferred)
    return min(sizes) if sizes else 1


def collect_statistics(
    model: LoadedModel,
    data: Dataset,
    *,
    ema_momentum: float = 0.9,
    progress: Progress = NO_PROGRESS,
) -> dict[str, TensorStats]:
    """Run ``model`` over ``data`` once and return statistics for each tensor to quantize."""
    names = tensors_to_calibrate(model.proto)
    session = cpu_session(with_outputs(model.proto, names))
    stats = {name: TensorStats(name, momentum=ema_momentum) for name in names}
    batch_size = batch_size_for(model)
    done = 0
    progress.report("Calibrating", 0, data.count)
    for feed in data.batches(batch_size):
        values = session.run(names, feed)
        for name, value in zip(names, values):
            stats[name].update(value)
        del values
        done += len(next(iter(feed.values())))
        progress.report("Calibrating", done, data.count)
    return stats
