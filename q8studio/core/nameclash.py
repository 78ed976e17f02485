"""Tensor names onnxruntime's quantizer makes itself, set aside in a model that already has them.

The quantizer names what it adds after the tensor it quantizes: weight ``w`` gets ``w_scale``,
``w_zero_point`` and ``w_quantized``; activation ``y`` gets ``y_QuantizeLinear_Output`` and more.
In a model that already holds a tensor of such a name (a constant ``w_scale`` beside a weight
``w``) two tensors end up with one name, and the quantizer fails ("Unsupported DequantizeLinear
operator") or reads the wrong one. Such a tensor takes a stand-in name while the quantizer runs and
its own name back afterwards; the quantizer's tensor of that name takes another.
"""

from __future__ import annotations

import itertools

import onnx

from .renaming import rename_values, value_names
from .subgraphs import all_nodes

QUANTIZER_SUFFIXES = ("_QuantizeLinear_Output", "_QuantizeLinear_Input", "_DequantizeLinear_Output",
                      "_QuantizeLinear", "_DequantizeLinear", "_zero_point", "_quantized", "_scale")
"""What the quantizer appends to a tensor's name to name what it adds (``b_quantized_scale`` chains two)."""

STAND_IN_MARK = "_q8studio_aside"


def stand_ins(graph: onnx.GraphProto) -> dict[str, str]:
    """A stand-in name for each tensor of ``graph`` named as the quantizer would name something it adds
    for another tensor of ``graph``; empty for almost every model."""
    names = value_names(graph)
    taken = set(names)
    aside = {}
    for name in sorted(names):
        if _named_after_another(name, names):
            aside[name] = _fresh(name + STAND_IN_MARK, taken)
            taken.add(aside[name])
    return aside


def set_aside(model: onnx.ModelProto, aside: dict[str, str]) -> onnx.ModelProto:
    """A copy of ``model`` with each tensor of ``aside`` under its stand-in name."""
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    rename_values(renamed.graph, aside)
    return renamed


def names_restored(model: onnx.ModelProto, aside: dict[str, str]) -> None:
    """Undo :func:`set_aside` in the quantized ``model``: each tensor set aside, and what the quantizer
    made for it, named after its own name again; a tensor the quantizer gave that name is renamed."""
    taken = value_names(model.graph)
    mapping = {name: _fresh(name, taken) for name in aside if name in taken}  # the quantizer's own
    assigned = set(mapping.values())
    for name, stand_in in aside.items():
        for value in sorted(_own_or_derived(taken, stand_in)):
            restored = name + value[len(stand_in):]
            if (restored not in taken or restored in mapping) and restored not in assigned:
                mapping[value] = restored
                assigned.add(restored)
    rename_values(model.graph, mapping)
    node_names = {node.name for node in all_nodes(model.graph)}
    for node in all_nodes(model.graph):
        for name, stand_in in aside.items():
            if _own_or_derived({node.name}, stand_in) and name + node.name[len(stand_in):] not in node_names:
                node.name = name + node.name[len(stand_in):]


def _named_after_another(name: str, names: set[str]) -> bool:
    """Whether ``name`` is another name of ``names`` followed by quantizer suffixes."""
    stem = name
    while suffix := next((s for s in QUANTIZER_SUFFIXES if stem.endswith(s) and len(stem) > len(s)), None):
        stem = stem[:-len(suffix)]
        if stem in names:
            return True
    return False


def _fresh(base: str, taken: set[str]) -> str:
    """``base``, or ``base`` with a number after it, that neither is a name of ``taken`` nor begins one."""
    candidates = itertools.chain([base], (f"{base}_{number}" for number in itertools.count(1)))
    return next(candidate for candidate in candidates
                if candidate not in taken and not _own_or_derived(taken, candidate))


def _own_or_derived(names: set[str], stem: str) -> set[str]:
    """The names of ``names`` that are ``stem`` or begin with ``stem`` and an underscore."""
    return {name for name in names if name == stem or name.startswith(stem + "_")}
