"""A read-only table model over a list of row objects: shown formatted, sorted on raw values."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

_log = logging.getLogger(__name__)

SORT_ROLE = Qt.ItemDataRole.UserRole
NODE_ROLE = Qt.ItemDataRole.UserRole + 1
_Index = QModelIndex | QPersistentModelIndex
Row = TypeVar("Row")


class RowTableModel(QAbstractTableModel, Generic[Row]):
    """Subclasses say what a cell shows (``cell_text``), sorts by (``cell_value``) and decorates."""

    columns: list[tuple[str, str]] = []  # (header, key)
    header_tips: dict[str, str] = {}
    name_keys: frozenset[str] = frozenset({"node"})
    """Columns of names: when the table is short of width they share what the others leave, elided."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Row] = []

    def set_rows(self, rows: list[Row]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.header_tips.get(self.columns[section][1])
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """A cell's value for ``role``; a failure is logged and leaves the cell empty, because an
        exception out of this override while Qt paints takes the whole process down."""
        try:
            return self._data(index, role)
        except Exception:  # anything: see above
            _log.exception("A table cell could not be shown")
            return None

    def _data(self, index: _Index, role: int) -> object:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        key = self.columns[index.column()][1]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(row, key)
        if role == SORT_ROLE:
            return self.cell_value(row, key)
        if role == NODE_ROLE:
            return self.node_of(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.row_tip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and self.is_number(key):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole:
            return self.background(row, key)
        return None

    def cell_text(self, row: Row, key: str) -> str:
        raise NotImplementedError

    def cell_value(self, row: Row, key: str) -> object:
        raise NotImplementedError

    def node_of(self, row: Row) -> str:
        return getattr(row, "node")

    def row_tip(self, row: Row) -> str | None:
        return None

    def is_number(self, key: str) -> bool:
        return False

    def background(self, row: Row, key: str) -> object:
        return None


COLUMN_MAX_CHARS = 30
"""Wider cells (long layer names) are elided in the middle, the row's tooltip has them whole."""
NAME_MIN_CHARS = 8
"""The narrowest a name column is made to fit the table's width: narrower, a name says nothing."""
TYPICAL_SHARE = 0.75
"""Short of width, a name column first gets the width that shows this share of its names whole: one
long kernel name should not narrow the layer names."""
MEASURED_ROWS = 1000
"""Rows measured for a column's width, as many as Qt measures to size a column to its contents."""


@dataclass(frozen=True)
class ColumnWidths:
    """What a table's columns need: the other columns in all, and each name column's narrowest
    (:data:`NAME_MIN_CHARS` and its header), typical (:data:`TYPICAL_SHARE`) and whole widths."""

    others: int
    fewest: list[int]
    typical: list[int]
    whole: list[int]

    def fitted(self, width: int) -> list[int]:
        """The name columns' widths in a table ``width`` pixels wide: the typical widths first, what
        remains towards the whole ones."""
        room = width - self.others
        base = shared_widths(self.typical, room, self.fewest)
        more = shared_widths([w - b for w, b in zip(self.whole, base)], room - sum(base), [0] * len(base))
        return [b + m for b, m in zip(base, more)]


def shared_widths(wanted: list[int], room: int, fewest: list[int]) -> list[int]:
    """Widths for columns that want ``wanted`` pixels, to fit ``room``: the narrow ones keep theirs, the
    widest are cut to the one width that fills the room, none below its ``fewest``."""
    if sum(wanted) <= room:
        return list(wanted)
    low, high = 0, max(wanted)  # the widest cut that fits
    while low < high:
        cut = (low + high + 1) // 2
        if sum(max(least, min(width, cut)) for width, least in zip(wanted, fewest)) <= room:
            low = cut
        else:
            high = cut - 1
    return [max(least, min(width, low)) for width, least in zip(wanted, fewest)]


class RowTableView(QTableView):
    """A table whose columns fit its width, so that it needs no horizontal scroll bar: the other columns
    at their contents' width, the name columns sharing the rest, elided in the middle."""

    def __init__(self, name_columns: list[int]) -> None:
        super().__init__()
        self._name_columns = name_columns
        self._widths: ColumnWidths | None = None  # measured once for each contents
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setMaximumSectionSize(self.fontMetrics().averageCharWidth() * COLUMN_MAX_CHARS)

    def setModel(self, model: QSortFilterProxyModel) -> None:  # type: ignore[override]
        super().setModel(model)
        model.modelReset.connect(self._contents_changed)
        for column in self._name_columns:
            self.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().viewportEvent(event)

    def _fit_columns(self) -> None:
        if self._widths is None:
            self._widths = self._measure()
        for column, width in zip(self._name_columns, self._widths.fitted(self.viewport().width())):
            self.horizontalHeader().resizeSection(column, width)

    def _contents_changed(self) -> None:
        self._widths = None
        self._fit_columns()

    def _measure(self) -> ColumnWidths:
        header = self.horizontalHeader()
        others = [c for c in range(header.count()) if c not in self._name_columns]
        names = [self._name_widths(c) for c in self._name_columns]
        return ColumnWidths(sum(self._contents_width(c) for c in others), *(list(w) for w in zip(*names)))

    def _contents_width(self, column: int) -> int:
        """The width Qt gives a column sized to its contents."""
        header = self.horizontalHeader()
        return min(max(self.sizeHintForColumn(column), header.sectionSizeHint(column)), header.maximumSectionSize())

    def _name_widths(self, column: int) -> tuple[int, int, int]:
        """A name column's fewest, typical and whole widths (see :class:`ColumnWidths`)."""
        model, metrics, header = self.model(), self.fontMetrics(), self.horizontalHeader()
        fewest = min(max(metrics.averageCharWidth() * NAME_MIN_CHARS, header.sectionSizeHint(column)),
                     header.maximumSectionSize())
        if model is None or model.rowCount() == 0:
            return fewest, fewest, fewest
        first = model.index(0, column)
        padding = self.sizeHintForIndex(first).width() - metrics.horizontalAdvance(str(first.data())) + 1  # + grid
        widths = sorted(metrics.horizontalAdvance(str(model.index(row, column).data())) + padding
                        for row in range(min(model.rowCount(), MEASURED_ROWS)))
        bounded = [min(max(width, fewest), header.maximumSectionSize()) for width in widths]
        return fewest, bounded[int(TYPICAL_SHARE * (len(bounded) - 1))], bounded[-1]


def sorted_table(model: RowTableModel, parent: QWidget) -> tuple[QTableView, QSortFilterProxyModel]:
    """A read-only, single-row-selection table over ``model``, sorted on the raw values."""
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    table = RowTableView([c for c, (_, key) in enumerate(model.columns) if key in model.name_keys])
    table.setModel(proxy)
    table.setSortingEnabled(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.setWordWrap(False)  # a wrapped name is elided at its end, where a layer name says most
    return table, proxy


def select_quietly(table: QTableView, proxy: QSortFilterProxyModel, matches: Callable[[Any], bool]) -> None:
    """Select and reveal the first row, in view order, whose source row ``matches``; no selection
    signals, so a selection made elsewhere does not echo back."""
    source: RowTableModel = proxy.sourceModel()  # type: ignore[assignment]
    selection = table.selectionModel()
    blocker = selection.blockSignals(True)
    table.clearSelection()
    for row in range(proxy.rowCount()):
        index = proxy.index(row, 0)
        if matches(source.rows[proxy.mapToSource(index).row()]):
            table.selectRow(row)
            table.scrollTo(index)
            break
    selection.blockSignals(blocker)
