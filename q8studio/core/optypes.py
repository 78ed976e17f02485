"""What each ONNX operator is, for colouring the graph and for deciding what int8 can cover."""

from __future__ import annotations

from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

QDQ_QUANTIZABLE_OPS: frozenset[str] = frozenset(QDQRegistry) | frozenset(QLinearOpsRegistry)
"""Operators onnxruntime's static quantizer wraps in Quantize/DequantizeLinear by default
(``quantize_static`` quantizes both registries' op types, and calibrates their tensors)."""

_KINDS: dict[str, frozenset[str]] = {
    "compute": frozenset({
        "Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "Attention", "LSTM", "GRU", "RNN",
    }),
    "activation": frozenset({
        "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Softmax", "LogSoftmax", "Gelu",
        "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus", "Mish", "Erf",
    }),
    "normalisation": frozenset({
        "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
        "LpNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
    }),
    "pooling": frozenset({
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "ReduceMean", "ReduceMax",
    }),
    "shape": frozenset({
        "Reshape", "Transpose", "Flatten", "Concat", "Split", "Squeeze", "Unsqueeze", "Gather",
        "GatherElements", "Slice", "Shape", "Constant", "Pad", "Resize", "Expand", "Tile", "Cast",
        "Identity", "ConstantOfShape", "Range", "DepthToSpace", "SpaceToDepth", "Upsample",
    }),
    "qdq": frozenset({
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
        "ConvInteger", "MatMulInteger", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
        "QLinearAveragePool", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QGemm",
    }),
    "elementwise": frozenset({
        "Add", "Sum", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Min", "Max", "Where",
        "Equal", "Less", "Greater", "Not", "And", "Or", "ReduceSum",
    }),
}

NODE_KINDS: tuple[str, ...] = (*_KINDS, "other")

QDQ_OPS: frozenset[str] = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
"""The nodes that convert between float and 8-bit integers, computing nothing of the model's own."""

SHARES_INPUT_SCALE: frozenset[str] = frozenset({
    "MaxPool", "AveragePool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity",
    "Resize", "Slice", "Pad", "Split", "Gather", "GatherElements", "TopK",
})
"""Operators whose int8 output onnxruntime's QDQ quantizer gives its input's scale, calibrating no
range of its own: their input's range is theirs. Any other op's input says nothing of its output."""


def node_kind(op_type: str) -> str:
    """One of NODE_KINDS; 'other' for operators not listed."""
    for kind, ops in _KINDS.items():
        if op_type in ops:
            return kind
    return "other"
