"""Prepare a float model for quantization: fold BatchNorm, infer shapes, raise the opset when needed.

onnxruntime's ``quant_pre_process`` does the folding and shape inference, but its symbolic
shape inference fails on many exported models, and its graph optimiser only logs its own
failures. We try the full path, fall back step by step, and say in the notes what happened.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import onnx
from onnxruntime.quantization.shape_inference import quant_pre_process

from .errors import Q8Error
from .model import LoadedModel, model_from_proto

PER_CHANNEL_MIN_OPSET = 13  # DequantizeLinear's `axis` attribute arrived in opset 13


@dataclass
class PreparedModel:
    """The model that is calibrated and quantized, and notes on how it was derived from the source."""

    model: LoadedModel
    notes: list[str] = field(default_factory=list)


def prepare_for_quantization(source: LoadedModel, *, per_channel: bool) -> PreparedModel:
    notes: list[str] = []
    proto = _pre_process(source.proto, notes)
    if per_channel:
        proto = _ensure_opset(proto, PER_CHANNEL_MIN_OPSET, notes)
    return PreparedModel(model_from_proto(proto, source.path), notes)


def _pre_process(proto: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    batchnorms = _count(proto, "BatchNormalization")
    attempts: list[tuple[str, dict[str, bool]]] = [
        ("ONNX shape inference, graph optimisation", {"skip_symbolic_shape": True}),
    ]
    if _onnx_infers_every_shape(proto):
        notes.append("ONNX shape inference gives every tensor a shape; symbolic shape inference is not needed.")
    else:
        attempts.insert(0, ("symbolic shape inference, graph optimisation", {}))
    for description, options in attempts:
        try:
            result = _run_pre_process(proto, **options)
        except Exception as exc:  # onnxruntime's pre-processing raises anything from sympy to KeyError
            notes.append(f"Pre-processing with {description} failed ({_short(exc)}).")
            continue
        notes.append(f"Pre-processed with {description}.")
        folded = batchnorms - _count(result, "BatchNormalization")
        if folded:
            notes.append(f"Folded {folded} BatchNormalization node(s) into the preceding layers.")
        elif batchnorms:
            notes.append(f"{batchnorms} BatchNormalization node(s) could not be folded and stay in the graph.")
        return result
    notes.append("Quantizing the model as loaded, without pre-processing.")
    return proto


def _onnx_infers_every_shape(proto: onnx.ModelProto) -> bool:
    """Whether ONNX's own shape inference types and shapes every node output (named dims allowed).

    onnxruntime's symbolic shape inference exists for what ONNX cannot follow: contrib operators
    and computed reshapes (transformers). Where ONNX follows everything it adds nothing but its
    sympy import, which costs more than pre-processing a small model.
    """
    if any(node.domain not in ("", "ai.onnx") for node in proto.graph.node):
        return False
    try:
        graph = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # the checker raises InferenceError, ValueError (>2 GB), ... by model
        return False
    typed = {vi.name: vi.type for vi in itertools.chain(graph.value_info, graph.output, graph.input)}
    for name in (output for node in graph.node for output in node.output if output):
        tensor = typed[name].tensor_type if name in typed else None
        if tensor is None or not tensor.HasField("shape"):
            return False
        if any(not (dim.HasField("dim_value") or dim.HasField("dim_param")) for dim in tensor.shape.dim):
            return False
    return True


def _run_pre_process(proto: onnx.ModelProto, **options: bool) -> onnx.ModelProto:
    """quant_pre_process in a private folder, with its logging silenced.

    It gets a copy: on its fallback path it moves the weights out of the protobuf it is handed.
    Symbolic shape inference, when it fails, saves ``sym_shape_infer_temp.onnx`` into the working
    directory; only that step runs with the private folder as working directory, because changing
    it affects every thread of the process (the GUI's too).
    """
    symbolic = not options.get("skip_symbolic_shape", False)
    with tempfile.TemporaryDirectory(prefix="q8studio-prep-") as tmp, _quiet_onnxruntime():
        scratch = _working_directory(tmp) if symbolic else nullcontext()
        output = Path(tmp) / "prepared.onnx"
        with scratch:
            quant_pre_process(copy.deepcopy(proto), str(output), **options)
        if not output.is_file():
            raise Q8Error("pre-processing wrote no model")
        return onnx.load(str(output))


def _ensure_opset(proto: onnx.ModelProto, minimum: int, notes: list[str]) -> onnx.ModelProto:
    current = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if current >= minimum:
        return proto
    try:
        upgraded = onnx.version_converter.convert_version(proto, minimum)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # the converter raises RuntimeError/ValidationError/IndexError by op
        raise Q8Error(
            f"Per-channel quantization needs opset {minimum}, and this opset-{current} model cannot be "
            f"upgraded ({_short(exc)}); use per-tensor granularity."
        ) from None
    notes.append(f"Upgraded the opset from {current} to {minimum} (per-channel DequantizeLinear needs it).")
    return upgraded


def _count(proto: onnx.ModelProto, op_type: str) -> int:
    return sum(1 for node in proto.graph.node if node.op_type == op_type)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


@contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """onnxruntime's quantization tools log tracebacks and advice through the root logger."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(previous)


@contextmanager
def _working_directory(folder: str) -> Iterator[None]:
    """Run the block with ``folder`` as the working directory, then restore the previous one."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
