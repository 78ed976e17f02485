"""Whole-model passes on a model's skeleton: the model with its large weights turned into inputs.

onnx's shape inference, checker and version converter, and onnxruntime's symbolic shape inference,
serialize the whole model, weights included, on every call (symbolic inference once per node it
hands to onnx): on a 575 MB VGG-19 that was 20 of the 29 s pre-processing took. These passes read
a weight's type and shape, never its values, so they run on a skeleton in which each large float
or 8-bit integer initializer (a weight, or its quantized values in an int8 model) is a graph input
of the same type and shape; the weights go back in afterwards. Small initializers and wider
integers stay: passes do read those (Reshape shapes, Slice bounds, Gather indices, Resize scales).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import Message
from onnx import numpy_helper

SET_ASIDE_MIN_BYTES = 1024
"""Weights holding at least this many bytes of values become inputs of the skeleton."""

_WEIGHT_ITEMSIZE = {
    onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.BFLOAT16: 2, onnx.TensorProto.DOUBLE: 8,
    onnx.TensorProto.INT8: 1, onnx.TensorProto.UINT8: 1,
}
"""The types of weights: floats, and the 8-bit integers quantized weights are stored in (shapes,
bounds and indices, which passes read, are 32- or 64-bit)."""


def is_set_aside(tensor: onnx.TensorProto) -> bool:
    """Whether the skeleton stands ``tensor`` in by a graph input.

    The size comes from the shape: protobuf's ``ByteSize`` encodes the message to measure it, which
    costs as much as the serialization the skeleton is there to avoid.
    """
    itemsize = _WEIGHT_ITEMSIZE.get(tensor.data_type, 0)
    return itemsize * math.prod(tensor.dims) >= SET_ASIDE_MIN_BYTES


def skeleton_of(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its large weights as graph inputs; ``model`` itself is not touched.

    Built field by field so the weights are never copied. A weight that is already a graph input
    (IR version 3 lists every initializer among the inputs) keeps that input.
    """
    skeleton = without_initializers(model)
    listed = {value.name for value in model.graph.input}
    for tensor in model.graph.initializer:
        if not is_set_aside(tensor):
            skeleton.graph.initializer.append(tensor)
        elif tensor.name not in listed:
            skeleton.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    return skeleton


@dataclass(frozen=True)
class SplitModel:
    """A model held as two parts: ``shell``, the model in which each large weight's values
    are replaced by an external-data reference, and ``weights``, those initializers themselves.

    onnxruntime creates a session from it with the weights handed over in memory
    (``SessionOptions.add_external_initializers``), neither serializing nor parsing them.
    """

    shell: onnx.ModelProto
    weights: list[onnx.TensorProto]

    def assembled(self) -> onnx.ModelProto:
        """The whole model, its weights' values in place of the references (a copy of them)."""
        whole = onnx.ModelProto()
        whole.CopyFrom(self.shell)
        values = {tensor.name: tensor for tensor in self.weights}
        for reference in whole.graph.initializer:
            if reference.name in values:
                reference.CopyFrom(values[reference.name])
        return whole


def with_weights_outside(model: onnx.ModelProto) -> SplitModel:
    """``model`` split: its large weights (its own objects, not copies) apart from the
    rest; ``model`` itself is not touched."""
    shell = without_initializers(model)
    outside = []
    for tensor in model.graph.initializer:
        if is_set_aside(tensor):
            _add_reference(shell, tensor)
            outside.append(tensor)
        else:
            shell.graph.initializer.append(tensor)
    return SplitModel(shell, outside)


def _add_reference(shell: onnx.ModelProto, tensor: onnx.TensorProto) -> None:
    """An initializer in ``shell`` that stands for ``tensor``: its name, type and shape, no values."""
    reference = shell.graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    reference.data_location = onnx.TensorProto.EXTERNAL
    reference.external_data.add(key="location", value="handed-over-in-memory")


def save_with_weights_beside(model: onnx.ModelProto, path: Path) -> None:
    """Save ``model`` to ``path`` with its large weights' bytes in the file ``<name>.weights`` beside it.

    The bytes are written as they are, never serialized into a protobuf, and whatever reads the
    file parses only a small graph: onnxruntime's quantizer runs ONNX shape inference on the file
    it is given, and on VGG-19 saving and inferring the whole 575 MB model took 3 s, this 0.5 s.
    """
    split = with_weights_outside(model)
    references = {tensor.name: tensor for tensor in split.shell.graph.initializer}
    data_name = f"{path.name}.weights"
    with open(path.parent / data_name, "wb") as data:
        for tensor in split.weights:
            values = tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()
            reference = references[tensor.name]
            del reference.external_data[:]
            for key, value in (("location", data_name), ("offset", str(data.tell())), ("length", str(len(values)))):
                reference.external_data.add(key=key, value=value)
            data.write(values)
    onnx.save(split.shell, str(path))


def transformed(model: onnx.ModelProto, transform: Callable[[onnx.ModelProto], onnx.ModelProto]) -> SplitModel:
    """``transform`` applied to the skeleton of ``model``, split from ``model``'s weights, which stand
    where the inputs that stood for them were. ``model`` is not touched, and its weights are not
    copied: putting VGG-19's back into a whole model cost 0.9 s and 575 MB."""
    result = transform(skeleton_of(model))
    weights = {tensor.name: tensor for tensor in model.graph.initializer if is_set_aside(tensor)}
    listed = {value.name for value in model.graph.input}
    present = {value.name for value in result.graph.input} & weights.keys()
    for index in reversed(range(len(result.graph.input))):
        name = result.graph.input[index].name
        if name in weights and name not in listed:
            del result.graph.input[index]
    own = {tensor.name for tensor in result.graph.initializer}
    outside = [weights[name] for name in weights if name in present and name not in own]
    for tensor in outside:
        _add_reference(result, tensor)
    return SplitModel(result, outside)


def without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` but its initializers (so none of its weights' values)."""
    shell = onnx.ModelProto()
    _copy_fields(model, shell, skip="graph")
    _copy_fields(model.graph, shell.graph, skip="initializer")
    return shell


def _copy_fields(source: Message, target: Message, *, skip: str) -> None:
    """Copy every set field of ``source`` but ``skip`` into ``target`` (same message type)."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if hasattr(value, "extend"):  # repeated scalars or messages
            getattr(target, field.name).extend(value)
        elif isinstance(value, Message):
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)
