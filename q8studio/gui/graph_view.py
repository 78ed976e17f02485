"""The graph view: a zoomable, searchable picture of the model with collapsible name scopes.

The layout comes from :mod:`q8studio.core.layout`; for big graphs it runs on a worker thread
while the old picture stays on screen. This module only turns a layout into items and user
gestures into selections, expansions and signals.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from functools import partial

from PySide6.QtCore import QObject, QPointF, QRectF, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QMenu, QToolButton, QVBoxLayout, QWidget

from q8studio.core import layout as core_layout
from q8studio.core.errors import Cancelled
from q8studio.core.layout import GraphLayout, Scope
from q8studio.core.model import Graph, LoadedModel
from q8studio.core.optypes import NODE_KINDS
from q8studio.core.progress import CancelToken, Progress

from .graph_items import (
    ACCENT, BUSY_STYLE, EDGE_COLOUR, GROUP_FILL, KIND_COLOURS, READABLE_SCALE, BoxItem, EdgeBundleItem, GraphCanvas,
    OverlayScale, edge_tooltip, group_tooltip, label_widths, node_tooltip, overlay_colour,
)
from .formatting import float_toggle_text
from .legends import LegendBar

ASYNC_LAYOUT_NODES = 2500
"""Graphs this big are laid out on a worker thread (0.1 s and up), the old picture staying responsive."""
EDGE_BAND = 2000.0  # scene height of one edge bundle: painting culls whole bands
OPENING_SCALE = 0.8  # the least zoom of the first view when the graph is too big to fit readably
PAN_MARGIN = 1500.0  # room around the graph, so that even a corner node can be centred


class _LayoutRunner(QObject):
    """Carries a finished layout from the worker thread back to the GUI thread."""

    finished = Signal(int, object)


class GraphView(QWidget):
    """Graph of the open model: zoom, pan, fit, search, collapse/expand scopes, overlays, badges.

    ``node_selected`` fires when the user picks a node (click or search), never for
    :meth:`select_node`, so a window can mirror selections between panels without loops.
    """

    node_selected = Signal(str)
    keep_in_float_requested = Signal(str)
    layout_ready = Signal()  # the scene shows the latest layout (after set_model, expand, collapse)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._graph: Graph | None = None
        self._index_of: dict[str, int] = {}
        self._label_widths: dict[str, float] = {}
        self._layout: GraphLayout | None = None
        self._items: dict[str, BoxItem] = {}
        self._selected_item: BoxItem | None = None
        self._highlight: EdgeBundleItem | None = None
        self._selected: str | None = None
        self._overlay: OverlayScale | None = None
        self._marks: dict[str, set[str]] = {}
        self.kept_in_float: Callable[[str], bool] = lambda _name: False
        """Whether the user keeps a node in float: its menu then offers to quantize it again."""
        self._matches: list[str] = []
        self._match_key = ""
        self._match_pos = -1
        self._generation = 0
        self._cancel: CancelToken | None = None
        self._then: Callable[[], None] | None = None
        self.initial_view_pending = False
        self._runner = _LayoutRunner()  # no parent: the worker thread may outlive this widget
        self._runner.finished.connect(self._on_layout)
        self._build_ui()

    def _build_ui(self) -> None:
        self.search = QLineEdit(placeholderText="Find node by name or op type, then Enter")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(lambda: self.find_next(self.search.text()))
        self.match_label = QLabel()
        self.match_label.setMinimumWidth(90)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 4, 4, 2)
        bar.addWidget(self.search, 1)
        bar.addWidget(self.match_label)
        for text, slot in (("Fit", self.fit), ("Expand all", self.expand_all), ("Collapse all", self.collapse_all)):
            button = QToolButton(text=text, autoRaise=True)
            button.clicked.connect(slot)
            bar.addWidget(button)
        self.canvas = GraphCanvas(self)
        self.canvas.clicked.connect(self._on_click)
        self.canvas.group_activated.connect(self.expand_group)
        self.canvas.menu_requested.connect(lambda item, at: self.context_menu(item).exec(at))
        self.canvas.user_moved.connect(self._forget_initial_view)
        self.canvas.resized.connect(self._on_resize)
        self.canvas.tooltip_for = self.tooltip
        self.legends = LegendBar()
        self.kind_legend, self.value_legend = self.legends.kinds, self.legends.values
        # A child of the view, not of its viewport: scrolling moves the viewport's children.
        self.busy_label = QLabel(self.canvas)
        self.busy_label.setStyleSheet(BUSY_STYLE)
        self.busy_label.hide()
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addLayout(bar)
        column.addWidget(self.canvas, 1)
        column.addWidget(self.legends)

    # ---- model and layout -------------------------------------------------------------------------------

    def set_model(self, model: LoadedModel | None) -> None:
        """Show ``model``'s graph (scopes collapsed to a few hundred boxes), or nothing for None."""
        self._generation += 1
        self._cancel_layout()
        self._graph = model.graph if model is not None else None
        self._index_of = {n.name: n.index for n in self._graph.nodes} if self._graph else {}
        self._label_widths = label_widths({n.op_type for n in self._graph.nodes}) if self._graph else {}
        self._layout, self._selected, self._overlay, self._marks = None, None, None, {}
        self._matches, self._match_key = [], ""
        self.match_label.clear()
        self.search.clear()  # a search of the last model's names means nothing in this one
        self.legends.hide_values()
        self._clear_scene()
        if self._graph is None:
            self.legends.set_kinds([])
            return
        present = {n.kind for n in self._graph.nodes}
        self.legends.set_kinds([k for k in NODE_KINDS if k in present])
        self.initial_view_pending = True
        self._relayout(core_layout.default_collapsed(self._graph), self._initial_view)

    def _relayout(self, collapsed: frozenset[Scope], then: Callable[[], None] | None = None) -> None:
        """Lay out with ``collapsed`` scopes, rebuild the scene, then run ``then``."""
        graph = self._graph
        if graph is None:
            return
        self._generation += 1
        self._cancel_layout()
        self._then = then
        job = partial(core_layout.layout_graph, graph, collapsed=collapsed, label_widths=self._label_widths)
        if len(graph.nodes) < ASYNC_LAYOUT_NODES:
            self._on_layout(self._generation, job())
            return
        token = self._cancel = CancelToken()
        self.busy_label.setText(f"Laying out {len(graph.nodes):,} nodes…")
        self.busy_label.adjustSize()
        self.busy_label.show()
        self._on_resize()
        job = partial(job, progress=Progress(cancel_token=token))
        worker = threading.Thread(target=_layout_worker, args=(self._runner, self._generation, job), daemon=True)
        worker.start()

    def _cancel_layout(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self._cancel = None
        self.busy_label.hide()

    def _on_layout(self, generation: int, layout: GraphLayout) -> None:
        if generation != self._generation:
            return  # a newer request replaced this one
        self._cancel = None
        self.busy_label.hide()
        self._layout = layout
        self._build_scene()
        then, self._then = self._then, None
        if then is not None:
            then()
        self.layout_ready.emit()

    def _clear_scene(self) -> None:
        self.canvas.scene().clear()
        self._items, self._selected_item, self._highlight = {}, None, None

    def _build_scene(self) -> None:
        assert self._layout is not None and self._graph is not None
        self._clear_scene()
        scene = self.canvas.scene()
        nodes = self._graph.nodes
        for box in self._layout.boxes:
            colour = GROUP_FILL if box.node_index is None else KIND_COLOURS[nodes[box.node_index].kind]
            item = BoxItem(box, QColor(colour))
            scene.addItem(item)
            self._items[box.id] = item
        bands: dict[int, list[core_layout.EdgePath]] = {}
        for edge in self._layout.edges:
            bands.setdefault(int(edge.points[0][1] // EDGE_BAND), []).append(edge)
        for edges in bands.values():
            scene.addItem(EdgeBundleItem(edges, EDGE_COLOUR, 1.2))
        x, y, w, h = self._layout.bounds
        self.canvas.content = QRectF(x - 20, y - 20, w + 40, h + 40)
        scene.setSceneRect(self.canvas.content.adjusted(-PAN_MARGIN, -PAN_MARGIN, PAN_MARGIN, PAN_MARGIN))
        self._apply_overlay()
        self._apply_marks()
        self._show_selection(centre=False)

    # ---- view -------------------------------------------------------------------------------------------

    def fit(self) -> None:
        """Whole graph in the window."""
        self._forget_initial_view()
        self.canvas.fit()

    def _initial_view(self) -> None:
        """Fit if that stays readable; otherwise the top of the graph (its inputs) at a readable zoom,
        as much of the graph's width in view as that zoom allows: a view centred on an input near
        one side would show empty space beyond that side and cut the graph off at the other."""
        if self.canvas.fit_scale() >= READABLE_SCALE:
            self.canvas.fit()
            return
        rect, port = self.canvas.content, self.canvas.viewport().rect()
        scale = min(max(port.width() / rect.width(), OPENING_SCALE), 1.0)
        self.canvas.resetTransform()
        self.canvas.set_zoom(scale)
        first_row = [b for b in self._layout.boxes if b.layer == 0] if self._layout else []
        x = sum(b.x + b.w / 2 for b in first_row) / len(first_row) if first_row else rect.center().x()
        half = port.width() / scale / 2
        x = min(max(x, rect.left() + half), rect.right() - half) if rect.width() > 2 * half else rect.center().x()
        self.canvas.centerOn(x, rect.top() + port.height() / scale / 2)

    def _forget_initial_view(self) -> None:
        self.initial_view_pending = False

    def _on_resize(self) -> None:
        """Keep the busy notice in the middle; re-fit a graph the user has not moved yet."""
        port = self.canvas.viewport().geometry()
        self.busy_label.move(port.center().x() - self.busy_label.width() // 2, port.center().y() - self.busy_label.height() // 2)
        if self.initial_view_pending and self._layout is not None:
            self._initial_view()

    def _centre_on(self, box_id: str) -> None:
        item = self._items.get(box_id)
        if item is not None:
            self._forget_initial_view()
            self.canvas.centre_readably(item)

    # ---- scopes -----------------------------------------------------------------------------------------

    def expand_group(self, scope: Scope) -> None:
        """Open a collapsed scope (and small sub-scopes with it); the view follows its first node."""
        if self._graph is None or self._layout is None:
            return
        first = self._layout.members.get("g:" + "/".join(scope), (None,))[0]
        collapsed = core_layout.expand_group(self._graph, self._layout.collapsed, scope)
        self._relayout(collapsed, None if first is None else lambda: self._centre_on(self._layout.box_of_node[first]))

    def collapse_group(self, scope: Scope) -> None:
        """Fold a scope into one box and centre on it."""
        if self._graph is None or self._layout is None:
            return
        collapsed = core_layout.collapse_group(self._layout.collapsed, scope)
        self._relayout(collapsed, lambda: self._centre_on("g:" + "/".join(scope)))

    def expand_all(self) -> None:
        self._relayout(frozenset(), self._after_global_change)

    def collapse_all(self) -> None:
        if self._graph is not None:
            self._relayout(core_layout.collapse_all(self._graph), self._after_global_change)

    def _after_global_change(self) -> None:
        node = self._index_of.get(self._selected or "")
        if node is not None and self._layout is not None:
            self._centre_on(self._layout.box_of_node[node])
        else:
            self._initial_view()

    def collapsed_groups(self) -> frozenset[Scope]:
        return self._layout.collapsed if self._layout else frozenset()

    # ---- selection and search ---------------------------------------------------------------------------

    def select_node(self, name: str) -> None:
        """Select and centre a node, opening its scope if collapsed; no signal. Unknown names are ignored."""
        self._select(name, emit=False)

    def clear_selection(self) -> None:
        """Leave no box selected: what is selected elsewhere (a model input) has no box, and a box left
        selected would show another node than the Node dock."""
        self._selected = None
        self._show_selection(centre=False)

    def selected_node(self) -> str | None:
        return self._selected

    def _select(self, name: str, *, emit: bool, centre: bool = True) -> None:
        index = self._index_of.get(name)
        if index is None or self._layout is None or self._graph is None:
            return
        self._selected = name
        if self._layout.box_of_node[index].startswith("g:"):
            self._relayout(core_layout.reveal(self._graph, self._layout.collapsed, index), lambda: self._show_selection(centre))
        else:
            self._show_selection(centre)
        if emit:
            self.node_selected.emit(name)

    def _show_selection(self, centre: bool) -> None:
        """Mark the selected node's box and its edges (after any relayout)."""
        if self._highlight is not None:
            self.canvas.scene().removeItem(self._highlight)
            self._highlight = None
        if self._selected_item is not None:
            self._selected_item.set_selected(False)
            self._selected_item = None
        index = self._index_of.get(self._selected or "")
        if index is None or self._layout is None:
            return
        box_id = self._layout.box_of_node[index]
        self._selected_item = self._items[box_id]
        self._selected_item.set_selected(True)
        touching = [e for e in self._layout.edges if box_id in (e.src_id, e.dst_id)]
        if touching:
            self._highlight = EdgeBundleItem(touching, ACCENT, 2.0)
            self._highlight.setZValue(1.5)
            self.canvas.scene().addItem(self._highlight)
        if centre:
            self._centre_on(box_id)

    def _on_click(self, item: BoxItem | None) -> None:
        if item is not None and item.box.node_index is not None and self._graph is not None:
            self._select(self._graph.nodes[item.box.node_index].name, emit=True, centre=False)

    def find_next(self, text: str) -> None:
        """Select the next node whose name or op type contains ``text`` (what Enter in the search box does)."""
        key = text.strip().lower()
        if not key or self._graph is None:
            self.match_label.clear()
            return
        if key != self._match_key:
            self._matches = [n.name for n in self._graph.nodes if key in n.name.lower() or key in n.op_type.lower()]
            self._match_key, self._match_pos = key, -1
        if not self._matches:
            self.match_label.setText("No matches")
            return
        self._match_pos = (self._match_pos + 1) % len(self._matches)
        found = len(self._matches)
        self.match_label.setText(f"{self._match_pos + 1} of {found} matches" if found > 1 else "1 match")
        self._select(self._matches[self._match_pos], emit=True)

    # ---- overlays and badges ----------------------------------------------------------------------------

    def set_overlay(self, values: dict[str, float] | None, *, title: str = "", low_is_bad: bool = True,
                    vmin: float | None = None, vmax: float | None = None, spacing: str = "linear",
                    categories: tuple[tuple[str, str], ...] = (), unit: str = "") -> None:
        """Colour nodes by a value (e.g. SQNR in dB) red (bad) → green (good); None restores kind colours.

        Without ``vmin``/``vmax`` the scale spans the values; with them it is fixed and values beyond
        saturate. ``spacing`` and ``categories`` are those of :class:`OverlayScale`: ``categories``
        gives value ``i`` the colour and legend label ``categories[i]`` (label, colour).
        """
        if values is None:
            self._overlay = None
        else:
            finite = [v for v in values.values() if math.isfinite(v)] or [0.0, 1.0]
            self._overlay = OverlayScale(
                dict(values), title, low_is_bad, min(finite) if vmin is None else vmin,
                max(finite) if vmax is None else vmax, spacing, categories, unit,
                fixed=vmin is not None and vmax is not None,
            )
        self._apply_overlay()

    def overlay(self) -> OverlayScale | None:
        """What colours the graph now (values, title, scale), or None for the kind colours."""
        return self._overlay

    def _apply_overlay(self) -> None:
        overlay = self._overlay
        if overlay is None or self._layout is None or self._graph is None:
            for item in self._items.values():
                item.set_fill(None)
            self.legends.hide_values()
            return
        nodes = self._graph.nodes
        worst = min if overlay.low_is_bad else max
        for box_id, item in self._items.items():
            values = [overlay.values[nodes[i].name] for i in self._layout.members[box_id] if nodes[i].name in overlay.values]
            values = [v for v in values if not math.isnan(v)]
            if values:
                item.set_fill(overlay.colour(worst(values)))
            else:
                item.set_fill(None, dimmed=True)
        if overlay.categories:
            self.legends.show_categories(overlay.title, tuple((label, QColor(colour))
                                                                    for label, colour in overlay.categories))
        else:
            ends = tuple(overlay_colour(overlay.goodness(v)) for v in (overlay.vmin, overlay.middle(), overlay.vmax))
            low, mid, high = overlay.labels()
            self.legends.show_scale(overlay.title, low, high, ends, mid)

    def set_marked(self, names: set[str], tag: str) -> None:
        """Badge ``tag`` (e.g. "FP32") on these nodes, replacing the previous set for that tag."""
        if names:
            self._marks[tag] = set(names)
        else:
            self._marks.pop(tag, None)
        self._apply_marks()

    def _apply_marks(self) -> None:
        if self._layout is None or self._graph is None:
            return
        nodes = self._graph.nodes
        for box_id, item in self._items.items():
            member_names = [nodes[i].name for i in self._layout.members[box_id]]
            item.badges = tuple(tag for tag, marked in self._marks.items() if any(n in marked for n in member_names))
            item.update()

    # ---- menus and tooltips -----------------------------------------------------------------------------

    def context_menu(self, item: BoxItem | None) -> QMenu:
        menu = QMenu(self)
        if item is not None and item.box.node_index is not None and self._graph is not None:
            node = self._graph.nodes[item.box.node_index]
            menu.addAction(float_toggle_text(self.kept_in_float(node.name))).triggered.connect(
                partial(self.keep_in_float_requested.emit, node.name))
            if node.namespace:
                menu.addSeparator()
            for depth in range(len(node.namespace), 0, -1):
                scope = node.namespace[:depth]
                action = menu.addAction(f"Collapse group {'/'.join(scope)}")
                action.triggered.connect(partial(self.collapse_group, scope))
        elif item is not None:
            action = menu.addAction(f"Expand group {'/'.join(item.box.group)}")
            action.triggered.connect(partial(self.expand_group, item.box.group))
        menu.addSeparator()
        for text, slot in (("Expand all", self.expand_all), ("Collapse all", self.collapse_all), ("Fit", self.fit)):
            menu.addAction(text).triggered.connect(slot)
        return menu

    def tooltip(self, item: BoxItem | None, at: QPointF, tolerance: float) -> str:
        """What hovering shows: a node's op, name and tensors, a group's content, or an edge's tensors."""
        graph, layout = self._graph, self._layout
        if graph is None or layout is None:
            return ""
        if item is not None and item.box.node_index is not None:
            return node_tooltip(graph.nodes[item.box.node_index], graph.tensors)
        if item is not None:
            return group_tooltip(item.box)
        edge = layout.edge_at(at.x(), at.y(), tolerance)
        return "" if edge is None else edge_tooltip(edge.tensors, graph.tensors)

    def box_items(self) -> dict[str, BoxItem]:
        """Box id → item, for tests and for a window that wants to reach into the picture."""
        return dict(self._items)

    def item_for_node(self, name: str) -> BoxItem | None:
        index = self._index_of.get(name)
        return None if index is None or self._layout is None else self._items.get(self._layout.box_of_node[index])


def _layout_worker(runner: _LayoutRunner, generation: int, job: Callable[[], GraphLayout]) -> None:
    try:
        layout = job()
    except Cancelled:
        return
    runner.finished.emit(generation, layout)
