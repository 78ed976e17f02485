"""Tensor names across a graph and its subgraphs: listing them, renaming them everywhere they occur."""

from __future__ import annotations

import itertools

import onnx

from .subgraphs import all_graphs


def fresh_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or it with the first suffix ``_1``, ``_2``, ... that no name in ``taken`` has; the
    name returned joins ``taken``."""
    name, suffix = wanted, 1
    while name in taken:
        name, suffix = f"{wanted}_{suffix}", suffix + 1
    taken.add(name)
    return name


def value_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name of ``graph`` and its subgraphs."""
    names: set[str] = set()
    for each in all_graphs(graph):
        names |= {value.name for value in itertools.chain(each.input, each.output, each.value_info)}
        names |= {tensor.name for tensor in each.initializer}
        names |= {tensor.values.name for tensor in each.sparse_initializer}
        for node in each.node:
            names.update(node.input)
            names.update(node.output)
    names.discard("")
    return names


def rename_values(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    """Rename, in place, every use of each tensor name of ``mapping`` in ``graph`` and its subgraphs."""
    for each in all_graphs(graph):
        for value in itertools.chain(each.input, each.output, each.value_info, each.initializer,
                                     (tensor.values for tensor in each.sparse_initializer)):
            value.name = mapping.get(value.name, value.name)
        for annotation in each.quantization_annotation:
            annotation.tensor_name = mapping.get(annotation.tensor_name, annotation.tensor_name)
        for node in each.node:
            for names in (node.input, node.output):
                for index, name in enumerate(names):
                    names[index] = mapping.get(name, name)
