"""Tensor names across a graph and its subgraphs: listing them, renaming them everywhere they occur."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import onnx

from .subgraphs import subgraphs


def value_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name of ``graph`` and its subgraphs."""
    names = {value.name for value in itertools.chain(graph.input, graph.output, graph.value_info)}
    names |= {tensor.name for tensor in graph.initializer}
    names |= {tensor.values.name for tensor in graph.sparse_initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        for subgraph in subgraphs(node):
            names |= value_names(subgraph)
    names.discard("")
    return names


def rename_values(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    """Rename, in place, every use of each tensor name of ``mapping`` in ``graph`` and its subgraphs."""
    for value in itertools.chain(graph.input, graph.output, graph.value_info, graph.initializer,
                                 (tensor.values for tensor in graph.sparse_initializer)):
        value.name = mapping.get(value.name, value.name)
    for annotation in graph.quantization_annotation:
        annotation.tensor_name = mapping.get(annotation.tensor_name, annotation.tensor_name)
    for node in graph.node:
        for names in (node.input, node.output):
            for index, name in enumerate(names):
                names[index] = mapping.get(name, name)
        for subgraph in subgraphs(node):
            rename_values(subgraph, mapping)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of its subgraphs, each before the nodes inside it."""
    for node in graph.node:
        yield node
        for subgraph in subgraphs(node):
            yield from all_nodes(subgraph)
