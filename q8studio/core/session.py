"""Creating ONNX Runtime sessions the same way everywhere (CPU, fixed threads, quiet logs)."""

from __future__ import annotations

import onnx
import onnxruntime as ort

from .errors import Q8Error


def cpu_session(model: onnx.ModelProto | bytes | str, *, threads: int = 0) -> ort.InferenceSession:
    """An ORT CPU session; ``threads=0`` lets ORT use every core. Load failures become Q8Error."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    payload = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    try:
        return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated exception types for bad models
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Q8Error(f"ONNX Runtime cannot load the model: {message}") from None
