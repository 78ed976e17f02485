"""The main window: lays out the panels, owns the session and the workers, and wires them together.

Panels only talk to the :class:`Session`; this window turns session changes into panel updates
and user commands (open, run, cancel, export) into core calls on worker threads. The speed jobs
(profile, keep slower layers in float) live in :mod:`.int8_actions`, Explain in :mod:`.explain_dock`,
the comparison of clipping methods in :mod:`.methods_job`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QMouseEvent, QResizeEvent
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QSplitter, QStackedWidget

from ..core.data import Dataset
from ..core.demo import demo_assets
from ..core.errors import Q8Error
from ..core.model import LoadedModel, load_model
from ..core.probe import comparison_view
from ..core.profile import ProfileReport, boundary_marks, slower_in_int8
from ..core.tensorview import NodeNumbers, node_numbers
from ..core.workflow import StudioRun, input_numbers, latest_timing, run_node_numbers
from . import formatting as fmt
from .errors import ErrorReporter
from .explain_dock import ExplainDock
from .exports import Exporter
from .graph_items import ENTER_BADGE, LEAVE_BADGE
from .graph_view import GraphView
from .help import GuideWindow, about_box
from .histograms import HistogramPanel
from .inspector import Inspector, no_activation_reason
from .int8_actions import Int8Actions
from .methods_job import MethodsJob
from .overlays import show_overlay
from .quantize_panel import QuantizePanel
from .results_panel import NO_RUN, ResultsPanel
from .runs import RunOutcome, run_and_profile
from .scratch import ScratchFolder
from .session import Session
from .start_page import StartPage
from .tasks import TaskRunner

DEFAULT_SIZE = (1400, 900)
MAX_RECENT = 8
COMPARE_SAMPLES = 16
FLOAT_BADGE = "FP32"
LAYOUT_VERSION = 2
"""Bumped when docks are added: a layout saved without them is ignored rather than restored half-way."""
DOCK_SHARES: dict[str, tuple[Qt.Orientation, float, int, int]] = {
    "quantize": (Qt.Orientation.Horizontal, 0.2, 360, 520),
    "inspector": (Qt.Orientation.Horizontal, 0.33, 420, 10_000),
    "results": (Qt.Orientation.Vertical, 0.28, 220, 10_000),
}
"""Each dock's share of the window's width or height, and the fewest and most pixels it gets: left
alone, Qt gives every pixel a window grows by to the graph, and a 2560-pixel window kept its plots
and tables at their 1400-pixel widths. The form on the left needs little more than its minimum."""
FOLLOW_KEY = "docksFollowWindow"
"""Saved with the layout: whether the user never sized a dock, so the docks still follow the window."""


class MainWindow(QMainWindow):
    """``model_loaded``, ``run_finished`` and ``run_ended`` let scripts (``--run --screenshot``) follow along."""

    model_loaded = Signal(object)
    run_finished = Signal(object)
    run_ended = Signal(str)  # "finished", "failed" or "cancelled"

    def __init__(self, settings: QSettings | None = None, *, remember_layout: bool = True) -> None:
        """``remember_layout`` False: open at the default size and layout and leave the saved ones as they
        are, as a scripted screenshot must, to look the same on every machine."""
        super().__init__()
        self.settings = settings if settings is not None else QSettings("q8studio", "q8studio")
        self._remember_layout = remember_layout
        self.setWindowTitle("q8studio")
        self.setAcceptDrops(True)
        self.resize(*DEFAULT_SIZE)
        self.session = Session(self)
        self.errors = ErrorReporter(self)
        self.loader = TaskRunner("q8studio-load", self)
        self.runner = TaskRunner("q8studio-run", self)
        self.inspect = TaskRunner("q8studio-inspect", self)
        self.probe = TaskRunner("q8studio-probe", self)
        self.scratch = ScratchFolder()
        self._run_output: Path | None = None  # where the run in flight writes its int8 model
        self._shown_output: Path | None = None  # the int8 model of the session's run
        self._after_load: Callable[[LoadedModel], None] | None = None
        self._run_data: tuple[Dataset, Dataset | None] | None = None
        self.guide: GuideWindow | None = None
        self._docks_follow_window = True  # until the user sizes or moves a dock, or a saved layout says otherwise

        self.start_page = StartPage()
        self.graph = GraphView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.graph)
        self.setCentralWidget(self.stack)
        self.inspector = Inspector()
        self.histograms = HistogramPanel()
        self.quantize_panel = QuantizePanel(self.errors)
        self.results = ResultsPanel()
        self.explain_dock = ExplainDock(self.session, self)
        self.int8 = Int8Actions(self.session, self.results.speed, self.quantize_panel, self.errors, self._status,
                                self.scratch, self)
        self.methods = MethodsJob(self.session, self.results.methods, self.quantize_panel, self.errors, self._status,
                                  self)
        self.exporter = Exporter(self, self.session, self.quantize_panel, self.errors, self._status, self._last_folder,
                                 self.scratch.hold)
        self._build_docks()
        self._build_actions()
        self.model_status = QLabel()
        self.statusBar().addPermanentWidget(self.model_status)
        self._connect()
        self._restore_settings()
        self._show_workspace(False)

    # --- construction -------------------------------------------------------------------------

    def _build_docks(self) -> None:
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.inspector)
        right.addWidget(self.histograms)
        right.setSizes([230, 520])
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (
            ("quantize", "Quantize", self.quantize_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("inspector", "Node", right, Qt.DockWidgetArea.RightDockWidgetArea),
            ("results", "Results", self.results, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"{key}Dock")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.tabifyDockWidget(self.docks["inspector"], self.explain_dock)
        self.docks["explain"] = self.explain_dock
        for dock in self.docks.values():
            dock.dockLocationChanged.connect(self._user_arranged_docks)
            dock.topLevelChanged.connect(self._user_arranged_docks)
        self._fit_docks()

    def _fit_docks(self) -> None:
        """Size the docks to their :data:`DOCK_SHARES` of the window."""
        for orientation in (Qt.Orientation.Horizontal, Qt.Orientation.Vertical):
            extent = self.width() if orientation == Qt.Orientation.Horizontal else self.height()
            keys = [key for key, share in DOCK_SHARES.items() if share[0] == orientation]
            sizes = [_dock_extent(extent, *DOCK_SHARES[key][1:]) for key in keys]
            self.resizeDocks([self.docks[key] for key in keys], sizes, orientation)

    def _user_arranged_docks(self) -> None:
        self._docks_follow_window = False

    def _action(self, menu: object, text: str, slot: Callable[[], object], shortcut: str | QKeySequence | None = None,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)  # type: ignore[attr-defined]
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&Open model…", self.open_dialog, QKeySequence.StandardKey.Open, "Open an ONNX model")
        self._action(file_menu, "Open &demo", self.open_demo, None, "The bundled digits CNN with its data")
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        exporter = self.exporter
        self.export_model_action = self._action(file_menu, "&Export int8 model…", exporter.export_model, "Ctrl+E",
                                                "Save the int8 model of the last run")
        self.export_report_action = self._action(file_menu, "Export &report…", exporter.export_report, None,
                                                 "Save the JSON report of the last run")
        file_menu.addSeparator()
        self._action(file_menu, "&Load recipe…", exporter.load_recipe, None, "Restore every quantization setting")
        self._action(file_menu, "&Save recipe…", exporter.save_recipe, None, "Save the quantization settings as JSON")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        run_menu = bar.addMenu("&Run")
        self.run_action = self._action(run_menu, "&Quantize and compare", self.start_run, "Ctrl+R",
                                       "Calibrate, write the int8 model and compare it with float32")
        self.cancel_action = self._action(run_menu, "&Cancel", self.cancel_run, "Esc", "Stop the running job")
        run_menu.addSeparator()
        self.profile_action = self._action(run_menu, "&Profile int8 vs float", self.profile, "Ctrl+P",
                                           "Time every layer of both models: where int8 ran, what it made faster")
        self.keep_float_action = self._action(run_menu, "&Keep slower layers in float", self.keep_slower_in_float,
                                              None, "Re-quantize with the layers int8 made slower kept in float")
        self.methods_action = self._action(run_menu, "Compare clipping &methods", self.compare_methods, "Ctrl+M",
                                           "Quantize with each clipping method from one calibration and compare "
                                           "each with float32")

        view_menu = bar.addMenu("&View")
        self._action(view_menu, "&Find node…", self.focus_search, QKeySequence.StandardKey.Find)
        self._action(view_menu, "Fit &graph", self.graph.fit)
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "int8 &questions…", self.show_guide, QKeySequence.StandardKey.HelpContents,
                     "How int8 inference works, and where q8studio shows it on your model")
        self._action(help_menu, "&About q8studio", lambda: about_box(self), None,
                     "Versions of q8studio and its libraries, for a bug report")
        self._set_run_actions()

    def _connect(self) -> None:
        session = self.session
        session.model_changed.connect(self._on_model_changed)
        session.selection_changed.connect(self._on_selection_changed)
        session.exclusions_changed.connect(self._on_exclusions_changed)
        session.run_changed.connect(self._on_run_changed)
        session.profile_changed.connect(self._on_profile_changed)
        self.int8.busy_changed.connect(self._set_run_actions)
        self.methods.busy_changed.connect(self._set_run_actions)
        self.results.methods.compare_requested.connect(self.compare_methods)
        self.results.speed.profile_requested.connect(self.profile)
        self.results.speed.keep_float_requested.connect(self.keep_slower_in_float)
        self.graph.node_selected.connect(session.select)
        self.graph.kept_in_float = self.results.kept_in_float = lambda name: name in session.exclude
        self.graph.keep_in_float_requested.connect(self._toggle_float)
        self.results.node_activated.connect(session.select)
        self.results.keep_in_float_requested.connect(self._toggle_float)
        self.results.overlay_metric_changed.connect(lambda _: self._update_overlay())
        self.quantize_panel.exclusions_edited.connect(session.set_exclusions)
        self.quantize_panel.run_requested.connect(self.start_run)
        self.quantize_panel.cancel_requested.connect(self.cancel_run)
        self.start_page.open_requested.connect(self.open_dialog)
        self.start_page.demo_requested.connect(self.open_demo)
        self.start_page.guide_requested.connect(self.show_guide)
        self.start_page.recent_requested.connect(self.open_model)
        self.loader.finished.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_load_failed)
        self.runner.progress.connect(self.quantize_panel.show_progress)
        self.runner.finished.connect(self._on_run_finished)
        self.runner.failed.connect(self._on_run_failed)
        self.runner.cancelled.connect(self._on_run_cancelled)
        self.inspect.finished.connect(self._on_node_numbers)
        self.inspect.failed.connect(self._on_node_numbers_failed)
        self.probe.finished.connect(self.histograms.show_comparison)
        self.probe.failed.connect(lambda message, _details: self.histograms.show_comparison(None, message))

    # --- opening models -----------------------------------------------------------------------

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open ONNX model", str(self._last_folder()),
                                              "ONNX models (*.onnx);;All files (*)")
        if path:
            self.open_model(Path(path))

    def open_model(self, path: Path, then: Callable[[LoadedModel], None] | None = None) -> None:
        """Load on a worker; the current model stays until the new one has loaded.

        Refused while a job that re-quantizes the current model runs: the new model would receive its
        outcome (a new model cancels a profile, which only measures the old one)."""
        if self.runner.busy:
            self.errors.show("Wait for the running quantization to finish, or cancel it (Esc), before opening a model.")
            return
        if self.int8.keeping:
            self.errors.show("Wait for Run ▸ Keep slower layers in float to finish, or cancel it (Esc), "
                             "before opening a model.")
            return
        self._after_load = then
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        self.loader.start(lambda _progress: load_model(path))

    def open_demo(self) -> bool:
        """The bundled model with its calibration and test data already chosen; False if it is missing."""
        try:
            assets = demo_assets()
        except Q8Error as exc:
            self.errors.show(str(exc))
            return False

        def choose_data(_model: LoadedModel) -> None:
            self.quantize_panel.set_calibration(assets.calibration)
            self.quantize_panel.set_evaluation(assets.test)

        self.open_model(assets.model, then=choose_data)
        return True

    def _on_model_loaded(self, model: LoadedModel) -> None:
        self.session.set_model(model)
        self.exporter.model_opened()
        self._remember_recent(model.path)
        self.settings.setValue("lastDirectory", str(model.path.parent))
        then, self._after_load = self._after_load, None
        if then is not None:
            then(model)
        # a note (an old opset upgraded in memory) stays long enough to be read
        self.statusBar().showMessage(" ".join([f"Opened {model.path}.", *model.notes]), 15000 if model.notes else 5000)
        self.model_loaded.emit(model)

    def _on_load_failed(self, message: str, details: str) -> None:
        self._after_load = None
        self.statusBar().showMessage("Could not open the model.", 5000)
        self.errors.show(message, details)

    def _on_model_changed(self, model: LoadedModel | None) -> None:
        self.graph.set_model(model)
        self.quantize_panel.set_model(model, self.session.refusal)
        self.inspector.clear()
        self.histograms.clear()
        self._show_workspace(model is not None)
        if model is None:
            self.setWindowTitle("q8studio")
            self.model_status.setText("")
            return
        summary = model.summary()
        self.setWindowTitle(f"{model.path.name} — q8studio")
        self.model_status.setText(
            f"{model.path.name}: {summary['node_count']} nodes, {summary['parameters']:,} parameters, "
            f"opset {summary['opset']}, {fmt.size(model.file_size)}"
        )

    def show_guide(self) -> None:
        """The int8 questions guide, one window however often it is asked for."""
        if self.guide is None:
            self.guide = GuideWindow(self)
        self.guide.show()
        self.guide.raise_()

    # --- selection ----------------------------------------------------------------------------

    def focus_search(self) -> None:
        if self.session.model is not None:
            self.graph.search.setFocus()
            self.graph.search.selectAll()

    def _on_selection_changed(self, name: str) -> None:
        if self.session.selected_input is not None:
            self.graph.clear_selection()  # a model input has no box in the graph
        else:
            self.graph.select_node(name)
        self.results.select_node(name)
        self._show_selection()

    def _show_selection(self) -> None:
        """The selected node's details, or the selected model input's."""
        if self.session.selected_input is not None:
            self._show_input(self.session.selected_input)
        else:
            self._show_node(self.session.selected or "")

    def _show_input(self, name: str) -> None:
        """A model input the per-layer table lists: its tensor in the Node dock; once a run calibrated it, its
        calibration histogram and its float and int8 values (computed on a worker, as a node's are)."""
        model, run = self.session.model, self.session.run
        assert model is not None
        self.probe.cancel()  # a comparison still running belongs to the previous selection
        self.inspector.show_input(model, name, run)
        self.histograms.show_weight(None, None, f"{name} is the model's input: it has no weights.")
        if run is None:
            self.inspect.cancel()
            before_run = self.session.before_run
            self.histograms.show_activation(None, None, [], "", before_run(
                "Run quantization (Ctrl+R) to collect the input's calibration statistics."))
            self.histograms.show_comparison(None, before_run(
                "Run quantization (Ctrl+R) to compare float and int8 values."))
            return
        self.histograms.show_activation(None, None, [], "", "Computing…")
        self.histograms.show_comparison(None, "Computing…")
        result = run.result
        self.inspect.start(lambda _progress: input_numbers(result, name))

    def _show_node(self, name: str) -> None:
        """Show what is known at once; compute the node's numbers on a worker, then plot them."""
        model, run = self.session.model, self.session.run
        self.probe.cancel()  # a comparison still running belongs to the previous node
        if model is None or not name:
            self.inspect.cancel()
            self.inspector.clear()
            self.histograms.clear()
            return
        self.inspector.show_node(model, name, run)
        self.histograms.show_weight(None, None, "Computing…")
        if run is None:
            before_run = self.session.before_run
            self.histograms.show_activation(None, None, [], "", before_run(
                "Run quantization (Ctrl+R) to collect this node's calibration statistics."))
            self.histograms.show_comparison(None, before_run(
                "Run quantization (Ctrl+R) to compare float and int8 values."))
            self.inspect.start(lambda _progress: node_numbers(model, name))
            return
        self.histograms.show_activation(None, None, [], "", "Computing…")
        self.histograms.show_comparison(None, "Computing…")
        result = run.result
        self.inspect.start(lambda _progress: run_node_numbers(model, name, result))

    def _on_node_numbers(self, numbers: NodeNumbers) -> None:
        model, run = self.session.model, self.session.run
        if model is None or numbers.node != self.session.selection:
            return
        if numbers.node == self.session.selected_input:
            self._show_input_numbers(numbers)
            return
        node = model.graph.node_by_name(numbers.node)
        self.inspector.show_node(model, numbers.node, run, numbers.weights)
        main = numbers.weights[0] if numbers.weights else None
        self.histograms.show_weight(main, numbers.weight_histogram, f"{node.op_type} {node.name} has no weights.")
        if run is None:
            return
        if numbers.tensor is None:
            none = no_activation_reason(model, node, run)
            self.histograms.show_activation(None, None, [], "", none)
            self.histograms.show_comparison(None, none)
            return
        measured = run.error_tensor(node, numbers.tensor)
        if numbers.tensor in node.outputs:
            caption = ""
        elif measured != numbers.tensor:
            caption = f"{node.op_type}'s output is quantized with the range of the tensor it reads, calibrated here:"
        else:
            caption = f"{node.op_type}'s own output is not quantized; showing the nearest tensor that is:"
        self.histograms.show_activation(numbers.stats, numbers.activation_histogram, numbers.ranges,
                                        numbers.used, caption)
        self._compare_tensor(measured)

    def _show_input_numbers(self, numbers: NodeNumbers) -> None:
        run = self.session.run
        if run is None:
            return
        if numbers.tensor is None:
            none = f"The model input {numbers.node} is not quantized: the int8 model reads it as it is."
            self.histograms.show_activation(None, None, [], "", none)
            self.histograms.show_comparison(None, none)
            return
        self.histograms.show_activation(numbers.stats, numbers.activation_histogram, numbers.ranges,
                                        numbers.used)
        self._compare_tensor(numbers.tensor)

    def _on_node_numbers_failed(self, message: str, details: str) -> None:
        """Say so where the numbers would have been, not only in the dialog."""
        self.errors.show(message, details)
        failed = f"Could not compute this node's numbers: {message}"
        self.histograms.show_weight(None, None, failed)
        if self.session.run is not None:
            self.histograms.show_activation(None, None, [], "", failed)
            self.histograms.show_comparison(None, failed)

    def _compare_tensor(self, tensor: str) -> None:
        """Compare on the data the inspector's and the table's errors come from, so the three agree."""
        data, probe = self.session.sample_data(), self.session.run_probe
        if data is None or probe is None:
            return
        self.histograms.show_comparison(None, f"Running both models on {COMPARE_SAMPLES} samples…")
        self.probe.start(lambda progress: comparison_view(
            probe.compare(tensor, data, samples=COMPARE_SAMPLES, progress=progress)
        ))

    def _on_exclusions_changed(self, names: tuple[str, ...]) -> None:
        self.quantize_panel.set_exclusions(names)
        self._update_marks()
        if names:
            self.statusBar().showMessage(f"Kept in float at the next run: {', '.join(names)}", 5000)

    def _toggle_float(self, name: str) -> None:
        """A node menu's keep-in-float entry; taking a node back says so, or "Kept in float: X" stayed up."""
        self.session.toggle_float(name)
        if name not in self.session.exclude:
            self.statusBar().showMessage(f"Quantized in int8 again at the next run: {name}", 5000)

    # --- running ------------------------------------------------------------------------------

    def start_run(self) -> None:
        """Quantize and compare on the run worker; the window stays live and Esc cancels."""
        model = self.session.model
        if model is None or self.runner.busy or self.int8.keeping or self.loader.busy:
            return  # a model being opened would replace this one, and receive its results
        inputs = self.quantize_panel.run_inputs()
        if inputs is None:
            return
        recipe, calibration, evaluation = inputs
        output = self._run_output = self.scratch.new_file(model.path.stem)
        self._run_data = calibration, evaluation

        self.int8.cancel(superseded=True)  # a profile of the previous run would only slow this one down
        self.methods.cancel(superseded=True)  # as would a comparison of methods
        previous = self.session.run.result if self.session.run is not None else None
        self.runner.start(
            lambda progress: run_and_profile(model, calibration, evaluation, recipe, output, progress, previous)
        )
        self.quantize_panel.set_running(True)
        self._set_run_actions()
        self.statusBar().showMessage("Quantizing…")

    def cancel_run(self) -> None:
        """Esc: stop the run, the speed job (profile, keep slower layers in float) or the comparison of methods."""
        if self.runner.busy or self.int8.keeping:
            self.quantize_panel.stage.setText("Cancelling…")
        self.runner.cancel()
        self.int8.cancel()
        self.methods.cancel()

    def compare_methods(self) -> None:
        """Run ▸ Compare clipping methods: show the Methods tab and compare them on the worker."""
        if self.methods_action.isEnabled():
            self.results.show_methods()
            self.methods.start()

    def profile(self) -> None:
        """Run ▸ Profile int8 vs float: show the Speed tab and measure both models again."""
        if self.session.run is not None and not self.runner.busy and not self.methods.busy:
            self.results.show_speed()
            self.int8.profile()

    def keep_slower_in_float(self) -> None:
        """Run ▸ Keep slower layers in float: only while its action is enabled, when some layer is slower in
        int8, and not while a model is being opened: it would replace the run this job re-quantizes."""
        if self.keep_float_action.isEnabled() and not self.loader.busy:
            self.results.show_speed()
            self.int8.keep_slower_in_float()

    def _on_run_finished(self, outcome: RunOutcome) -> None:
        run = outcome.run
        self._run_ended()
        assert self._run_data is not None
        self.int8.deliver(outcome, *self._run_data)
        reused = _reuse_note(run.result.statistics_reused, len(run.result.stats))
        self.quantize_panel.show_outcome(
            f"Done: int8 model compared on {fmt.count(run.comparison.errors.samples, 'sample')}.{reused}", complete=True
        )
        self.statusBar().showMessage("Quantization finished.", 5000)
        if self.session.selection is None and run.comparison.errors.layers:
            self.session.select(self.results.node_at_row(0))
        self.run_finished.emit(run)
        self.run_ended.emit("finished")

    def _on_run_failed(self, message: str, details: str) -> None:
        self._run_ended()
        self.scratch.discard(self._run_output)
        self.quantize_panel.show_outcome("Failed: " + message, complete=False)
        self.statusBar().showMessage("Quantization failed.", 5000)
        self.errors.show(message, details)
        self.run_ended.emit("failed")

    def _on_run_cancelled(self) -> None:
        self._run_ended()
        self.scratch.discard(self._run_output)
        self.quantize_panel.show_outcome("Cancelled.", complete=False)
        self.statusBar().showMessage("Cancelled.", 5000)
        self.run_ended.emit("cancelled")

    def _run_ended(self) -> None:
        self.quantize_panel.set_running(False)
        self._set_run_actions()

    def _set_run_actions(self) -> None:
        busy = self.runner.busy or self.int8.keeping
        self.run_action.setEnabled(not busy)
        self.cancel_action.setEnabled(busy or self.int8.busy or self.methods.busy)
        has_run = self.session.run is not None
        for action in (self.export_model_action, self.export_report_action):
            action.setEnabled(has_run and not busy)
        can_start = has_run and not busy and not self.methods.busy  # a comparison would disturb the timings
        profile = self.session.profile
        slower = profile is not None and bool(slower_in_int8(profile))  # else keeping layers in float changes nothing
        self.profile_action.setEnabled(can_start and not self.int8.busy)
        self.keep_float_action.setEnabled(can_start and not self.int8.busy and slower)
        self.results.speed.set_busy(self.int8.busy, can_start)
        can_compare = self.session.model is not None and self.session.refusal is None and not busy
        self.methods_action.setEnabled(can_compare and not self.int8.busy and not self.methods.busy)
        self.results.methods.set_busy(self.methods.busy, can_compare and not self.int8.busy)

    def _update_marks(self) -> None:
        """FP32 badges: the layers the user keeps in float, and those the last run left in float."""
        run = self.session.run
        kept = set(self.session.exclude) | ({n.name for n in run.result.float_nodes} if run is not None else set())
        self.graph.set_marked(kept, FLOAT_BADGE)

    def _on_run_changed(self, run: StudioRun | None) -> None:
        """The overlay follows in :meth:`_on_profile_changed`: the session always emits that next."""
        self._discard_replaced_output(run)
        self.results.show_run(run, self.session.before_run(NO_RUN))
        self._update_marks()
        self._set_run_actions()
        if self.session.selection:
            self.results.select_node(self.session.selection)
            self._show_selection()

    def _discard_replaced_output(self, run: StudioRun | None) -> None:
        """The int8 model of the run ``run`` replaces can be neither shown nor exported any more."""
        output = run.result.output_path if run is not None else None
        if output != self._shown_output:
            self.scratch.discard(self._shown_output)
        self._shown_output = output

    def _on_profile_changed(self, report: ProfileReport | None) -> None:
        """Speed overlays, the badges where float32 enters (→int8) and leaves (→fp32) the int8 model, and
        the summary's latency: the Speed tab and the summary show one timing."""
        if self.session.run is not None:
            self.results.show_timing(latest_timing(self.session.run.comparison, report))
        self._set_run_actions()
        marks = boundary_marks(report) if report is not None else {"Q": set(), "DQ": set()}
        self.graph.set_marked(marks["Q"], ENTER_BADGE)
        self.graph.set_marked(marks["DQ"], LEAVE_BADGE)
        self._update_overlay()
        if self.session.selection:
            self.results.select_node(self.session.selection)

    def _update_overlay(self) -> None:
        session = self.session
        show_overlay(self.graph, self.results.metric_key(), session.model, session.run, session.profile)

    # --- window state -------------------------------------------------------------------------

    def _status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def _last_folder(self) -> Path:
        return Path(str(self.settings.value("lastDirectory", str(Path.home()))))

    def _show_workspace(self, on: bool) -> None:
        self.stack.setCurrentWidget(self.graph if on else self.start_page)
        for dock in self.docks.values():
            dock.setVisible(on)

    def recent_files(self) -> list[Path]:
        stored = self.settings.value("recentFiles", []) or []
        paths = [stored] if isinstance(stored, str) else list(stored)
        return [Path(p) for p in paths]

    def _remember_recent(self, path: Path) -> None:
        resolved = str(Path(path).resolve())
        paths = [resolved] + [str(p) for p in self.recent_files() if str(p) != resolved]
        self.settings.setValue("recentFiles", paths[:MAX_RECENT])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        paths = [p for p in self.recent_files() if p.is_file()]
        self.start_page.set_recent(paths)
        self.recent_menu.clear()
        for path in paths:
            action = self.recent_menu.addAction(str(path))
            action.triggered.connect(lambda _checked=False, p=path: self.open_model(p))
        self.recent_menu.setEnabled(bool(paths))

    def _restore_settings(self) -> None:
        """A saved layout wins; its docks follow the window only if the user had not sized them (a layout
        saved before that was recorded counts as the user's)."""
        geometry, state = self.settings.value("geometry"), self.settings.value("windowState")
        if self._remember_layout and isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if self._remember_layout and isinstance(state, QByteArray) and self.restoreState(state, LAYOUT_VERSION):
            self._docks_follow_window = self.settings.value(FOLLOW_KEY, False, type=bool)
        self._refresh_recent()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._docks_follow_window:
            self._fit_docks()

    def event(self, event: QEvent) -> bool:
        """A press on no child widget is on a dock separator: from then on the user sizes the docks. (A
        press a child ignores, on a label say, reaches the window too, over that child.)"""
        if isinstance(event, QMouseEvent) and event.type() == QEvent.Type.MouseButtonPress \
                and self.childAt(event.position().toPoint()) is None:
            self._user_arranged_docks()
        return super().event(event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_model(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_model(event)
        if path is not None:
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.open_model(path))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._remember_layout:
            self.settings.setValue("geometry", self.saveGeometry())
        if self._remember_layout and self.session.model is not None:  # the start page hides the docks
            self.settings.setValue("windowState", self.saveState(LAYOUT_VERSION))
            self.settings.setValue(FOLLOW_KEY, self._docks_follow_window)
        self.settings.sync()
        for runner in (self.runner, self.probe, self.inspect, self.loader, self.explain_dock.runner, self.int8.runner,
                       self.methods.runner):
            runner.shutdown()
        self.quantize_panel.shutdown()
        self.errors.close()
        self.scratch.cleanup()
        super().closeEvent(event)


def _dock_extent(window_extent: int, share: float, fewest: int, most: int) -> int:
    """A dock's width or height in a window ``window_extent`` pixels wide or high."""
    return max(fewest, min(most, round(share * window_extent)))


def _dropped_model(event: QDragEnterEvent | QDropEvent) -> Path | None:
    mime = event.mimeData()
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and url.toLocalFile().lower().endswith(".onnx"):
            return Path(url.toLocalFile())
    return None


def _reuse_note(reused: int, total: int) -> str:
    """What the run took from the previous one's calibration, for the outcome line."""
    if not reused:
        return ""
    if reused == total:
        return " Calibration statistics reused from the previous run."
    return f" Calibration statistics of {reused} of {total} tensors reused from the previous run."
