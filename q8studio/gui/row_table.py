"""A read-only table model over a list of row objects: shown formatted, sorted on raw values."""

from __future__ import annotations

import logging
from typing import Any, Callable, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
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
"""Wider cells (long layer names) are elided in the middle, the row's tooltip has them whole: every
column then fits the results pane of a 1400-pixel window, with no horizontal scrolling."""


def sorted_table(model: RowTableModel, parent: QWidget) -> tuple[QTableView, QSortFilterProxyModel]:
    """A read-only, single-row-selection table over ``model``, sorted on the raw values."""
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    table = QTableView()
    table.setModel(proxy)
    table.setSortingEnabled(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setMaximumSectionSize(table.fontMetrics().averageCharWidth() * COLUMN_MAX_CHARS)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.horizontalHeader().setStretchLastSection(True)
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
