"""Creating ONNX Runtime sessions the same way everywhere (CPU, fixed threads, quiet logs)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from pathlib import Path

import onnx
import onnxruntime as ort
from onnx import numpy_helper

from .errors import Q8Error, first_line
from .skeleton import SplitModel, with_weights_outside


def session_options(*, threads: int = 0, spinning: bool = False) -> ort.SessionOptions:
    """Options for a CPU session; ``threads=0`` lets ORT use every core.

    ``spinning`` keeps ORT's default of intra-op threads busy-waiting between runs: right for
    timing (it is what a deployment gets), wrong for work done behind an interactive window or
    beside numpy on a small machine, where the spinning threads take the cores everyone else needs.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def cpu_session(
    model: onnx.ModelProto | SplitModel | bytes | Path,
    *,
    outputs: Sequence[str] = (),
    threads: int = 0,
    spinning: bool = False,
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """An ORT CPU session (``options`` overrides ``threads``/``spinning``) that can also return the
    intermediate tensors ``outputs`` (not for a serialized model or a file); load failures become
    Q8Error. A file is read by ONNX Runtime itself, external data included.

    A model's large weights reach ONNX Runtime in memory, as external initializers
    (:class:`~.skeleton.SplitModel`), not serialized with the graph: creating a VGG-19 session took
    2.1 s that way, 0.8 s this way. ONNX Runtime copies them while it creates the session; their
    arrays are dropped afterwards.
    """
    options = options or session_options(threads=threads, spinning=spinning)
    if isinstance(model, onnx.ModelProto):
        model = with_weights_outside(model)
    if isinstance(model, SplitModel):
        payload = with_outputs(model.shell, outputs).SerializeToString()
        weights = [numpy_helper.to_array(tensor) for tensor in model.weights]  # alive until ONNX Runtime copied them
        if weights:
            options.add_external_initializers(
                [tensor.name for tensor in model.weights], [ort.OrtValue.ortvalue_from_numpy(array) for array in weights]
            )
    elif outputs:
        raise ValueError("exposing intermediate tensors needs the model in memory, not serialized or in a file")
    else:
        payload = str(model) if isinstance(model, Path) else model
    try:
        return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated exception types for bad models
        raise Q8Error(f"ONNX Runtime cannot load the model: {first_line(exc)}") from None


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns the given intermediate tensors."""
    augmented = copy.deepcopy(model)
    existing = {o.name for o in augmented.graph.output}
    typed = {vi.name: vi for vi in itertools.chain(model.graph.value_info, model.graph.input)}
    for name in names:
        if name not in existing:
            augmented.graph.output.append(copy.deepcopy(typed[name]) if name in typed else onnx.ValueInfoProto(name=name))
    return augmented
