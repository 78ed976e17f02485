"""Creating ONNX Runtime sessions the same way everywhere (CPU, fixed threads, quiet logs)."""

from __future__ import annotations

import onnx
import onnxruntime as ort

from .errors import Q8Error


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
    model: onnx.ModelProto | bytes,
    *,
    threads: int = 0,
    spinning: bool = False,
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """An ORT CPU session (``options`` overrides ``threads``/``spinning``); load failures become Q8Error."""
    options = options or session_options(threads=threads, spinning=spinning)
    payload = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    try:
        return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated exception types for bad models
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Q8Error(f"ONNX Runtime cannot load the model: {message}") from None
