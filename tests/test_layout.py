"""The layered graph layout: edges point down, boxes never overlap, collapsed scopes stay connected."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from builders import light_model, small_cnn
from q8studio.core.layout import (
    Box, GraphLayout, collapse_all, collapse_group, default_collapsed, expand_group, layout_graph, reveal,
)
from q8studio.core.model import Graph, Node, TensorInfo, model_from_proto, namespace_of
from q8studio.core.optypes import node_kind

OPS = ["MatMul", "Add", "Relu", "LayerNormalization", "Reshape", "Softmax", "Mul", "Conv"]


def synthetic_graph(n_nodes: int, seed: int = 0) -> Graph:
    """A scoped DAG like an exported transformer: a main chain with side branches, residual joins,
    and a few tensors (like an attention mask) used far below where they are made."""
    rng = random.Random(seed)
    nodes: list[Node] = []
    tensors = {"input": TensorInfo("input", ("N", 16), "float32")}
    made = ["input"]
    last = "input"
    for i in range(n_nodes):
        op = OPS[rng.randrange(len(OPS))]
        name = f"/encoder/layer.{i // 40}/{('attention', 'mlp')[i // 20 % 2]}/{op}_{i}"
        first = made[-2] if rng.random() < 0.2 and len(made) > 2 else last  # a side branch
        inputs = [first]
        roll = rng.random()
        if roll < 0.15 and len(made) > 4:
            inputs.append(made[rng.randrange(len(made) - 10 if len(made) > 10 else 0, len(made) - 1)])  # residual
        elif roll < 0.18:
            inputs.append(made[rng.randrange(len(made))])  # long edge
        output = f"t{i}"
        tensors[output] = TensorInfo(output, ("N", 16), "float32")
        nodes.append(Node(i, name, op, "", tuple(inputs), (output,), {}, namespace_of(name), node_kind(op), False))
        made.append(output)
        last = output
    return Graph(nodes, tensors, ["input"], [last], set())


def cnn_graph() -> Graph:
    return model_from_proto(small_cnn(), Path("cnn.onnx")).graph


def assert_well_formed(graph: Graph, layout: GraphLayout) -> None:
    """Edges go downward between the right boxes, boxes never overlap, edges never cross a box."""
    boxes = {b.id: b for b in layout.boxes}
    assert len(boxes) == len(layout.boxes)
    shown = layout.box_of_node
    assert sorted(shown) == list(range(len(graph.nodes)))  # every node is shown exactly once
    expected = {(shown[s], shown[d]) for s, d, _ in graph.edges() if shown[s] != shown[d]}
    assert {(e.src_id, e.dst_id) for e in layout.edges} == expected
    assert len(layout.edges) == len(expected)  # parallel edges are merged
    for edge in layout.edges:
        src, dst = boxes[edge.src_id], boxes[edge.dst_id]
        assert dst.layer > src.layer
        assert edge.points[0][1] == pytest.approx(src.y + src.h)
        assert edge.points[-1][1] == pytest.approx(dst.y)
        ys = [p[1] for p in edge.points]
        assert ys == sorted(ys)
        assert src.x <= edge.points[0][0] <= src.x + src.w and dst.x <= edge.points[-1][0] <= dst.x + dst.w
    assert not _overlapping(layout.boxes)
    assert not _crossings(layout)
    x, y, w, h = layout.bounds
    assert all(x <= b.x and b.x + b.w <= x + w and y <= b.y and b.y + b.h <= y + h for b in layout.boxes)


def _overlapping(boxes: list[Box]) -> list[tuple[str, str]]:
    rows: dict[int, list[Box]] = {}
    for box in boxes:
        rows.setdefault(box.layer, []).append(box)
    bad = []
    for row in rows.values():
        row.sort(key=lambda b: b.x)
        bad += [(a.id, b.id) for a, b in zip(row, row[1:]) if a.x + a.w > b.x]
    tops = sorted({(b.layer, b.y, b.y + b.h) for b in boxes})
    bad += [("row", str(a[0])) for a, b in zip(tops, tops[1:]) if a[0] != b[0] and a[2] > b[1]]
    return bad


def _crossings(layout: GraphLayout) -> list[str]:
    """Edges passing through the inside of any box (sampled along each segment)."""
    rows: dict[int, list[Box]] = {}
    for box in layout.boxes:
        rows.setdefault(int(box.y), []).append(box)
    bad = []
    for edge in layout.edges:
        for (x0, y0), (x1, y1) in zip(edge.points, edge.points[1:]):
            for k in range(1, 20):
                px, py = x0 + (x1 - x0) * k / 20, y0 + (y1 - y0) * k / 20
                for boxes in rows.values():
                    if boxes[0].y + 0.5 < py < boxes[0].y + boxes[0].h - 0.5:
                        bad += [edge.tensor for b in boxes if b.x + 0.5 < px < b.x + b.w - 0.5]
    return bad


def test_small_cnn_layout_is_a_clean_top_down_picture() -> None:
    graph = cnn_graph()
    layout = layout_graph(graph)
    assert_well_formed(graph, layout)
    assert [b.kind for b in layout.boxes] == ["node"] * len(graph.nodes)
    by_name = {graph.nodes[b.node_index].name: b for b in layout.boxes}
    assert by_name["/stem/Conv"].layer == 0 and by_name["/head/fc/Gemm"].layer == len(graph.nodes) - 1
    # the residual branch sits beside the main chain, and the Add is below both
    assert by_name["/block/pw/Conv"].layer < by_name["/block/Add"].layer
    assert by_name["/block/Add"].label == "Add" and by_name["/block/Add"].detail == "block/Add"


@pytest.mark.parametrize("name", ["resnet50", "squeezenet", "inception_v1"])
def test_light_models_lay_out_cleanly(name: str) -> None:
    graph = model_from_proto(light_model(name), Path(f"{name}.onnx")).graph
    assert_well_formed(graph, layout_graph(graph))


def test_what_computes_from_constants_alone_sits_just_above_its_user() -> None:
    # onnx's DenseNet-121 makes each BatchNorm weight by ConstantOfShape then Unsqueeze; laid out from
    # the top, each drew an edge down the whole graph.
    path = Path(onnx.__file__).parent / "backend/test/data/light/light_densenet121.onnx"
    graph = model_from_proto(onnx.load(str(path)), path).graph
    layout = layout_graph(graph)
    boxes = {b.id: b for b in layout.boxes}
    constant = {b.id for b in layout.boxes if graph.nodes[b.node_index].op_type in ("ConstantOfShape", "Unsqueeze")}
    spans = [boxes[e.dst_id].layer - boxes[e.src_id].layer for e in layout.edges if e.src_id in constant]
    assert len(spans) > 1000 and set(spans) == {1}
    assert all(boxes[e.dst_id].layer > boxes[e.src_id].layer for e in layout.edges)


def test_synthetic_dag_with_branches_residuals_and_long_edges() -> None:
    graph = synthetic_graph(600)
    layout = layout_graph(graph)
    assert_well_formed(graph, layout)
    assert any(len(e.points) > 2 for e in layout.edges)  # long edges are routed between the boxes


def test_collapsed_scope_hides_its_members_and_keeps_edges() -> None:
    graph = synthetic_graph(200)
    scope = ("encoder", "layer.1")
    layout = layout_graph(graph, collapsed=frozenset({scope}))
    assert_well_formed(graph, layout)
    members = [n.index for n in graph.nodes if n.namespace[:2] == scope]
    group = next(b for b in layout.boxes if b.kind == "group")
    assert group.group == scope and group.count == len(members) == 40
    assert group.label == "layer.1 (40 nodes)" and "×" in group.detail
    assert layout.members[group.id] == tuple(members)
    assert not any(b.node_index in members for b in layout.boxes)
    assert any(e.dst_id == group.id for e in layout.edges) and any(e.src_id == group.id for e in layout.edges)
    merged = [e for e in layout.edges if e.src_id == group.id]
    assert sum(len(e.tensors) for e in merged) >= len(merged)


def test_outermost_collapsed_scope_wins() -> None:
    graph = synthetic_graph(120)
    layout = layout_graph(graph, collapsed=frozenset({("encoder",), ("encoder", "layer.1")}))
    assert [b.id for b in layout.boxes] == ["g:encoder"]
    assert layout.edges == []


def test_collapsing_that_creates_a_cycle_still_lays_out() -> None:
    """A scope whose members sit before and after an outside node: the two edges form a cycle."""
    graph = cnn_graph()
    # '/block/dw/*' and '/block/pw/Conv' are in scope 'block' with '/block/Add'; '/stem/Relu' feeds both
    nodes = list(graph.nodes)
    relu = next(n for n in nodes if n.name == "/block/Relu")
    pool = next(n for n in nodes if n.name == "/pool/MaxPool")
    nodes[pool.index] = Node(pool.index, "/block/MaxPool", pool.op_type, "", pool.inputs, pool.outputs, {},
                             ("block",), pool.kind, False)
    nodes[relu.index] = Node(relu.index, "/post/Relu", relu.op_type, "", relu.inputs, relu.outputs, {},
                             ("post",), relu.kind, False)
    cyclic = Graph(nodes, graph.tensors, graph.inputs, graph.outputs, graph.initializers)
    layout = layout_graph(cyclic, collapsed=frozenset({("block",)}))
    pairs = {(e.src_id, e.dst_id) for e in layout.edges}
    assert ("g:block", f"n{relu.index}") in pairs and (f"n{relu.index}", "g:block") in pairs
    assert not _overlapping(layout.boxes)


def test_layout_is_deterministic() -> None:
    graph = synthetic_graph(400, seed=3)
    collapsed = frozenset({("encoder", "layer.2")})
    first, second = layout_graph(graph, collapsed=collapsed), layout_graph(graph, collapsed=collapsed)
    assert first.boxes == second.boxes and first.edges == second.edges


def test_default_collapsed_keeps_big_graphs_to_a_few_hundred_boxes() -> None:
    graph = synthetic_graph(3000)
    collapsed = default_collapsed(graph, max_visible=300)
    layout = layout_graph(graph, collapsed=collapsed)
    assert 50 <= len(layout.boxes) <= 300
    assert_well_formed(graph, layout)
    assert default_collapsed(cnn_graph()) == frozenset()  # small graphs open fully


def test_expand_collapse_and_reveal() -> None:
    graph = synthetic_graph(400)
    everything = collapse_all(graph)
    assert everything == {("encoder",)}
    opened = expand_group(graph, everything, ("encoder",), budget=9)  # exactly its ten layers
    assert ("encoder",) not in opened and ("encoder", "layer.0") in opened  # sub-scopes stay folded
    deeper = expand_group(graph, everything, ("encoder",), budget=11)  # and the first two layers' halves
    assert ("encoder", "layer.1", "mlp") in deeper and ("encoder", "layer.2") in deeper
    target = next(n for n in graph.nodes if n.namespace == ("encoder", "layer.7", "mlp"))
    shown = reveal(graph, opened, target.index)
    assert layout_graph(graph, collapsed=shown).box_of_node[target.index] == f"n{target.index}"
    assert collapse_group(shown, ("encoder",)) == {("encoder",)}


def test_edge_at_finds_the_edge_under_the_pointer() -> None:
    layout = layout_graph(cnn_graph())
    edge = layout.edges[0]
    (x0, y0), (x1, y1) = edge.points[0], edge.points[1]
    assert layout.edge_at((x0 + x1) / 2 + 1, (y0 + y1) / 2, tolerance=3) == edge
    assert layout.edge_at(-500, -500, tolerance=3) is None


def test_layout_module_does_not_import_qt() -> None:
    code = "import sys, q8studio.core.layout; sys.exit(any(m.startswith(('PySide6', 'pyqtgraph')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
