"""A read-only table model over a list of row objects: shown formatted, sorted on raw values."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QFont, QFontMetrics, QFontMetricsF
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyleOptionHeader,
    QTableView,
    QWidget,
)

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

    def column_texts(self, column: int, limit: int) -> list[str]:
        """What ``column`` shows in at most ``limit`` rows spread over the table, without a data() call
        each: sizing the columns reads them all. A failure reads as no texts, as data() leaves a failing
        cell empty, for the same reason."""
        key, step = self.columns[column][1], max(1, math.ceil(len(self.rows) / limit))
        try:
            return [self.cell_text(row, key) for row in self.rows[::step]]
        except Exception:  # anything: see data()
            _log.exception("A table column could not be measured")
            return []

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
"""The widest cells of a column other than names (a long op type) are elided in the middle: the names
need the width more. Headers always show whole, on two lines when the names are short of width."""
NAME_MIN_CHARS = 8
"""The narrowest a name column is made to fit the table's width: narrower, a name says nothing."""
TYPICAL_SHARE = 0.75
"""Short of width, a name column first gets the width that shows this share of its names whole: one
long kernel name should not narrow the layer names."""
SHORT_NAME_CHARS = 20
"""Short of width, names up to this long (an op type, most kernel names) also show whole first: cut,
"Glo…ool" says nothing, while a long name cut in the middle keeps both its ends."""
MEASURED_ROWS = 1000
"""Rows measured for a column's width, spread over the table (as many as Qt measures to size a column
to its contents): a large model's table is measured in milliseconds."""


@dataclass(frozen=True)
class ColumnWidths:
    """What a table's columns need: the other columns in all, and each name column's narrowest
    (:data:`NAME_MIN_CHARS` and its header), typical (:data:`TYPICAL_SHARE`, :data:`SHORT_NAME_CHARS`)
    and whole widths."""

    others: int
    fewest: list[int]
    typical: list[int]
    whole: list[int]

    def fitted(self, width: int) -> list[int]:
        """The name columns' widths in a table ``width`` pixels wide: the typical widths first, what
        remains towards the whole ones, and any width left over to the first, so that the columns
        fill the table instead of ending short of its right edge."""
        room = width - self.others
        base = shared_widths(self.typical, room, self.fewest)
        more = shared_widths([w - b for w, b in zip(self.whole, base)], room - sum(base), [0] * len(base))
        widths = [b + m for b, m in zip(base, more)]
        if widths:
            widths[0] += max(0, room - sum(widths))
        return widths

    def names_whole(self, width: int) -> bool:
        """Whether every name shows whole in a table ``width`` pixels wide."""
        return self.others + sum(self.whole) <= width


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


LINE_BREAKS = re.compile(r" |(?<=-)(?=\w)")
"""Where a header's title may go on to a second line: at a space, or after a hyphen ("Speed-up")."""


def on_two_lines(title: str, metrics: QFontMetricsF) -> str:
    """``title`` broken where its wider line is the narrowest; a title with no break stays on one line."""
    splits = [f"{title[:at.start()]}\n{title[at.end():]}" for at in LINE_BREAKS.finditer(title)]
    return min(splits, key=lambda text: max(map(metrics.horizontalAdvance, text.split("\n"))), default=title)


class WrappingHeader(QHeaderView):
    """A horizontal header whose titles go on two lines when asked (:meth:`set_wrapped`), and which keeps
    the sort arrow's room in the sorted section only: Qt 6 keeps it in every section, some 20 pixels
    each that a table short of width takes from its names."""

    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.setSectionsClickable(True)  # as QTableView's own header
        self.setHighlightSections(True)
        self.wrapped = False

    def set_wrapped(self, wrapped: bool) -> None:
        """Titles on two lines or on one; the table makes room for the header's new height."""
        if wrapped != self.wrapped:
            self.wrapped = wrapped
            self.headerDataChanged(Qt.Orientation.Horizontal, 0, self.count() - 1)  # drops the cached height
            self.geometriesChanged.emit()

    def width_for(self, section: int, wrapped: bool) -> int:
        """The width ``section`` needs to show its title whole, on two lines or on one."""
        size = self._label_size(section, wrapped)
        if not (self.isSortIndicatorShown() and section == self.sortIndicatorSection()):
            return size.width()
        height = max(self._label_size(s, wrapped).height() for s in range(self.count()))  # the arrow's scale
        return size.width() + height + self.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMargin)

    def sectionSizeFromContents(self, section: int) -> QSize:
        return QSize(self.width_for(section, self.wrapped), self._label_size(section, self.wrapped).height())

    def initStyleOptionForIndex(self, option: QStyleOptionHeader, section: int) -> None:
        super().initStyleOptionForIndex(option, section)
        option.text = self._title(section, self.wrapped)

    def _label_size(self, section: int, wrapped: bool) -> QSize:
        """The title's size as Qt measures it: in bold, as a selected row's headers are drawn."""
        option = QStyleOptionHeader()
        self.initStyleOption(option)
        option.section = section
        option.fontMetrics = QFontMetrics(self._bold())
        option.text = self._title(section, wrapped)
        return self.style().sizeFromContents(QStyle.ContentsType.CT_HeaderSection, option, QSize(), self)

    def _title(self, section: int, wrapped: bool) -> str:
        title = str(self.model().headerData(section, Qt.Orientation.Horizontal) or "")
        return on_two_lines(title, QFontMetricsF(self._bold())) if wrapped else title

    def _bold(self) -> QFont:
        font = QFont(self.font())
        font.setBold(True)
        return font


class RowTableView(QTableView):
    """A table whose columns fit its width, so that it needs no horizontal scroll bar: the other columns
    at their contents' width, the name columns sharing the rest, elided in the middle. When the names
    do not all show whole, the headers go on two lines: a number's header is often wider than the
    number, and the width it gives up shows names whole.

    The cells are measured once for each contents, from the texts: Qt sizing the columns to their
    contents measured up to a thousand rows of each again at every layout, some 100,000 cell reads
    (0.4 s) to show a run of a model of 1,700 nodes."""

    def __init__(self, name_columns: list[int]) -> None:
        super().__init__()
        self._header = WrappingHeader()
        self.setHorizontalHeader(self._header)
        self._name_columns = name_columns
        self._cells: list[list[tuple[int, int]]] | None = None  # measured once for each contents
        self._header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self._header.sortIndicatorChanged.connect(self._fit_columns)  # the sort arrow's room moves

    def setModel(self, model: QSortFilterProxyModel) -> None:  # type: ignore[override]
        super().setModel(model)
        self._cells = None  # new columns
        model.modelReset.connect(self._contents_changed)
        for column in self._name_columns:
            self._header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().viewportEvent(event)

    def _fit_columns(self) -> None:
        """Headers on one line if the names show whole beside them, else on two; then the widths."""
        if self._cells is None:
            self._cells = [self._cell_widths(column) for column in range(self._header.count())]
        width = self.viewport().width()
        others, names = self._widths(self._cells, wrapped=False)
        wrapped = not names.names_whole(width)
        if wrapped:
            others, names = self._widths(self._cells, wrapped=True)
        self._header.set_wrapped(wrapped)
        for column, size in zip(self._other_columns(), others):
            self._header.resizeSection(column, size)
        for column, size in zip(self._name_columns, names.fitted(width)):
            self._header.resizeSection(column, size)

    def _contents_changed(self) -> None:
        self._cells = None
        self._fit_columns()

    def _other_columns(self) -> list[int]:
        return [c for c in range(self._header.count()) if c not in self._name_columns]

    def _widths(self, cells: list[list[tuple[int, int]]], wrapped: bool) -> tuple[list[int], ColumnWidths]:
        """Each other column's width, and what the name columns need, with the headers on one line or two."""
        others = [self._contents_width(cells[c], self._header.width_for(c, wrapped)) for c in self._other_columns()]
        names = [self._name_widths(cells[c], self._header.width_for(c, wrapped)) for c in self._name_columns]
        return others, ColumnWidths(sum(others), *(list(w) for w in zip(*names)))

    def _contents_width(self, cells: list[tuple[int, int]], title: int) -> int:
        """The widest cell, up to :data:`COLUMN_MAX_CHARS`, or the ``title`` width if wider."""
        widest = max((width for width, _ in cells), default=0)
        return max(min(widest, self.fontMetrics().averageCharWidth() * COLUMN_MAX_CHARS), title)

    def _name_widths(self, cells: list[tuple[int, int]], title: int) -> tuple[int, int, int]:
        """A name column's fewest, typical (:data:`TYPICAL_SHARE` and :data:`SHORT_NAME_CHARS`) and
        whole widths (see :class:`ColumnWidths`)."""
        fewest = max(self.fontMetrics().averageCharWidth() * NAME_MIN_CHARS, title)
        widths = sorted(max(width, fewest) for width, _ in cells) or [fewest]
        short = max((width for width, chars in cells if chars <= SHORT_NAME_CHARS), default=0)
        return fewest, max(widths[int(TYPICAL_SHARE * (len(widths) - 1))], short), widths[-1]

    def _cell_widths(self, column: int) -> list[tuple[int, int]]:
        """Each measured cell of ``column``: the width it needs, as Qt would size it (text, margins, grid
        line), and its length in characters."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return []
        metrics, first = QFontMetricsF(self.font()), model.index(0, column)

        def advance(text: str) -> int:  # rounded up, as the item's layout rounds the text's width
            return math.ceil(metrics.horizontalAdvance(text))

        padding = self.sizeHintForIndex(first).width() - advance(str(first.data())) + 1  # + grid
        texts = model.sourceModel().column_texts(column, MEASURED_ROWS)
        widths = {text: advance(text) for text in set(texts)}  # a column repeats its texts
        return [(widths[text] + padding, len(text)) for text in texts]


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
