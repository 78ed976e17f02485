"""One output element of an int8 layer, computed step by step: the worked example of the Explain view.

The receptive field (a convolution window, or a row of A and a column of B), the products
``(x_q - Z_x)(w_q - Z_w)``, their int32 sum, the int32 bias (times a Gemm's bias factor),
``M = S_x S_w / S_y`` (times a Gemm's alpha) as ``M0 * 2^-n``,
the requantized value, Z_y and the clamp, the dequantized result, and beside it the value ONNX
Runtime produced and the float model's value of the same element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import Q8Error
from .intkernels import (
    channel_multipliers,
    conv_accumulate,
    explain_conv_element,
    matmul_accumulate,
    runtime_multiplier,
)
from .intmath import Multiplier, requantize, requantize_float32
from .model import Node
from .poolwindows import resolved_pads

if TYPE_CHECKING:
    from .weights import QuantParams

WIDE = (-(2**62), 2**62)  # clamp bounds that never bind: the clamp is shown as its own step


@dataclass(frozen=True)
class WorkedElement:
    """Every intermediate value behind one output element; requantization fields are None for float outputs."""

    index: tuple[int, ...]
    x_q: np.ndarray
    w_q: np.ndarray
    in_bounds: np.ndarray  # False where x_q is padding (then it holds Z_x); same shape as x_q
    products: np.ndarray
    x_zero_point: int
    w_zero_point: int
    x_scale: float
    w_scale: float  # of this output channel
    y_scale: float | None
    y_zero_point: int | None
    relu: bool  # a Relu kept in the graph: the clamp starts at Z_y
    acc: int
    bias: int  # b_q of this output channel
    real_value: float  # alpha * S_x * S_w * acc_with_bias: what exact arithmetic on the dequantized inputs gives
    multiplier: Multiplier | None
    scaled: int | None  # round((acc + bias) * M), integer path
    before_clamp: int | None  # scaled + Z_y
    qmin: int | None
    qmax: int | None
    y_q: int | None  # after the clamp, integer path
    ort_y_q: int | None  # ONNX Runtime's float32 requantization of the same accumulator
    y_real: float | None  # S_y * (y_q - Z_y)
    runtime_value: float  # what ONNX Runtime produced for this element
    float_value: float | None  # the float model's value
    alpha: float = 1.0  # a Gemm's alpha, part of M
    bias_factor: int = 1  # accumulator steps per b_q step: a Gemm's beta S_b / (alpha S_x S_w)

    @property
    def acc_with_bias(self) -> int:
        return self.acc + self.bias_factor * self.bias

    def steps(self) -> list[str]:
        """The arithmetic chain from the int32 sum to the dequantized result, one line per step."""
        alpha, alpha_value = ("", "") if self.alpha == 1.0 else ("alpha·", f" (alpha = {self.alpha:g})")
        bias = f"+ bias b_q {self.bias} = {self.acc_with_bias}"
        if self.bias_factor != 1:  # a Gemm whose bias is worth several accumulator steps per step of b_q
            b_q = f"({self.bias})" if self.bias < 0 else str(self.bias)
            bias = (f"+ bias {self.bias_factor}·b_q {self.bias_factor}·{b_q} = {self.acc_with_bias} "
                    f"({self.bias_factor} = beta·S_b/(alpha·S_x·S_w): the bias in accumulator steps)")
        lines = [
            f"acc = Σ (x_q - {self.x_zero_point})·(w_q - {self.w_zero_point}) over {self.products.size} taps = {self.acc}",
            bias,
            f"real value {alpha}S_x·S_w·{self.acc_with_bias} = {self.real_value:.6g}",
        ]
        if self.multiplier is None or self.y_zero_point is None or self.y_scale is None:
            return lines + [f"not requantized: the output stays float32; ONNX Runtime: {self.runtime_value:.6g}"]
        m = self.multiplier
        lines += [
            f"M = {alpha}S_x·S_w/S_y{alpha_value} = {m.real:.9g} ≈ M0·2^-n = {m.m0}·2^-{m.shift} "
            f"(error {m.rel_error:.1e})",
            f"requantize: round({self.acc_with_bias}·{m.m0} / 2^{m.shift}) = {self.scaled}",
            f"+ Z_y {self.y_zero_point} = {self.before_clamp}",
            f"clamp to [{self.qmin}, {self.qmax}]{' (ReLU: lower bound Z_y)' if self.relu else ''} = {self.y_q}",
            f"dequantized S_y·(y_q - Z_y) = {self.y_scale:.6g}·{self.y_q - self.y_zero_point} = {self.y_real:.6g}",
            f"ONNX Runtime: {self.runtime_value:g} (its float32 requantization gives {self.ort_y_q})",
        ]
        return lines + float_model_lines(self.y_real, self.float_value)

    def to_dict(self) -> dict[str, Any]:
        data = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        data["multiplier"] = self.multiplier.__dict__ if self.multiplier else None
        data["acc_with_bias"] = self.acc_with_bias
        return data


def conv_geometry(node: Node, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> dict[str, Any]:
    """Strides, explicit pads, dilations and group of a 2-D Conv (``auto_pad`` resolved)."""
    if len(w_shape) != 4:
        raise Q8Error(f"{node.name} is a {len(w_shape) - 2}-D convolution; only 2-D ones can be explained.")
    a = node.attributes
    strides, dilations = list(a.get("strides", [1, 1])), list(a.get("dilations", [1, 1]))
    begin, end = resolved_pads(node, x_shape[2:], w_shape[2:], strides, dilations)
    return {"strides": strides, "pads": [*begin, *end], "dilations": dilations, "group": int(a.get("group", 1))}


def gemm_operands(node: Node, a_q: np.ndarray, b_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A and B as they are multiplied (Gemm's transA/transB applied)."""
    if node.op_type == "Gemm":
        a_q = a_q.T if node.attributes.get("transA", 0) else a_q
        b_q = b_q.T if node.attributes.get("transB", 0) else b_q
    return a_q, b_q


def accumulators(node: Node, x: QuantParams, w: QuantParams, bias_q: np.ndarray | None,
                 x_q: np.ndarray, w_q: np.ndarray) -> np.ndarray:
    """The int32 accumulators (bias included, in the accumulator's units) of the whole output, before any
    requantization."""
    if node.op_type == "Conv":
        geometry = conv_geometry(node, x_q.shape, w_q.shape)
        return conv_accumulate(x_q, int(x.zero_point), w_q, w.zero_point, bias_q, **geometry)
    a, b = gemm_operands(node, x_q, w_q)
    acc = matmul_accumulate(a, int(x.zero_point), b, w.zero_point)
    return acc + bias_q if bias_q is not None else acc


def pick_element(runtime: np.ndarray, y: QuantParams | None, float_output: np.ndarray | None) -> tuple[int, ...]:
    """A representative element: the largest in magnitude that the clamp did not saturate."""
    if y is None:
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(runtime))), runtime.shape))
    info = np.iinfo(np.dtype(y.dtype))
    q = runtime.astype(np.int64)
    magnitude = np.abs(q - int(y.zero_point)).astype(np.float64)
    inside = (q > info.min) & (q < info.max)
    if inside.any():
        magnitude[~inside] = -1.0
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(magnitude)), runtime.shape))


def worked_element(node: Node, x: QuantParams, w: QuantParams, bias_q: np.ndarray | None, y: QuantParams | None,
                   x_q: np.ndarray, w_q: np.ndarray, index: tuple[int, ...], runtime: np.ndarray,
                   float_output: np.ndarray | None, *, relu: bool = False, alpha: float = 1.0,
                   bias_factor: int = 1) -> WorkedElement:
    """Every step behind ``runtime[index]``; a Gemm's ``alpha`` scales M, and its bias enters the accumulator
    ``bias_factor`` times."""
    index = checked_index(node, index, runtime.shape)
    if node.op_type == "Conv":
        field = _conv_field(node, x, w, bias_q, x_q, w_q, index)
    else:
        field = _matmul_field(node, x, w, bias_q, x_q, w_q, index)
    channel = index[1] if node.op_type == "Conv" else index[-1]
    w_scale = float(w.scale.reshape(-1)[channel if w.per_channel else 0])
    acc_b = field["acc"] + bias_factor * field["bias"]
    steps = _requantize_steps(acc_b, x, w_scale, y, relu, alpha)
    float_value = None if float_output is None or float_output.shape != runtime.shape else float(float_output[index])
    return WorkedElement(
        index=index, **field,
        x_scale=float(np.float32(x.scale)), w_scale=w_scale,
        y_scale=None if y is None else float(np.float32(y.scale)),
        y_zero_point=None if y is None else int(y.zero_point), relu=relu,
        real_value=alpha * float(np.float32(x.scale)) * w_scale * acc_b,
        **steps,
        runtime_value=float(runtime[index]),
        float_value=float_value, alpha=alpha, bias_factor=bias_factor,
    )


def result_values(y: QuantParams, by_kernel: np.ndarray, by_definition: np.ndarray, runtime: np.ndarray,
                  float_output: np.ndarray | None, index: tuple[int, ...]) -> dict[str, Any]:
    """What every requantized worked element records of ``index``: both references' y_q, the kernel's dequantized,
    ONNX Runtime's y_q and the float model's value (None without one, or of another shape)."""
    kernel_y_q = int(by_kernel[index])
    float_ok = float_output is not None and float_output.shape == runtime.shape
    return {"kernel_y_q": kernel_y_q, "definition_y_q": int(by_definition[index]),
            "y_real": float(np.float32(y.scale)) * (kernel_y_q - int(y.zero_point)), "runtime_y_q": int(runtime[index]),
            "float_value": float(float_output[index]) if float_ok else None}  # type: ignore[index]


def result_lines(y: QuantParams, y_q: int, y_real: float, runtime_y_q: int, float_value: float | None) -> list[str]:
    """A requantized element's last steps: its dequantized value, ONNX Runtime's y_q, the float model's value."""
    return [f"dequantized S_y·(y_q − Z_y) = {float(y.scale):.6g}·{y_q - int(y.zero_point)} = {y_real:.6g}",
            f"ONNX Runtime: y_q = {runtime_y_q}", *float_model_lines(y_real, float_value)]


def float_model_lines(y_real: float, float_value: float | None) -> list[str]:
    """The worked element's last step, when the float model was given: its value and the int8 error."""
    if float_value is None:
        return []
    return [f"float model: {float_value:.6g} (int8 error {y_real - float_value:+.3g})"]


def worked_index(node: Node, element: tuple[int, ...] | None, runtime: np.ndarray, y: QuantParams,
                 float_output: np.ndarray | None) -> tuple[int, ...]:
    """The output element to work through: the user's ``element`` (a Q8Error when it names none of the output), or
    :func:`pick_element`'s."""
    return checked_index(node, element if element is not None else pick_element(runtime, y, float_output),
                         runtime.shape)


def checked_index(node: Node, index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """``index`` as ints if it names an element of ``node``'s output of ``shape``; else a Q8Error saying why."""
    index = tuple(int(i) for i in index)
    shown = f"({', '.join(map(str, index))})"
    if len(index) != len(shape):  # a miscount, not an element out of range: say how many are needed
        raise Q8Error(f"Element {shown} has {len(index)} {'index' if len(index) == 1 else 'indices'}; the output of "
                      f"{node.name} has {len(shape)} axes (shape {tuple(shape)}): give one index per axis.")
    if any(not 0 <= i < s for i, s in zip(index, shape)):
        raise Q8Error(f"Element {shown} is outside the output of shape {tuple(shape)}.")
    return index


def _conv_field(node: Node, x: QuantParams, w: QuantParams, bias_q: np.ndarray | None,
                x_q: np.ndarray, w_q: np.ndarray, index: tuple[int, ...]) -> dict[str, Any]:
    geometry = conv_geometry(node, x_q.shape, w_q.shape)
    n, c, h, col = index
    info = explain_conv_element(x_q, float(np.float32(x.scale)), int(x.zero_point), w_q, w.scale, w.zero_point,
                                bias_q, 1.0, 0, n=n, c=c, h=h, w=col, y_qtype=np.int8, **geometry)
    return {
        "x_q": info["x_q"], "w_q": info["w_q"], "products": info["products"],
        "in_bounds": np.broadcast_to(info["in_bounds"], info["x_q"].shape).copy(),
        "x_zero_point": int(x.zero_point), "w_zero_point": _at(w.zero_point, c),
        "acc": info["acc"], "bias": info["bias"],
    }


def _matmul_field(node: Node, x: QuantParams, w: QuantParams, bias_q: np.ndarray | None,
                  x_q: np.ndarray, w_q: np.ndarray, index: tuple[int, ...]) -> dict[str, Any]:
    a, b = gemm_operands(node, x_q, w_q)
    if a.ndim < 2 or b.ndim < 2:
        raise Q8Error(f"{node.name} multiplies a vector; only matrix (or batched matrix) products can be explained.")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = np.broadcast_to(a, (*batch, *a.shape[-2:])), np.broadcast_to(b, (*batch, *b.shape[-2:]))
    out_batch = index[:-2]
    row = a[(*out_batch, index[-2])].astype(np.int64)
    column = b[(*out_batch, slice(None), index[-1])].astype(np.int64)
    w_zero = _at(w.zero_point, index[-1])
    products = (row - int(x.zero_point)) * (column - w_zero)
    bias = 0 if bias_q is None else int(np.asarray(bias_q).reshape(-1)[index[-1] if np.size(bias_q) > 1 else 0])
    return {
        "x_q": row, "w_q": column, "in_bounds": np.ones(row.shape, bool), "products": products,
        "x_zero_point": int(x.zero_point), "w_zero_point": w_zero, "acc": int(products.sum()), "bias": bias,
    }


def _requantize_steps(acc_b: int, x: QuantParams, w_scale: float, y: QuantParams | None, relu: bool,
                      alpha: float) -> dict[str, Any]:
    """M, the requantized value, Z_y, the clamp and the dequantized result, by both roundings."""
    if y is None:
        return dict.fromkeys(("multiplier", "scaled", "before_clamp", "qmin", "qmax", "y_q", "ort_y_q", "y_real"))
    info = np.iinfo(np.dtype(y.dtype))
    zero = int(y.zero_point)
    qmin, qmax = (max(int(info.min), zero) if relu else int(info.min)), int(info.max)
    multiplier = channel_multipliers(x.scale, w_scale, y.scale, alpha)[0]
    scaled = int(requantize(np.array([acc_b]), multiplier, 0, *WIDE)[0])
    y_q = min(max(scaled + zero, qmin), qmax)
    ort = requantize_float32(np.array([acc_b]), runtime_multiplier(x.scale, w_scale, y.scale, alpha), zero, qmin, qmax)
    return {
        "multiplier": multiplier, "scaled": scaled, "before_clamp": scaled + zero, "qmin": qmin, "qmax": qmax,
        "y_q": y_q, "ort_y_q": int(ort[0]), "y_real": float(np.float32(y.scale)) * (y_q - zero),
    }


def _at(values: np.ndarray, channel: int) -> int:
    """Channel ``channel`` of a per-channel array, or the single value of a per-tensor one."""
    flat = np.asarray(values).reshape(-1)
    return int(flat[channel] if flat.size > 1 else flat[0])
