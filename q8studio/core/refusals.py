"""Whether q8studio will work on the models it is given, and the one-line reason when it will not:
a model to quantize, or a float model and its int8 model to compare."""

from __future__ import annotations

import onnx

from .errors import Q8Error
from .fileio import same_file
from .model import LoadedModel

HALF_PRECISION_TYPES = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def quantize_refusal(model: LoadedModel) -> str | None:
    """Why q8studio will not quantize ``model``, or None when it will.

    Checked when a model opens as well as when it is quantized, so a window can say so before the
    user chooses data for a run that cannot happen.
    """
    if int8 := model.int8_nodes():
        # onnxruntime's quantizer would fail on it with a message about duplicate node names
        return (f"{model.path.name} is already quantized ({len(int8)} int8 operators such as {int8[0].op_type}); "
                "quantize its float model instead.")
    if not any(t.is_float for t in model.graph.tensors.values()):
        return f"{model.path.name} has no float tensors to quantize."
    if not model.quantizable_nodes():
        return f"{model.path.name} has no operators that int8 quantization supports."
    half = sorted({onnx.TensorProto.DataType.Name(t.data_type) for t in model.proto.graph.initializer
                   if t.data_type in HALF_PRECISION_TYPES})
    if half:
        # onnxruntime's quantizer casts such weights at run time and quantizes them as activations.
        return (f"{model.path.name} stores weights in {' and '.join(half)}; q8studio quantizes float32 "
                "models: convert it to float32 first.")
    if not any(t.dtype == "float32" for t in model.graph.tensors.values()):
        # it leaves float64 layers in float: the result would hold no int8 layer (a float64 constant
        # in a float32 model is common, and harmless)
        kinds = sorted({t.dtype for t in model.graph.tensors.values() if t.is_float and t.dtype})
        return (f"{model.path.name} computes in {' and '.join(kinds)}; q8studio quantizes float32 models: "
                "convert it to float32 first.")
    return None


def require_float_tensors(model: LoadedModel) -> None:
    """Quantization needs float weights or activations; say so plainly when there are none."""
    if (refusal := quantize_refusal(model)) is not None:
        raise Q8Error(refusal)


def check_float_and_int8(float_model: LoadedModel, int8_model: LoadedModel) -> str | None:
    """Refuse arguments given in the wrong order or twice, which would give a confident, wrong verdict.

    An int8 model without int8 operators is allowed (every layer may have been kept in float), with a note.
    """
    if same_file(float_model.path, int8_model.path):
        raise Q8Error(f"Both models are the same file ({float_model.path}); give the float model, then its int8 model.")
    if float_model.is_quantized:
        swapped = "" if int8_model.is_quantized else " (are the two swapped?)"
        raise Q8Error(f"The float model {float_model.path.name} is already quantized{swapped}; give the float model "
                      "first, then its int8 model.")
    if not int8_model.is_quantized:
        return f"{int8_model.path.name} has no int8 operators: it computes in float throughout."
    return None
