"""File ▸ Export and the recipe actions: write the int8 model, the report and the recipe, read a recipe.

Every action takes an optional path (tests and scripts pass one; the menu asks with a dialog),
reports failures in the window's error dialog and returns whether it wrote or read anything.
What of a recipe depends on the model (layers kept in float, an image-folder report's
preprocessing) is checked against the open model, or against the next one when none is open.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QFileDialog, QWidget

from ..core.errors import Q8Error
from ..core.fileio import atomic_path, check_outputs
from ..core.imagefolder import ImageOptions, ImagePreprocessing, recorded_preprocessing
from ..core.quantize import files_read
from ..core.recipe import Recipe
from ..core.report import run_report, write_report
from ..core.workflow import StudioRun
from . import formatting as fmt
from .errors import ErrorReporter
from .quantize_panel import QuantizePanel
from .session import Session


INT8_MODEL = "the int8 model"
"""What :meth:`Exporter.export_model` writes, as messages name it."""


@dataclass(frozen=True)
class ModelParts:
    """What of a loaded recipe belongs to one model: the layers it keeps in float and, from the report
    of an image-folder run, the image preprocessing the run recorded."""

    source: str  # the file's name, for messages
    exclude: tuple[str, ...]
    preprocessing: ImageOptions | None


@dataclass(frozen=True)
class FittedParts:
    """:class:`ModelParts` checked against the open model."""

    exclude: tuple[str, ...]  # the layers it has
    foreign: tuple[str, ...]  # the layers it does not have
    preprocessing: ImagePreprocessing | None  # over the form's: keys a report leaves out keep their values


class Exporter:
    """Exports of the session's last run and the recipe of the quantize panel."""

    def __init__(self, parent: QWidget, session: Session, panel: QuantizePanel, errors: ErrorReporter,
                 status: Callable[[str], None], folder: Callable[[], Path],
                 hold: Callable[[Path], AbstractContextManager[None]]) -> None:
        self._parent = parent
        self._session = session
        self._panel = panel
        self._errors = errors
        self._status = status
        self._folder = folder  # where dialogs start when no model suggests a place
        self._hold = hold  # keeps a run's scratch int8 file while it is being exported
        self._exported: tuple[StudioRun, Path] | None = None  # (run, where its int8 model was exported)
        self._waiting: ModelParts | None = None  # of a recipe loaded with no model open

    def export_model(self, path: Path | None = None) -> bool:
        """Copy the last run's int8 model to ``path``; never over the source model."""
        run, model = self._session.run, self._session.model
        if run is None or model is None:
            self._errors.show("Run quantization first; there is no int8 model to export yet.")
            return False
        suggested, source = model.path.with_name(f"{model.path.stem}.int8.onnx"), run.result.output_path
        with self._hold(source):  # the save dialog runs the event loop: a model opened meanwhile replaces the run
            target = self._save_path("Export int8 model", suggested, "ONNX models (*.onnx)", path)
            if target is None:
                return False
            if not self._write(target, lambda path: _copy_atomically(source, path), INT8_MODEL):
                return False
        self._exported = (run, target)
        return True

    def export_report(self, path: Path | None = None) -> bool:
        """The JSON report: recipe, ranges, weight errors, float layers, the comparison and the speed
        profile, with the latency the Results summary shows, and the comparison of clipping methods."""
        run, model = self._session.run, self._session.model
        if run is None or model is None:
            self._errors.show("Run quantization first; there is no report to export yet.")
            return False
        target = self._save_path("Export report", model.path.with_name(f"{model.path.stem}.report.json"),
                                 "JSON (*.json)", path)
        if target is None:
            return False
        # the run's own int8 file is scratch, deleted once replaced: name the exported copy, or none
        exported = self._exported[1] if self._exported is not None and self._exported[0] is run else None
        report = run_report(run, self._session.profile, source=model.path,
                            calibration=self._session.run_calibration, exported=exported,
                            methods=self._session.methods)
        return self._write(target, lambda staging: write_report(report, staging), "the report")

    def save_recipe(self, path: Path | None = None) -> bool:
        try:
            recipe = self._panel.recipe()
        except Q8Error as exc:
            self._errors.show(str(exc))
            return False
        target = self._save_path("Save recipe", self._folder() / "recipe.json", "JSON (*.json)", path)
        if target is None:
            return False
        return self._write(target, recipe.save, "the recipe")

    def load_recipe(self, path: Path | None = None) -> bool:
        """Restore every setting from a recipe, or from a report, which holds one (and the image
        preprocessing of its run, when it read an image folder).

        With no model open, the layers kept in float and the preprocessing wait for the model opened
        next (:meth:`model_opened`), to be checked against it rather than dropped.
        """
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self._parent, "Load recipe", str(self._folder()),
                                                    "JSON (*.json);;All files (*)")
            if not chosen:
                return False
            path = Path(chosen)
        try:
            recipe = Recipe.load(path)
            # a report of an image-folder run is reproduced only with the samples it made, as the CLI's --recipe knows
            parts = ModelParts(Path(path).name, recipe.exclude, recorded_preprocessing(path))
            fitted = self._fit(parts) if self._session.model is not None else None
            self._panel.set_recipe(recipe if fitted is None else recipe.with_changes(exclude=fitted.exclude))
        except Q8Error as exc:
            self._errors.show(str(exc), exc.details)
            return False
        self._waiting = parts if fitted is None else None
        if fitted is None:
            self._status(f"Loaded the recipe {parts.source} for the model you open next")
            return True
        recorded = " and the image preprocessing it recorded" if fitted.preprocessing is not None else ""
        self._status(f"Loaded the recipe {parts.source}{recorded}")
        self._apply(fitted, "Loaded the recipe")
        return True

    def model_opened(self) -> None:
        """A model has just opened (no exclusions, preprocessing guessed from its input): give it the
        layers and the preprocessing of a recipe loaded while no model was open."""
        parts, self._waiting = self._waiting, None
        model = self._session.model
        if parts is None or model is None:
            return
        try:
            fitted = self._fit(parts)
        except Q8Error as exc:
            self._errors.show(f"Opened {model.path.name} without the layers kept in float and the image "
                              f"preprocessing of the recipe {parts.source}: {exc}")
            return
        self._session.set_exclusions(fitted.exclude)
        self._apply(fitted, f"Opened {model.path.name} with the recipe {parts.source}")

    def _fit(self, parts: ModelParts) -> FittedParts:
        """``parts`` checked against the open model; Q8Error (before anything changed) for preprocessing
        the form cannot take."""
        known = self._node_names()
        return FittedParts(
            exclude=tuple(name for name in parts.exclude if name in known),
            foreign=tuple(name for name in parts.exclude if name not in known),
            preprocessing=parts.preprocessing.over(self._panel.preprocessing()) if parts.preprocessing else None,
        )

    def _apply(self, fitted: FittedParts, done: str) -> None:
        """Show the preprocessing, and say which layers were left out (``done`` begins the sentence)."""
        if fitted.preprocessing is not None:
            self._panel.set_preprocessing(fitted.preprocessing)
            self._panel.update_preview()
        if fitted.foreign:  # a recipe saved for another model is worth loading for its settings
            self._errors.show(f"{done}, without the {fmt.count(len(fitted.foreign), 'node')} it keeps in float "
                              f"that this model does not have: {', '.join(fitted.foreign)}.")

    def _node_names(self) -> set[str]:
        """Names a recipe may keep in float: the open model's nodes, and those of the last run's
        pre-processed model (Keep slower layers in float can keep a node it fused, say a Gemm
        made of a MatMul and an Add)."""
        model, run = self._session.model, self._session.run
        names = {node.name for node in model.graph.nodes} if model is not None else set()
        if run is not None:
            names |= {node.name for node in run.result.prepared.model.graph.nodes}
        return names

    def _save_path(self, title: str, suggested: Path, filter_: str, given: Path | None) -> Path | None:
        if given is not None:
            return Path(given)
        path, _ = QFileDialog.getSaveFileName(self._parent, title, str(suggested), filter_)
        return Path(path) if path else None

    def _write(self, target: Path, write: Callable[[Path], object], what: str) -> bool:
        """``write`` the file at ``target``, which it does atomically (a failure leaves no half-written
        file); refused up front over the model or data files, as the command line refuses."""
        try:
            check_outputs({what: target}, self._files_kept(what))
            write(target)
        except Q8Error as exc:  # it names the file and says why
            self._errors.show(str(exc))
            return False
        self._status(f"Saved {what} to {target}")
        return True

    def _files_kept(self, writing: str) -> dict[str, Path]:
        """What writing ``writing`` may not replace: the files read, and the int8 model exported last
        (a report or recipe over it would destroy the model), unless that model is exported again."""
        files, exported = self._files_read(), self._exported[1] if self._exported is not None else None
        if writing == INT8_MODEL or exported is None or not exported.is_file():
            return files
        return files | {"the int8 model you exported": exported}

    def _files_read(self) -> dict[str, Path]:
        """What no export may replace: the open model's files, the data of its last run, and the data
        the panel names for the next one."""
        model = self._session.model
        data = [d for d in (self._session.run_calibration, self._session.run_evaluation) if d is not None]
        files = files_read(model, *data) if model is not None else {}
        chosen = {"the calibration data": self._panel.calibration.path(),
                  "the evaluation data": self._panel.evaluation.path()}
        return files | {what: path for what, path in chosen.items() if path is not None}


def _copy_atomically(source: Path, target: Path) -> None:
    with atomic_path(target) as staging:
        shutil.copyfile(source, staging)
