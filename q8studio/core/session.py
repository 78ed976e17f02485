"""Creating ONNX Runtime sessions the same way everywhere (CPU, fixed threads, quiet logs)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import onnx
import onnxruntime as ort
from onnx import numpy_helper

from .errors import Q8Error, first_line
from .skeleton import SplitModel, with_weights_outside


Spinning = Literal["never", "within-runs", "always"]
"""When ONNX Runtime's intra-op threads busy-wait for work instead of sleeping (see session_options)."""


def session_options(*, threads: int = 0, spinning: Spinning = "never") -> ort.SessionOptions:
    """Options for a CPU session; ``threads=0`` lets ORT use every core.

    ``spinning``:
    - ``"always"``, ORT's default, also between runs: right for timing, it is what a deployment gets.
    - ``"within-runs"``: while a run lasts, and not once it returns. Right for running the model
      back to back beside light numpy work: min/max calibration of SqueezeNet (200 samples, 2 cores,
      10 fresh processes each) took a median 0.71 s instead of 0.79 s with ``"never"``, since waking
      a sleeping thread for each of the model's many small parallel sections costs more than the spin.
    - ``"never"``: for work behind an interactive window, whose event loop needs a core, or beside
      heavy numpy work: with histograms to bin, that calibration took the same time either way
      (medians 0.68-0.70 s, percentile and entropy, 8 processes each).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if spinning == "never":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spinning == "within-runs":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def cpu_session(
    model: onnx.ModelProto | SplitModel | bytes | Path,
    *,
    outputs: Sequence[str] = (),
    threads: int = 0,
    spinning: Spinning = "never",
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
