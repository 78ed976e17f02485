"""A model's ONNX operator-set version, and raising it with onnx's version converter."""

from __future__ import annotations

import re

import onnx

from .errors import Q8Error, first_line

OLDEST_RUNNABLE_OPSET = 7
"""ONNX Runtime runs models from opset 7: older exports (PyTorch's of 2018, opset 6) use versions of Gemm,
BatchNormalization, Add, Mul, PRelu and AveragePool that it has no kernel for."""

_CONVERTER_ASSERTION = re.compile(r"^\S+\.h:\d+: \w+: Assertion `.*?` failed: ")
"""The C++ source place and assertion onnx's converter puts before its reason."""


def onnx_opset(proto: onnx.ModelProto) -> int:
    """The version of the default (ai.onnx) operator set the model imports; 0 if none."""
    return next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), 0)


def converted(proto: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """``proto`` at opset ``version``, checked by onnx's checker; Q8Error with the converter's reason if it
    cannot be (for some operators at some versions the converter has no adapter)."""
    try:
        upgraded = onnx.version_converter.convert_version(proto, version)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # the converter raises RuntimeError/ValidationError/IndexError by op
        reason = _CONVERTER_ASSERTION.sub("", first_line(exc)).replace(" From Version $1", "")
        raise Q8Error(reason) from None
    return upgraded
