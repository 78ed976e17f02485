"""Graph outputs changed while onnxruntime's quantizer runs, and changed back in the model it writes.

The quantizer treats a graph output apart from other values: it never folds the activation after it
into the layer before, and it dequantizes it into the output's own name. Two kinds of model need
their outputs changed for it: one passing an input through as an output, and one whose subgraphs
read a value the quantizer would otherwise fold away.
"""

from __future__ import annotations

import onnx
from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX, QUANT_INPUT_SUFFIX

from .renaming import rename_values

APART_SUFFIX = "_q8studio_apart"  # a graph output that is also a graph input, while the quantizer runs


def inputs_also_outputs(model: onnx.ModelProto) -> set[str]:
    """Graph inputs that are graph outputs too (a model passing one of its inputs through). The quantizer
    names the DequantizeLinear of a graph output after the output, here after the input it dequantizes:
    a cycle ("Graph is not a DAG")."""
    inputs = {value.name for value in model.graph.input}
    return {value.name for value in model.graph.output if value.name in inputs}


def outputs_apart(model: onnx.ModelProto, names: set[str]) -> None:
    """Make each of the ``names`` outputs an Identity of its input under another name, for the quantizer."""
    for output in model.graph.output:
        if output.name in names:
            apart = output.name + APART_SUFFIX
            model.graph.node.append(onnx.helper.make_node("Identity", [output.name], [apart], name=apart))
            output.name = apart


def outputs_rejoined(model: onnx.ModelProto, names: set[str]) -> None:
    """Undo :func:`outputs_apart` in the quantized model: the outputs are the float inputs again."""
    apart = {name + APART_SUFFIX: name for name in names}
    kept = [node for node in model.graph.node if node.name not in apart]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    values = [value for value in model.graph.value_info if value.name not in apart]
    del model.graph.value_info[:]
    model.graph.value_info.extend(values)
    for output in model.graph.output:
        output.name = apart.get(output.name, output.name)


def held_as_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    """Make each of the ``names`` values a graph output too, for the quantizer to keep it."""
    types = {value.name: value for value in model.graph.value_info}
    for name in names:
        any_shape = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        model.graph.output.append(types.get(name, any_shape))


def released(model: onnx.ModelProto, names: list[str]) -> None:
    """Undo :func:`held_as_outputs` in the quantized model. The quantizer dequantizes an output into the
    output's name, its layer writing "<name>_QuantizeLinear_Input"; those names go back to the ones of
    any other quantized value: the layer writes <name>, its readers read "<name>_DequantizeLinear_Output"."""
    held = set(names)
    kept = [value for value in model.graph.output if value.name not in held]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    made = {name for node in model.graph.node for name in node.output}
    mapping: dict[str, str] = {}
    for name in names:
        if name + QUANT_INPUT_SUFFIX in made:
            mapping |= {name + QUANT_INPUT_SUFFIX: name, name: name + DEQUANT_OUTPUT_SUFFIX}
    rename_values(model.graph, mapping)
