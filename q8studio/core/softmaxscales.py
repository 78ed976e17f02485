"""Softmax output scales with a whole-number reciprocal, so that QLinearSoftmax computes what the graph says.

ONNX Runtime's QLinearSoftmax scales a probability by K = floor(1/S_y) where the QDQ graph means 1/S_y (see
:mod:`.softmaxkernels`). With onnxruntime's own choice, S_y = float32(1/255), a hair above 1/255, K is 254:
every probability comes out 0.4% low and a probability of 1 as 254/255. Giving the output S_y = 1/K instead,
K = floor(1/S) of the calibrated scale S, rounded to float32 so that floor(1/S_y) is K, makes the kernel
exact to its own scale; the range grows by less than one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from .clipping import INT8, UINT8, effective_qtype, quant_params
from .recipe import Recipe


RECIPROCAL_TOLERANCE = 1e-6
"""Relative: a reciprocal within float32 rounding of a whole number counts as that number (1/float32(1/255) is
254.99998, and the scale meant 1/255)."""


def whole_reciprocal_scale(scale: float) -> np.float32:
    """The float32 S_y nearest 1/K, K = floor(1/scale), with floor(1/S_y) = K in float32 as ONNX Runtime
    computes it (float32(1/K) may lie a hair above 1/K: then one step below it)."""
    whole = np.floor(np.float32(1.0) / np.float32(scale) * (1 + RECIPROCAL_TOLERANCE))
    snapped = np.float32(1.0 / float(whole))
    while np.floor(np.float32(1.0) / snapped) < whole:
        snapped = np.nextafter(snapped, np.float32(0.0))
    return snapped


@dataclass(frozen=True)
class SoftmaxScale:
    """One Softmax output's quantization: the calibrated scale and the one written."""

    node: str
    tensor: str
    calibrated: float  # S from the calibrated range
    scale: np.float32  # S_y = 1/K
    zero_point: np.uint8 | np.int8
    written_range: tuple[float, float]  # what S_y and Z_y represent, from the lowest code to the highest

    def override(self) -> list[dict]:
        """The tensor's entry of onnxruntime's TensorQuantOverrides: a scale and zero point, no range."""
        return [{"scale": np.array(self.scale), "zero_point": np.array(self.zero_point)}]  # arrays, as it requires

    def note(self) -> str:
        whole = int(np.floor(np.float32(1.0) / self.scale))
        return (f"{self.node} [Softmax]: output scale 1/{whole} instead of {self.calibrated:.6g} "
                f"(1/S = {1.0 / self.calibrated:.6g}): ONNX Runtime's QLinearSoftmax multiplies by floor(1/S), so "
                "a scale whose reciprocal is whole keeps its outputs from running low.")


def softmax_output_scales(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], recipe: Recipe
                          ) -> dict[str, SoftmaxScale]:
    """A :class:`SoftmaxScale` for the calibrated output of every Softmax the recipe quantizes, by tensor, where
    1/S is not already whole (its written range replaces the calibrated one in what q8studio reports)."""
    qtype = effective_qtype(UINT8 if recipe.activation_type == "uint8" else INT8, recipe.symmetric_activations)
    zero_type = np.uint8 if recipe.activation_type == "uint8" else np.int8
    scales = {}
    for node in model.graph.node:
        if node.op_type != "Softmax" or node.name in recipe.exclude or node.output[0] not in ranges:
            continue
        low, high = ranges[node.output[0]]
        scale, zero_point = quant_params(low, high, qtype, recipe.symmetric_activations)
        snapped = whole_reciprocal_scale(float(scale))
        if snapped != np.float32(scale):
            written = (float(snapped) * (qtype.qmin - int(zero_point)), float(snapped) * (qtype.qmax - int(zero_point)))
            scales[node.output[0]] = SoftmaxScale(node.name, node.output[0], float(scale), snapped,
                                                  zero_type(zero_point), written)
    return scales
