"""How an int8 model applies a function of one value: as a table of 256 entries.

An 8-bit input takes one of 256 codes, so any function of one value between a DequantizeLinear and a
QuantizeLinear maps 256 codes to 256 output codes. ONNX Runtime fuses DequantizeLinear -> Sigmoid or
LeakyRelu -> QuantizeLinear into QLinearSigmoid / QLinearLeakyRelu, which build that map once per run,

    T[c] = sat(rint(f(S_x (c - Z_x)) / S_y) + Z_y)   for every code c,

the dequantizing and f in float32, and then compute nothing per element: ``y_q = T[x_q]``. QLinearConcat
does the same with f the identity for each input whose scale or zero point is not the output's (a
requantization table); an input quantized as the output is copied.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import Q8Error
from .intmath import fma_float32
from .model import Node
from .qdq import dequantized, output_bounds, quantized
from .weights import QuantParams

TableFunction = Callable[[np.ndarray], np.ndarray]
"""A float32 function of one value, applied elementwise."""

TABLE_KERNELS = {"Sigmoid": "QLinearSigmoid", "LeakyRelu": "QLinearLeakyRelu"}
"""The activations ONNX Runtime runs as a table, and the kernel that does."""

LOGISTIC_NUMERATOR = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
                      2.48287947061529e-01)
"""Eigen's (and mlas's) odd numerator of the logistic, over x: the coefficients of x^8, x^6, ..., x^0 (float32)."""
LOGISTIC_DENOMINATOR = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
                        1.16817656904453e-01, 9.93151921023180e-01)
"""Its even denominator: the coefficients of x^10, x^8, ..., x^0 (float32)."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) as ONNX Runtime's x86 float32 kernel computes it (mlas, FMA3): x clamped to [-18, 18], the
    rational approximation p(x) / q(x) + 1/2 of :data:`LOGISTIC_NUMERATOR` and :data:`LOGISTIC_DENOMINATOR`, each
    polynomial in x² by Horner's rule with fused multiply-adds, the result kept from going below 0 but not
    from exceeding 1 (by a float32 step, near x = 18). The exact logistic rounded to float32 differs from it by
    a step in over half the values, which moves a table entry where f(x)/S_y lies that close to a half-integer."""
    value = np.clip(np.asarray(x, np.float32), np.float32(-18.0), np.float32(18.0))
    squared = value * value
    numerator, denominator = (_horner(coefficients, squared) for coefficients in (LOGISTIC_NUMERATOR,
                                                                                 LOGISTIC_DENOMINATOR))
    return np.maximum((numerator * value) / denominator + np.float32(0.5), np.float32(0.0))


def _horner(coefficients: tuple[float, ...], squared: np.ndarray) -> np.ndarray:
    """c0 x^2k + c1 x^2(k-1) + ... + ck, highest power first, one fused multiply-add per coefficient."""
    total = fma_float32(squared, coefficients[0], coefficients[1])
    for coefficient in coefficients[2:]:
        total = fma_float32(total, squared, coefficient)
    return total


def leaky_relu(alpha: float) -> TableFunction:
    """x for x >= 0, alpha x below, in float32."""
    slope = np.float32(alpha)
    return lambda x: np.where(x >= 0, x, x * slope).astype(np.float32)


def identity(x: np.ndarray) -> np.ndarray:
    """A requantization's function: the value itself."""
    return np.asarray(x, np.float32)


def table_function(node: Node) -> TableFunction:
    """The float32 function ``node`` applies, with its attributes."""
    if node.op_type == "Sigmoid":
        return sigmoid
    if node.op_type == "LeakyRelu":
        return leaky_relu(float(node.attributes.get("alpha", 0.01)))
    raise Q8Error(f"{node.name} is {node.op_type}, which ONNX Runtime does not run as a table of 256 entries.")


def function_summary(node: Node) -> str:
    """The function as a title shows it: "Sigmoid", "LeakyRelu (alpha = 0.1)"."""
    if node.op_type == "LeakyRelu":
        return f"LeakyRelu (alpha = {float(np.float32(node.attributes.get('alpha', 0.01))):.6g})"
    return node.op_type


def input_codes(x: QuantParams) -> np.ndarray:
    """Every code of the input's 8-bit type, lowest first: the table's entries follow them."""
    low, high = output_bounds(x)
    return np.arange(low, high + 1, dtype=np.int64)


def lookup_table(x: QuantParams, y: QuantParams, function: TableFunction) -> np.ndarray:
    """T: the output code of every input code (int64, [256], in :func:`input_codes` order)."""
    return quantized(function(dequantized(input_codes(x), x)), y)


def unrounded_table(x: QuantParams, y: QuantParams, function: TableFunction) -> np.ndarray:
    """f(S_x (c - Z_x)) / S_y + Z_y for every code c, before rounding and saturation: the smooth curve the
    table's steps follow (float64, in :func:`input_codes` order)."""
    return (function(dequantized(input_codes(x), x)).astype(np.float64) / float(np.float32(y.scale))
            + int(y.zero_point))


def looked_up(x_q: np.ndarray, x: QuantParams, table: np.ndarray) -> np.ndarray:
    """T[x_q] for every element: int64, shaped as ``x_q``."""
    return table[np.asarray(x_q, np.int64) - output_bounds(x)[0]]

