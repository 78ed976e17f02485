"""Subgraphs (an If's branches, a Loop's or Scan's body): what they read around them, what they hold.

A body may read values of the graph around it without naming them as inputs of its node.
onnxruntime's quantizer sorts nodes by their named inputs only, and so may put an If before the
node that makes a value its branches read: ONNX Runtime still runs that file, but ONNX's checker,
and every tool built on it, refuses it. Nor does the quantizer enter subgraphs: the layers inside
stay float, which the record of float layers says.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import onnx

from .optypes import QDQ_QUANTIZABLE_OPS

FOLDED_ACTIVATIONS = frozenset({"Relu", "Clip"})
"""Activations onnxruntime's quantizer removes, renaming the output of the layer before them."""


def holds_subgraphs(graph: onnx.GraphProto) -> bool:
    """Whether any node of ``graph`` has a subgraph (an If's branches, a Loop's or Scan's body)."""
    return any(subgraphs(node) for node in graph.node)


def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph``'s nodes in place so each follows the producers of all it reads, its subgraphs
    included; nodes keep their order wherever it already is valid."""
    nodes = list(graph.node)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    waiting_on: list[set[int]] = []
    readers: list[list[int]] = [[] for _ in nodes]
    for index, node in enumerate(nodes):
        producers = {producer[name] for name in _reads(node) if name in producer} - {index}
        waiting_on.append(producers)
        for source in producers:
            readers[source].append(index)
    ready = [index for index, producers in enumerate(waiting_on) if not producers]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for reader in readers[index]:
            waiting_on[reader].discard(index)
            if not waiting_on[reader]:
                heapq.heappush(ready, reader)
    if len(order) != len(nodes):  # a cycle: leave the graph as it is, for the checker to name
        return
    del graph.node[:]
    graph.node.extend(nodes[index] for index in order)


def read_by_subgraphs_and_folded(graph: onnx.GraphProto) -> list[str]:
    """The values that subgraphs of ``graph`` read and a Relu or Clip of ``graph`` reads too.

    The quantizer folds such an activation into the layer before it, renaming that layer's output to
    the activation's, when it counts one reader of the value; it counts named inputs only, so the
    subgraph was left reading a value no node makes, and ONNX Runtime refused the int8 model.
    """
    read = set().union(*(subgraph_reads(node) for node in graph.node))
    read -= {value.name for value in [*graph.input, *graph.output]}  # the quantizer folds neither
    return sorted({node.input[0] for node in graph.node
                   if node.op_type in FOLDED_ACTIVATIONS and node.input and node.input[0] in read})


def subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """The values of the graph around ``node`` that its subgraphs read without naming them as its inputs."""
    names: set[str] = set()
    for subgraph in subgraphs(node):
        names |= _outer_reads(subgraph)
    return names - set(node.input)


def _reads(node: onnx.NodeProto) -> set[str]:
    """The values ``node`` reads: its inputs, and what its subgraphs read from outside themselves."""
    return {name for name in node.input if name} | subgraph_reads(node)


def _outer_reads(graph: onnx.GraphProto) -> set[str]:
    """The values ``graph``'s nodes read that ``graph`` neither takes as input nor makes itself."""
    local = {value.name for value in graph.input}
    local |= {tensor.name for tensor in graph.initializer}
    local |= {tensor.values.name for tensor in graph.sparse_initializer}
    outer: set[str] = set()
    for node in graph.node:
        outer |= _reads(node) - local
        local.update(node.output)
    return outer


def layers_inside(node: onnx.NodeProto) -> list[str]:
    """The layers the quantizer could make int8 in ``node``'s subgraphs, nested ones included, as "name [Op]"."""
    return [f"{inner.name or inner.output[0]} [{inner.op_type}]"
            for subgraph in subgraphs(node) for inner in all_nodes(subgraph)
            if inner.domain in ("", "ai.onnx") and inner.op_type in QDQ_QUANTIZABLE_OPS]


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph in it, nested ones included."""
    yield graph
    for node in graph.node:
        for subgraph in subgraphs(node):
            yield from all_graphs(subgraph)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of the subgraphs in it, each before the nodes inside it."""
    for node in graph.node:
        yield node
        for subgraph in subgraphs(node):
            yield from all_nodes(subgraph)


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs ``node`` holds as attributes: an If's two branches, a Loop's or Scan's body."""
    found: list[onnx.GraphProto] = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            found.append(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            found.extend(attribute.graphs)
    return found
