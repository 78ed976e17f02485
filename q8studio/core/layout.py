"""Layered top-to-bottom (Sugiyama-style) layout of a model graph, with collapsible name scopes.

Pure Python (numpy only for hit-testing edges) so tests need no display and the GUI can run it off its thread. The steps are the
classic ones, each kept cheap enough for 10,000 nodes: longest-path layering, one shared chain
of dummy vertices per source for its long edges (a "trunk", which keeps the dummy count near
the node count even for tensors used all over the graph), a few barycentre sweeps against
crossings, and x positions from weighted isotonic regression per layer (nodes sit above the
mean of their neighbours without overlapping). Collapsed name scopes become one box each, the
way Model Explorer keeps huge graphs readable.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from .model import Graph
from .progress import NO_PROGRESS, Progress

Scope = tuple[str, ...]
Point = tuple[float, float]

NODE_SIZE: tuple[float, float] = (136.0, 40.0)
GROUP_SIZE: tuple[float, float] = (184.0, 40.0)
H_GAP = 24.0
V_GAP = 40.0
DUMMY_W = 10.0
ORDER_SWEEPS = 3
PLACE_SWEEPS = 4
GROUP_EXPAND_BUDGET = 60
"""How many boxes a double-click on a group may add before its sub-scopes stay collapsed."""


@dataclass(frozen=True)
class Box:
    """A drawn box: one node, or one collapsed scope. ``x, y`` is the top-left corner."""

    id: str
    kind: str  # 'node' | 'group'
    node_index: int | None
    group: Scope | None
    label: str  # op type, or "scope (N nodes)"
    detail: str  # node name, or the most frequent op types of a group
    x: float
    y: float
    w: float
    h: float
    layer: int
    count: int = 1


@dataclass(frozen=True)
class EdgePath:
    """One drawn edge; edges between the same two boxes are merged and list all their tensors."""

    src_id: str
    dst_id: str
    tensors: tuple[str, ...]
    points: tuple[Point, ...]

    @property
    def tensor(self) -> str:
        return self.tensors[0]


@dataclass
class GraphLayout:
    """Boxes, edges and the extent ``bounds = (x, y, w, h)`` of everything."""

    boxes: list[Box]
    edges: list[EdgePath]
    bounds: tuple[float, float, float, float]
    collapsed: frozenset[Scope]
    members: dict[str, tuple[int, ...]]  # box id -> node indices it shows

    @cached_property
    def box_of_node(self) -> dict[int, str]:
        return {i: box_id for box_id, nodes in self.members.items() for i in nodes}

    def edge_at(self, x: float, y: float, tolerance: float) -> EdgePath | None:
        """The edge passing closest to (x, y), if within ``tolerance``: what a hover tooltip names."""
        start, end, owner = self._segments
        if not len(owner):
            return None
        direction = end - start
        length2 = np.maximum((direction**2).sum(axis=1), 1e-12)
        t = np.clip(((np.array([x, y]) - start) * direction).sum(axis=1) / length2, 0.0, 1.0)
        distance = np.hypot(*(start + t[:, None] * direction - (x, y)).T)
        best = int(np.argmin(distance))
        return self.edges[owner[best]] if distance[best] <= tolerance else None

    @cached_property
    def _segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, end, owner = [], [], []
        for i, edge in enumerate(self.edges):
            start += edge.points[:-1]
            end += edge.points[1:]
            owner += [i] * (len(edge.points) - 1)
        return np.array(start, float).reshape(-1, 2), np.array(end, float).reshape(-1, 2), np.array(owner, int)


def layout_graph(
    graph: Graph,
    *,
    collapsed: frozenset[Scope] = frozenset(),
    node_size: tuple[float, float] = NODE_SIZE,
    group_size: tuple[float, float] = GROUP_SIZE,
    label_widths: Mapping[str, float] | None = None,
    progress: Progress = NO_PROGRESS,
) -> GraphLayout:
    """Lay out ``graph`` with every node under a scope in ``collapsed`` folded into one group box.

    ``label_widths`` (op type -> width its label needs, measured by the GUI's font) widens node
    boxes whose op type would not fit ``node_size``.
    """
    units, unit_of = _units(graph, collapsed)
    edge_tensors: dict[tuple[int, int], dict[str, None]] = {}  # insertion-ordered sets of tensor names
    for src, dst, tensor in graph.edges():
        a, b = unit_of[src], unit_of[dst]
        if a != b:
            edge_tensors.setdefault((a, b), {})[tensor] = None
    order = _topological_order(len(units), list(edge_tensors))
    rank = [0] * len(units)
    for position, u in enumerate(order):
        rank[u] = position
    # Edges against the order exist only where collapsing created a cycle: lay them out reversed.
    oriented = [(a, b) if rank[a] < rank[b] else (b, a) for a, b in edge_tensors]
    inputs = set(graph.inputs) - graph.initializers
    fed = [any(name in inputs for m in u.members for name in graph.nodes[m].inputs) for u in units]
    layer = _layers(len(units), order, oriented, fed)
    progress.check()
    needed = label_widths or {}
    widths = [group_size[0] if u.scope else max(node_size[0], needed.get(graph.nodes[u.members[0]].op_type, 0.0) + 20)
              for u in units]
    net = _Network(layer, widths)
    chains = net.add_edges(oriented)
    progress.check()
    net.order(rank)
    progress.check()
    net.place()
    row_h = max(node_size[1], group_size[1])
    boxes = _boxes(graph, units, layer, net.x, widths, node_size, group_size, row_h)
    edges = _edge_paths(list(edge_tensors.items()), oriented, chains, net, boxes, row_h)
    members = {box.id: tuple(unit.members) for box, unit in zip(boxes, units)}
    width = max((b.x + b.w for b in boxes), default=0.0) + H_GAP
    height = max((b.y + b.h for b in boxes), default=0.0) + V_GAP / 2
    return GraphLayout(boxes, edges, (0.0, 0.0, width, height), frozenset(collapsed), members)


class _Unit(NamedTuple):
    """What one box shows: a node (``scope`` empty), or the members of a collapsed scope."""

    members: list[int]
    scope: Scope


def _units(graph: Graph, collapsed: frozenset[Scope]) -> tuple[list[_Unit], list[int]]:
    """The boxes to draw, in order of their first node, and the box of every node."""
    units: list[_Unit] = []
    unit_of = [0] * len(graph.nodes)
    group_unit: dict[Scope, int] = {}
    for node in graph.nodes:
        scope = _collapsed_scope(node.namespace, collapsed)
        if scope is None:
            unit_of[node.index] = len(units)
            units.append(_Unit([node.index], ()))
            continue
        if scope not in group_unit:
            group_unit[scope] = len(units)
            units.append(_Unit([], scope))
        unit_of[node.index] = group_unit[scope]
        units[group_unit[scope]].members.append(node.index)
    return units, unit_of


def _collapsed_scope(namespace: Scope, collapsed: frozenset[Scope]) -> Scope | None:
    """The outermost collapsed scope containing ``namespace``, if any."""
    if collapsed:
        for depth in range(1, len(namespace) + 1):
            if namespace[:depth] in collapsed:
                return namespace[:depth]
    return None


def _topological_order(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Kahn's order preferring earlier units; a cycle is broken at its earliest unit."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    heap = [u for u in range(n) if indeg[u] == 0]
    done = bytearray(n)
    order: list[int] = []
    forced = 0
    while len(order) < n:
        if not heap:
            while done[forced]:
                forced += 1
            heap.append(forced)
        u = heapq.heappop(heap)
        if done[u]:
            continue
        done[u] = 1
        order.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0 and not done[v]:
                heapq.heappush(heap, v)
    return order


def _layers(n: int, order: list[int], edges: list[tuple[int, int]], fed: list[bool]) -> list[int]:
    """Longest path from the inputs; then sources and whatever computes from constants alone (a weight
    made by ConstantOfShape then Unsqueeze) move just above their first user. ``fed``: the units that
    read a graph input. Left at the top, such a chain drew an edge down the whole graph: DenseNet's 600
    of them took 80,000 dummy vertices and a second to lay out."""
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    layer = [0] * n
    anchored = list(fed)
    for u in order:
        if preds[u]:
            layer[u] = max(layer[p] for p in preds[u]) + 1
            anchored[u] = anchored[u] or any(anchored[p] for p in preds[u])
    for u in reversed(order):
        if (not preds[u] or not anchored[u]) and succs[u]:
            layer[u] = min(layer[s] for s in succs[u]) - 1
    return layer


class _Network:
    """Units plus dummy vertices, with edges only between adjacent layers."""

    def __init__(self, layer: list[int], widths: list[float]) -> None:
        self.n_units = len(layer)
        self.layer = list(layer)
        self.width = list(widths)
        self.preds: list[list[int]] = [[] for _ in layer]
        self.succs: list[list[int]] = [[] for _ in layer]
        self.rows: list[list[int]] = []  # vertices of each layer, left to right (after order())
        self.x: list[float] = []  # centre of every vertex (after place())
        self.trunks: dict[int, list[int]] = {}  # source unit -> its dummies, top to bottom

    def _dummy(self, layer: int) -> int:
        self.layer.append(layer)
        self.width.append(DUMMY_W)
        self.preds.append([])
        self.succs.append([])
        return len(self.layer) - 1

    def _link(self, a: int, b: int) -> None:
        self.succs[a].append(b)
        self.preds[b].append(a)

    def add_edges(self, edges: list[tuple[int, int]]) -> list[list[int]]:
        """Vertex chain of every edge; long edges from one source share one trunk of dummies."""
        layer = self.layer
        deepest: dict[int, int] = {}
        for a, b in edges:
            if layer[b] - layer[a] > 1:
                deepest[a] = max(deepest.get(a, 0), layer[b])
        trunks = self.trunks
        for a, bottom in deepest.items():
            trunk = [self._dummy(lay) for lay in range(layer[a] + 1, bottom)]
            self._link(a, trunk[0])
            for upper, lower in zip(trunk, trunk[1:]):
                self._link(upper, lower)
            trunks[a] = trunk
        chains = []
        for a, b in edges:
            span = layer[b] - layer[a]
            if span == 1:
                self._link(a, b)
                chains.append([a, b])
            else:
                trunk = trunks[a][: span - 1]
                self._link(trunk[-1], b)
                chains.append([a, *trunk, b])
        return chains

    def order(self, rank: list[int]) -> None:
        """Fill ``rows``: start in graph order, then barycentre sweeps down and up, ending downwards."""
        rows: dict[int, list[int]] = defaultdict(list)
        start = rank + [0] * (len(self.layer) - self.n_units)
        for a, trunk in self.trunks.items():
            for d in trunk:
                start[d] = rank[a]
        for v in sorted(range(len(self.layer)), key=start.__getitem__):
            rows[self.layer[v]].append(v)
        self.rows = [rows[i] for i in range(min(rows, default=0), max(rows, default=-1) + 1)]
        pos = [0.0] * len(self.layer)
        for row in self.rows:
            for i, v in enumerate(row):
                pos[v] = i - (len(row) - 1) / 2
        for _ in range(ORDER_SWEEPS):
            for row in self.rows[1:]:
                _sort_by_barycentre(row, self.preds, pos)
            for row in reversed(self.rows[:-1]):
                _sort_by_barycentre(row, self.succs, pos)
        for row in self.rows[1:]:
            _sort_by_barycentre(row, self.preds, pos)

    def place(self) -> None:
        """x of every vertex centre: each sweep pulls vertices over their neighbours, without overlaps."""
        x = [0.0] * len(self.layer)
        dummy_from = self.n_units
        for row in self.rows:
            _place_row(row, [0.0] * len(row), [1.0] * len(row), self.width, x)
        for sweep in range(PLACE_SWEEPS):
            rows = self.rows[1:] if sweep % 2 == 0 else list(reversed(self.rows[:-1]))
            adjacency = self.preds if sweep % 2 == 0 else self.succs
            for row in rows:
                target, weight = [], []
                for v in row:
                    total = wsum = 0.0
                    for u in adjacency[v]:
                        w = 8.0 if (u >= dummy_from and v >= dummy_from) else 2.0 if (u >= dummy_from or v >= dummy_from) else 1.0
                        total += w * x[u]
                        wsum += w
                    target.append(total / wsum if wsum else x[v])
                    weight.append(wsum or 0.5)
                _place_row(row, target, weight, self.width, x)
        left = min((x[v] - self.width[v] / 2 for v in range(len(x))), default=0.0)
        self.x = [xi - left + H_GAP for xi in x]


def _sort_by_barycentre(row: list[int], adjacency: list[list[int]], pos: list[float]) -> None:
    if len(row) == 1:
        return  # most rows of a deep network: nothing to order
    keys = {}
    for v in row:
        near = adjacency[v]
        keys[v] = (sum(pos[u] for u in near) / len(near) if near else pos[v], pos[v])
    row.sort(key=keys.__getitem__)
    half = (len(row) - 1) / 2
    for i, v in enumerate(row):
        pos[v] = i - half


def _place_row(row: list[int], target: list[float], weight: list[float], width: list[float], x: list[float]) -> None:
    """Closest centres to ``target`` (weighted least squares) keeping order and spacing: pool adjacent violators."""
    if len(row) == 1:
        x[row[0]] = target[0]
        return
    offsets = [0.0]
    for left, right in zip(row, row[1:]):
        offsets.append(offsets[-1] + (width[left] + width[right]) / 2 + H_GAP)
    means: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for t, w, c in zip(target, weight, offsets):
        mean, wsum, size = t - c, w, 1
        while means and means[-1] > mean:
            m, pw = means.pop(), weights.pop()
            mean = (m * pw + mean * wsum) / (pw + wsum)
            wsum += pw
            size += sizes.pop()
        means.append(mean)
        weights.append(wsum)
        sizes.append(size)
    i = 0
    for mean, size in zip(means, sizes):
        for _ in range(size):
            x[row[i]] = mean + offsets[i]
            i += 1


def _boxes(graph: Graph, units: list[_Unit], layer: list[int], x: list[float], widths: list[float],
           node_size: tuple[float, float], group_size: tuple[float, float], row_h: float) -> list[Box]:
    """Boxes centred on their x and vertically in their row."""
    boxes = []
    for u, unit in enumerate(units):
        h = group_size[1] if unit.scope else node_size[1]
        top, left = _row_top(layer[u], row_h) + (row_h - h) / 2, x[u] - widths[u] / 2
        if not unit.scope:
            node = graph.nodes[unit.members[0]]
            boxes.append(Box(f"n{node.index}", "node", node.index, None, node.op_type, node.name.lstrip("/"),
                             left, top, widths[u], h, layer[u]))
            continue
        count = len(unit.members)
        label = f"{unit.scope[-1]} ({count} node{'s' if count > 1 else ''})"
        boxes.append(Box("g:" + "/".join(unit.scope), "group", None, unit.scope, label, _op_summary(graph, unit.members),
                         left, top, widths[u], h, layer[u], count))
    return boxes


def _op_summary(graph: Graph, members: list[int]) -> str:
    """What a folded scope holds, e.g. '2× Conv · 2× Relu · Add': its most frequent op types."""
    counts = Counter(graph.nodes[i].op_type for i in members).most_common(3)
    return " · ".join(f"{n}× {op}" if n > 1 else op for op, n in counts)


def _row_top(layer: int, row_h: float) -> float:
    return layer * (row_h + V_GAP) + V_GAP / 2


def _edge_paths(merged: list[tuple[tuple[int, int], dict[str, None]]], oriented: list[tuple[int, int]],
                chains: list[list[int]], net: _Network, boxes: list[Box], row_h: float) -> list[EdgePath]:
    """Polylines from the bottom of the upper box to the top of the lower one, through the trunk dummies."""
    out_ports = _ports([(c[0], c[1]) for c in chains], net.x, boxes)
    in_ports = _ports([(c[-1], c[-2]) for c in chains], net.x, boxes)
    trunk_paths = {a: _trunk_path(trunk, net, row_h) for a, trunk in net.trunks.items()}
    edges = []
    for ((a, b), tensors), (upper, lower), chain in zip(merged, oriented, chains):
        ub, lb = boxes[upper], boxes[lower]
        points: list[Point] = [(out_ports[(upper, chain[1])], ub.y + ub.h)]
        if len(chain) > 2:  # down the source's trunk, as far as the row above the target
            path, ends = trunk_paths[upper]
            last = len(chain) - 3
            points += path[: ends[last]]
            points[-1] = (points[-1][0], _row_top(net.layer[chain[-2]], row_h) + row_h)
        points.append((in_ports[(lower, chain[-2])], lb.y))
        if (a, b) != (upper, lower):
            points.reverse()
        edges.append(EdgePath(boxes[a].id, boxes[b].id, tuple(tensors), tuple(points)))
    return edges


def _trunk_path(trunk: list[int], net: _Network, row_h: float) -> tuple[list[Point], list[int]]:
    """Points through a trunk's dummies (straight runs merged), and where the path leaves each dummy's row.

    Every edge of a source shares a prefix of this path, so it is built once per source: building
    it per edge would cost the sum of all edge spans, quadratic for a tensor used everywhere.
    """
    points: list[Point] = []
    ends: list[int] = []
    for d in trunk:
        x, top = net.x[d], _row_top(net.layer[d], row_h)
        if points and abs(points[-1][0] - x) < 1.0:
            points[-1] = (points[-1][0], top + row_h)  # a straight run: stretch it
        else:
            points += [(x, top), (x, top + row_h)]
        ends.append(len(points))
    return points, ends


def _ports(pairs: list[tuple[int, int]], x: list[float], boxes: list[Box]) -> dict[tuple[int, int], float]:
    """x where an edge leaves or enters a box: spread along its side in the order of the far ends."""
    far_ends: dict[int, set[int]] = defaultdict(set)
    for unit, neighbour in pairs:
        far_ends[unit].add(neighbour)
    ports = {}
    for unit, ends in far_ends.items():
        box = boxes[unit]
        ordered = sorted(ends, key=lambda v: (x[v], v))
        step = min(14.0, box.w * 0.6 / max(len(ordered) - 1, 1))
        centre = box.x + box.w / 2
        for i, v in enumerate(ordered):
            ports[(unit, v)] = centre + (i - (len(ordered) - 1) / 2) * step
    return ports


# ---- choosing which scopes are collapsed -------------------------------------------------------------------


@dataclass
class _ScopeTree:
    size: dict[Scope, int]  # nodes under the scope, nested ones included
    children: dict[Scope, list[Scope]]  # direct sub-scopes, in order of first appearance
    direct: dict[Scope, int]  # nodes directly in the scope

    def expansion_cost(self, scope: Scope) -> int:
        """Boxes added when ``scope`` opens with its sub-scopes collapsed."""
        return len(self.children[scope]) + self.direct[scope] - 1


def _scope_tree(graph: Graph) -> _ScopeTree:
    size: dict[Scope, int] = defaultdict(int)
    children: dict[Scope, list[Scope]] = defaultdict(list)
    direct: dict[Scope, int] = defaultdict(int)
    seen: set[Scope] = {()}
    for node in graph.nodes:
        ns = node.namespace
        direct[ns] += 1
        for depth in range(len(ns) + 1):
            scope = ns[:depth]
            size[scope] += 1
            if scope not in seen:
                seen.add(scope)
                children[scope[:-1]].append(scope)
    return _ScopeTree(size, children, direct)


def _open_breadth_first(tree: _ScopeTree, collapsed: set[Scope], start: list[Scope], budget: int) -> None:
    """Open scopes level by level, in graph order, while ``budget`` boxes remain.

    Level order keeps the picture uniform (every layer of a network shown at the same depth);
    graph order spends what is left of the budget on the top of the graph, where the view opens.
    """
    queue = deque(start)
    while queue:
        scope = queue.popleft()
        cost = tree.expansion_cost(scope)
        if cost > 0 and cost > budget:
            continue
        budget -= max(cost, 0)
        collapsed.discard(scope)
        for child in tree.children[scope]:
            collapsed.add(child)
            queue.append(child)


def default_collapsed(graph: Graph, max_visible: int = 300) -> frozenset[Scope]:
    """Scopes to collapse so that at most about ``max_visible`` boxes show."""
    tree = _scope_tree(graph)
    top = list(tree.children[()])
    collapsed = set(top)
    _open_breadth_first(tree, collapsed, top, max_visible - len(top) - tree.direct[()])
    return frozenset(collapsed)


def collapse_all(graph: Graph) -> frozenset[Scope]:
    """Every top-level scope folded."""
    return frozenset(_scope_tree(graph).children[()])


def collapse_group(collapsed: frozenset[Scope], scope: Scope) -> frozenset[Scope]:
    """Fold ``scope``; scopes nested in it are forgotten (they reopen as the expansion decides)."""
    return frozenset(c for c in collapsed if c[: len(scope)] != scope) | {scope}


def expand_group(graph: Graph, collapsed: frozenset[Scope], scope: Scope,
                 budget: int = GROUP_EXPAND_BUDGET) -> frozenset[Scope]:
    """Open ``scope``, and its sub-scopes too while that adds at most ``budget`` boxes."""
    tree = _scope_tree(graph)
    result = set(collapsed)
    result.add(scope)
    _open_breadth_first(tree, result, [scope], max(budget, tree.expansion_cost(scope)))
    return frozenset(result)


def reveal(graph: Graph, collapsed: frozenset[Scope], node_index: int) -> frozenset[Scope]:
    """Open every collapsed scope around a node so that it gets its own box."""
    namespace = graph.nodes[node_index].namespace
    while (scope := _collapsed_scope(namespace, collapsed)) is not None:
        collapsed = expand_group(graph, collapsed, scope)
    return collapsed
