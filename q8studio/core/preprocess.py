"""Prepare a float model for quantization: fold BatchNorm, infer shapes, raise the opset when needed.

These are the steps of onnxruntime's ``quant_pre_process``: its opset upgrade, symbolic shape
inference, graph optimisation (which folds BatchNorm) and ONNX shape inference. Its symbolic
shape inference fails on many exported models, and its graph optimiser only logs its own failures;
we try the full path, fall back step by step, and say in the notes what happened. One step is
ours: a Sum of two inputs becomes an Add, the same operation, because the quantizer handles Add
and leaves Sum in float; and a Gemm's alpha and beta are folded into its constants, which the
quantizer would otherwise get wrong.

Only the optimiser reads weight values, and it gets them in memory, never serialized. The steps
before it run on the model's skeleton (:mod:`.skeleton`) through ``quant_pre_process`` itself,
and so does our upgrade to opset 13; the optimiser runs as ``quant_pre_process`` runs it, an ONNX
Runtime session at the basic level that saves its optimised graph, with the large weights handed
over as external initializers (the skeleton's result is not put back together with them first);
ONNX shape inference of the result runs on its skeleton (:func:`~.model.model_from_proto`). On
VGG-19 (575 MB) pre-processing took 29 s with everything on the whole model, 12 s with the
skeleton for the steps before optimisation, and 2.0 s this way.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization.quant_utils import add_pre_process_metadata
from onnxruntime.quantization.shape_inference import quant_pre_process

from .errors import Q8Error, first_line
from .model import LoadedModel, model_from_proto
from .renaming import fresh_name
from .opsets import converted, onnx_opset
from .quietlog import quiet_root_logger
from .session import cpu_session, session_options
from .skeleton import SplitModel, skeleton_of, transformed, with_weights_outside
from .subgraphs import all_nodes

PER_CHANNEL_MIN_OPSET = 13  # DequantizeLinear's `axis` attribute arrived in opset 13
INT8_MAXPOOL_OPSET = 12  # MaxPool takes int8 from opset 12; onnxruntime's quantizer leaves it float below


@dataclass
class PreparedModel:
    """The model that is calibrated and quantized, and notes on how it was derived from the source."""

    model: LoadedModel
    notes: list[str] = field(default_factory=list)


def prepare_for_quantization(source: LoadedModel, *, per_channel: bool) -> PreparedModel:
    """onnxruntime's pre-processing, the steps that read no weight values run on the skeleton."""
    notes = list(source.notes)
    symbolic = not _onnx_infers_every_shape(source.proto)
    if not symbolic:
        notes.append("ONNX shape inference gives every tensor a shape; symbolic shape inference is not needed.")
    minimum = PER_CHANNEL_MIN_OPSET if per_channel else 0
    shapes = _SHAPE_INFERENCE[False]

    def on_skeleton(skeleton: onnx.ModelProto) -> onnx.ModelProto:
        nonlocal shapes
        skeleton, shapes = _shape_stage(skeleton, symbolic, notes)
        return _opset_for_int8_maxpool(_ensure_opset(skeleton, minimum, notes), notes)

    opset = onnx_opset(source.proto)
    if symbolic or opset < max(minimum, 11) or _maxpool_below_int8_opset(source.proto):
        split = transformed(source.proto, on_skeleton)
    else:
        split = with_weights_outside(source.proto)
    proto = _optimisation_stage(split, shapes, notes)
    _two_input_sums_as_adds(proto, notes)
    _gemm_scales_folded(proto, notes)
    _gemm_biases_per_output(proto, notes)
    return PreparedModel(model_from_proto(proto, source.path), notes)


def _shape_stage(proto: onnx.ModelProto, symbolic: bool, notes: list[str]) -> tuple[onnx.ModelProto, str]:
    """The steps of ``quant_pre_process`` before graph optimisation (meant for the skeleton).

    They are: replacing Upsample and raising the opset to 11 when it is 10 or less, and symbolic
    shape inference if asked. When that fails, the first step is tried alone. Returns the model
    (``proto`` itself when nothing was done) and which shape inference it had.
    """
    opset = onnx_opset(proto)
    attempts = ([True] if symbolic else []) + ([False] if opset <= 10 else [])
    for attempt in attempts:
        try:
            result = _run_pre_process(proto, symbolic=attempt)
        except Exception as exc:  # onnxruntime's pre-processing raises anything from sympy to KeyError
            notes.append(f"Pre-processing with {_SHAPE_INFERENCE[attempt]} failed ({_short(exc)}).")
            continue
        if onnx_opset(result) != opset:
            notes.append(f"onnxruntime's pre-processing upgraded the opset from {opset} to {onnx_opset(result)}.")
        return result, _SHAPE_INFERENCE[attempt]
    return proto, _SHAPE_INFERENCE[False]


_SHAPE_INFERENCE = {True: "symbolic shape inference", False: "ONNX shape inference"}


def _optimisation_stage(split: SplitModel, shapes: str, notes: list[str]) -> onnx.ModelProto:
    """Graph optimisation, which folds BatchNorm into the weights."""
    batchnorms = _count(split.shell, "BatchNormalization")
    try:
        result = _optimised(split)
    except Exception as exc:  # ONNX Runtime raises several unrelated exception types for bad models
        notes.append(f"Pre-processing with graph optimisation failed ({_short(exc)}).")
        notes.append("Quantizing the model without graph optimisation.")
        return split.assembled()
    notes.append(f"Pre-processed with {shapes}, graph optimisation.")
    _drop_weight_inputs(result, split.shell)
    _only_operator_sets_in_use(result, split.shell)
    _residual_joins_unfused(result, split.shell, notes)
    folded = batchnorms - _count(result, "BatchNormalization")
    if folded:
        notes.append(f"Folded {folded} BatchNormalization node(s) into the preceding layers.")
    elif batchnorms:
        notes.append(f"{batchnorms} BatchNormalization node(s) could not be folded and stay in the graph.")
    return result


MATMUL_ADD_FUSION = "/MatMulAddFusion"
"""How ONNX Runtime's optimiser names the Gemm it makes of a MatMul and an Add: after the MatMul."""


def _residual_joins_unfused(proto: onnx.ModelProto, before: onnx.ModelProto, notes: list[str]) -> None:
    """Put back, in place, the MatMul and the Add the optimiser fused into a Gemm when the Add joins
    another activation (a residual join after a bias-free projection) rather than adding a bias.

    onnxruntime's quantizer quantizes a Gemm's C only as a constant bias: such a Gemm stays float,
    whereas the MatMul and the Add, apart, each become int8. The two nodes come back as they were in
    ``before`` (the graph the optimiser was given), names and tensors included.
    """
    constants = {t.name for t in proto.graph.initializer}
    by_name = {node.name: node for node in before.graph.node}
    producer = {name: node for node in before.graph.node for name in node.output}
    nodes = list(proto.graph.node)
    restored = 0
    for index, gemm in reversed(list(enumerate(nodes))):
        if gemm.op_type != "Gemm" or not gemm.name.endswith(MATMUL_ADD_FUSION) or len(gemm.input) < 3:
            continue
        matmul, add = by_name.get(gemm.name.removesuffix(MATMUL_ADD_FUSION)), producer.get(gemm.output[0])
        if gemm.input[2] in constants or matmul is None or matmul.op_type != "MatMul" or add is None or add.op_type != "Add":
            continue
        product = onnx.NodeProto()
        product.CopyFrom(matmul)
        product.input[:] = gemm.input[:2]
        join = onnx.NodeProto()
        join.CopyFrom(add)
        join.input[:] = [name if name == matmul.output[0] else gemm.input[2] for name in add.input]
        nodes[index:index + 1] = [product, join]
        restored += 1
    if restored:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        notes.append(f"Kept {restored} MatMul and Add pair(s) apart that graph optimisation fused into a Gemm: "
                     "each Add joins another activation, which would have kept the Gemm in float.")


def _two_input_sums_as_adds(proto: onnx.ModelProto, notes: list[str]) -> None:
    """Make every Sum of two inputs an Add, in place: the same operation at any opset (a Sum broadcasts
    as Add does from opset 8, and needs equal shapes before), which onnxruntime quantizes and runs as
    QLinearAdd, whereas it leaves Sum in float. Older exporters write residual joins as
    Sum (ResNet-50 of opset 9): with them in float, the convolution before each join also returned
    float, and the int8 model ran 2.7x faster than float32 instead of 3.1x. The node keeps its name
    and output, so exclusions, comparisons and the report still find it."""
    sums = [node for node in proto.graph.node if node.op_type == "Sum" and node.domain in ("", "ai.onnx")
            and len(node.input) == 2]
    for node in sums:
        node.op_type = "Add"
    if sums:
        notes.append(f"Made {len(sums)} two-input Sum node(s) Add nodes, which onnxruntime quantizes (it leaves Sum in float).")


def _gemm_scales_folded(proto: onnx.ModelProto, notes: list[str]) -> None:
    """Fold a Gemm's ``alpha`` into its constant B and ``beta`` into its constant C, in place (new initializers:
    B or C may be shared), leaving alpha = beta = 1. onnxruntime's quantizer writes C as an int32 bias with
    beta reset to 1 but C unscaled, so a Gemm with beta = 2 became another function (output SQNR 6.7 dB), and
    the worked integer example ignores alpha. The float result is the same up to float32 rounding."""
    constants = {tensor.name: tensor for tensor in proto.graph.initializer}
    folded = 0
    for node in proto.graph.node:
        if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: a for a in node.attribute}
        changed = False
        for attr, index in (("alpha", 1), ("beta", 2)):  # each attribute and the input it scales
            value = attrs[attr].f if attr in attrs else 1.0
            if value == 1.0:
                continue
            if index >= len(node.input) or not node.input[index]:  # no C: beta scales nothing
                attrs[attr].f, changed = 1.0, True
                continue
            tensor = constants.get(node.input[index])
            if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT:
                continue
            name = f"{node.input[index]}_{attr}_folded_{folded}"
            scaled = numpy_helper.to_array(tensor) * np.float32(value)
            proto.graph.initializer.append(numpy_helper.from_array(scaled.astype(np.float32), name))
            node.input[index] = name
            attrs[attr].f, changed = 1.0, True
        folded += changed
    if folded:
        notes.append(f"Folded alpha and beta of {folded} Gemm node(s) into their weight and bias: onnxruntime's "
                     "quantizer would keep the bias unscaled while setting beta to 1.")


def _gemm_biases_per_output(proto: onnx.ModelProto, notes: list[str]) -> None:
    """Give a Gemm's constant bias C one value per output column, in place (a new initializer: C may be
    shared), when it broadcasts one value or one row: shape [1], [1, N], or [M, N] of equal rows.
    onnxruntime's per-channel quantizer reads a bias value per output channel and failed on them
    ("index 1 is out of bounds"). Gemm broadcasts C to [M, N], so the function is the same."""
    constants = {tensor.name: tensor for tensor in proto.graph.initializer}
    taken = set(constants) | {value.name for value in proto.graph.input}
    taken |= {name for node in proto.graph.node for name in node.output}
    widened = 0
    for node in proto.graph.node:
        if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx") or len(node.input) < 3:
            continue
        weight, bias = constants.get(node.input[1]), constants.get(node.input[2])
        if weight is None or bias is None or bias.data_type != onnx.TensorProto.FLOAT or len(weight.dims) != 2:
            continue
        trans_b = next((attribute.i for attribute in node.attribute if attribute.name == "transB"), 0)
        columns = weight.dims[0] if trans_b else weight.dims[1]
        values = numpy_helper.to_array(bias)
        rows = values.reshape(-1, values.shape[-1]) if values.ndim else values.reshape(1, 1)
        if values.shape == (columns,) or rows.shape[1] not in (1, columns) or not (rows == rows[0]).all():
            continue
        name = fresh_name(f"{node.input[2]}_per_output", taken)
        row = np.broadcast_to(rows[0], (columns,)).astype(np.float32)
        proto.graph.initializer.append(numpy_helper.from_array(row, name))
        node.input[2] = name
        widened += 1
    if widened:
        notes.append(f"Gave {widened} Gemm bias(es) one value per output, as onnxruntime's per-channel "
                     "quantizer reads them (it failed on a broadcast value or row).")


def _drop_weight_inputs(model: onnx.ModelProto, source: onnx.ModelProto) -> None:
    """Remove the graph inputs that only list constants: every input but those ``source`` is fed.

    Models of IR version 3 list every initializer among the graph inputs too. When optimisation
    folds the nodes reading one (a ConstantOfShape computing a weight from a shape, as in the
    architectures of onnx's test data, or the Constant axes the opset upgrade gives an Unsqueeze),
    the initializer goes but its input stays, and ONNX Runtime requires it in every feed. And
    onnxruntime's quantizer adds scales and zero points without listing them, which IR 3 forbids:
    the model is raised to IR 4, which lists none of them. From IR 4 on, an input with an
    initializer is the model's own choice (a default the user may override) and stays.
    """
    initializers = {t.name for t in source.graph.initializer}
    fed = {vi.name for vi in source.graph.input if vi.name not in initializers}
    current = {t.name for t in model.graph.initializer}
    overridable = current if model.ir_version >= 4 else set()
    for value in [vi for vi in model.graph.input if vi.name not in fed | overridable]:
        model.graph.input.remove(value)
    model.ir_version = max(model.ir_version, 4)


def _only_operator_sets_in_use(model: onnx.ModelProto, source: onnx.ModelProto) -> None:
    """Drop, in place, the operator sets ONNX Runtime declares in every model it saves (ai.onnx.ml,
    com.microsoft.nchwc, org.pytorch.aten and five more) that neither a node nor ``source`` uses: the int8
    model then declares what it uses, as the model it came from did."""
    kept = {opset.domain for opset in source.opset_import} | {node.domain for node in all_nodes(model.graph)}
    for function in model.functions:
        kept |= {function.domain} | {node.domain for node in function.node}
    unused = [opset for opset in model.opset_import if opset.domain not in kept | {"", "ai.onnx"}]
    for opset in unused:
        model.opset_import.remove(opset)


def _optimised(split: SplitModel) -> onnx.ModelProto:
    """The graph ``quant_pre_process`` optimises: an ONNX Runtime session at the basic level saves it.

    :func:`~.session.cpu_session` hands the large weights over in memory: saving the model for
    ``quant_pre_process``, and its re-reading, whole-model shape inference and saving, took 9 of
    VGG-19's 12 s. The result is tagged as pre-processed, as ``quant_pre_process`` does, so that
    the quantizer does not advise pre-processing it.
    """
    with tempfile.TemporaryDirectory(prefix="q8studio-prep-") as tmp:
        options = session_options()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        cpu_session(split, options=options)
        result = onnx.load(options.optimized_model_filepath)
    add_pre_process_metadata(result)
    return result


def _onnx_infers_every_shape(proto: onnx.ModelProto) -> bool:
    """Whether ONNX's own shape inference types and shapes every node output (named dims allowed).

    onnxruntime's symbolic shape inference exists for what ONNX cannot follow: contrib operators
    and computed reshapes (transformers). Where ONNX follows everything it adds nothing but its
    sympy import, which costs more than pre-processing a small model.
    """
    if any(node.domain not in ("", "ai.onnx") for node in proto.graph.node):
        return False
    try:
        graph = onnx.shape_inference.infer_shapes(skeleton_of(proto)).graph
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


def _run_pre_process(proto: onnx.ModelProto, *, symbolic: bool) -> onnx.ModelProto:
    """The steps of quant_pre_process before graph optimisation, in a private folder, with its
    logging silenced.

    Symbolic shape inference, when it fails, saves ``sym_shape_infer_temp.onnx`` into the working
    directory; only that step runs with the private folder as working directory, because changing
    it affects every thread of the process (the GUI's too).
    """
    with tempfile.TemporaryDirectory(prefix="q8studio-prep-") as tmp, quiet_root_logger(logging.CRITICAL):
        source, output = Path(tmp) / "source.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(proto, str(source))
        with _working_directory(tmp) if symbolic else nullcontext():
            quant_pre_process(
                str(source), str(output), skip_symbolic_shape=not symbolic, skip_optimization=True, skip_onnx_shape=True,
            )
        if not output.is_file():
            raise Q8Error("pre-processing wrote no model")
        return onnx.load(str(output))


def _ensure_opset(proto: onnx.ModelProto, minimum: int, notes: list[str]) -> onnx.ModelProto:
    current = onnx_opset(proto)
    if current >= minimum:
        return proto
    try:
        upgraded = converted(proto, minimum)
    except Q8Error as exc:
        raise Q8Error(
            f"Per-channel quantization needs opset {minimum}, and this opset-{current} model cannot be "
            f"upgraded ({_short(exc)}); use per-tensor granularity."
        ) from None
    notes.append(f"Upgraded the opset from {current} to {minimum} (per-channel DequantizeLinear needs it).")
    return upgraded


def _opset_for_int8_maxpool(proto: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """``proto`` at opset 12 if it has a MaxPool and an older opset (classic exported CNNs): below
    12 onnxruntime keeps MaxPool in float, an island of Dequantize, float MaxPool and Quantize (on an
    opset-9 ResNet-50 about 3x slower than float32's MaxPool; at opset 12 the int8 kernel was 1.2-1.4x faster).
    Per-tensor quantization needs no upgrade, so a failed one leaves the model as it is, said in the notes."""
    if not _maxpool_below_int8_opset(proto):
        return proto
    current = onnx_opset(proto)
    try:
        upgraded = converted(proto, INT8_MAXPOOL_OPSET)
    except Q8Error as exc:
        notes.append(f"MaxPool stays in float: onnxruntime quantizes it from opset {INT8_MAXPOOL_OPSET}, and this "
                     f"opset-{current} model cannot be upgraded ({_short(exc)}).")
        return proto
    notes.append(f"Upgraded the opset from {current} to {INT8_MAXPOOL_OPSET} (onnxruntime quantizes MaxPool from "
                 f"opset {INT8_MAXPOOL_OPSET}).")
    return upgraded


def _maxpool_below_int8_opset(proto: onnx.ModelProto) -> bool:
    """Whether ``proto`` has a MaxPool at an opset where onnxruntime's quantizer leaves it in float."""
    return onnx_opset(proto) < INT8_MAXPOOL_OPSET and _count(proto, "MaxPool") > 0


def _count(proto: onnx.ModelProto, op_type: str) -> int:
    return sum(1 for node in proto.graph.node if node.op_type == op_type)


_QUOTED_CHARS = 160
"""Most characters of a library's message quoted in a note."""


def _short(exc: BaseException) -> str:
    """A library's message cut between words, the cut marked: a word cut in two reads as the library's typo."""
    text = first_line(exc)
    if len(text) <= _QUOTED_CHARS:
        return text
    room = _QUOTED_CHARS - 1  # for the "…"
    words, space, _ = text[:room + 1].rpartition(" ")  # a space right after the room ends keeps the last word
    return (words if space else text[:room]).rstrip(" ,;:") + "…"


@contextmanager
def _working_directory(folder: str) -> Iterator[None]:
    """Run the block with ``folder`` as the working directory, then restore the previous one."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
