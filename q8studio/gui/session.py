"""The state every panel shares: the open model, the selected node or model input, the float-kept layers,
the last run and its speed profile, the last comparison of clipping methods.

Panels never talk to each other; they change the session and listen to its signals, so one
selection (from the graph, a table or the search box) updates every view the same way.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..core.data import Dataset
from ..core.methods import MethodComparison
from ..core.model import LoadedModel
from ..core.probe import TensorProbe
from ..core.profile import ProfileReport
from ..core.refusals import quantize_refusal
from ..core.workflow import StudioRun


class Session(QObject):
    model_changed = Signal(object)  # LoadedModel | None
    selection_changed = Signal(str)  # the selected node's or model input's name, "" for none
    exclusions_changed = Signal(object)  # tuple[str, ...]
    run_changed = Signal(object)  # StudioRun | None
    profile_changed = Signal(object)  # ProfileReport | None

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model: LoadedModel | None = None
        self.refusal: str | None = None  # why the open model cannot be quantized
        self.selection: str | None = None
        """The selected node's name, or a model input's: no node computes an input, but the per-layer table
        lists its error, and a row selected there must not leave the other views on the node selected before."""
        self.exclude: tuple[str, ...] = ()
        self.run: StudioRun | None = None
        self.methods: MethodComparison | None = None  # Run ▸ Compare clipping methods, on this model
        self.run_calibration: Dataset | None = None
        self.run_probe: TensorProbe | None = None
        self.run_evaluation: Dataset | None = None
        self.profile: ProfileReport | None = None

    def set_model(self, model: LoadedModel | None) -> None:
        """A new model starts from scratch: no selection, no exclusions, no results."""
        self.model = model
        self.refusal = quantize_refusal(model) if model is not None else None
        self.selection = None
        self.exclude = ()
        self.methods = None
        self.set_run(None, None, None)
        self.model_changed.emit(model)
        self.exclusions_changed.emit(self.exclude)
        self.selection_changed.emit("")

    @property
    def selected(self) -> str | None:
        """The selected node (None while a model input is selected). A node of the same name as an input
        wins: the graph, the Node dock and Explain all show nodes."""
        graph = self.model.graph if self.model is not None else None
        return self.selection if graph is not None and self.selection in graph.by_name else None

    @property
    def selected_input(self) -> str | None:
        """The selected model input, when the selection is not a node."""
        return self.selection if self.selection is not None and self.selected is None else None

    def select(self, name: str | None) -> None:
        """Select a node, or a model input; any other name is ignored."""
        graph = self.model.graph if self.model is not None else None
        if graph is None or (name or None) == self.selection:
            return
        if name and name not in graph.by_name and name not in graph.inputs:
            return
        self.selection = name or None
        self.selection_changed.emit(name or "")

    def set_exclusions(self, names: tuple[str, ...] | list[str]) -> None:
        unique = tuple(dict.fromkeys(names))
        if unique != self.exclude:
            self.exclude = unique
            self.exclusions_changed.emit(unique)

    def toggle_float(self, name: str) -> None:
        """Keep a node in float, or quantize it again if it already was kept."""
        if name in self.exclude:
            self.set_exclusions([n for n in self.exclude if n != name])
        else:
            self.set_exclusions([*self.exclude, name])

    def set_run(self, run: StudioRun | None, calibration: Dataset | None, probe: TensorProbe | None, *,
                evaluation: Dataset | None = None, profile: ProfileReport | None = None) -> None:
        """The last run, the data it calibrated and was compared on, the probe that compares its tensors,
        and its speed profile when one was measured with it (the old profile belongs to the old model)."""
        self.run = run
        self.run_calibration = calibration
        self.run_probe = probe
        self.run_evaluation = evaluation
        self.profile = profile
        self.run_changed.emit(run)
        self.profile_changed.emit(profile)

    def set_profile(self, profile: ProfileReport | None) -> None:
        self.profile = profile
        self.profile_changed.emit(profile)

    def before_run(self, invitation: str) -> str:
        """What a view that shows results says before any run: ``invitation`` to run, or why no run
        can happen on this model."""
        return self.refusal or invitation

    def sample_data(self) -> Dataset | None:
        """The samples Explain and the profiler run on: the run's evaluation data, else its calibration data."""
        return self.run_evaluation if self.run_evaluation is not None else self.run_calibration
