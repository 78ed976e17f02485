"""File ▸ Export and the recipe actions: write the int8 model, the report and the recipe, read a recipe.

Every method takes an optional path (tests and scripts pass one; the menu asks with a dialog),
reports failures in the window's error dialog and returns whether it wrote or read anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QFileDialog, QWidget

from ..core.errors import Q8Error
from ..core.fileio import atomic_path, same_file
from ..core.imagefolder import ImageOptions, records_preprocessing
from ..core.recipe import Recipe
from ..core.report import evaluation_report, quantize_report, write_report
from ..core.workflow import StudioRun
from .errors import ErrorReporter
from .quantize_panel import QuantizePanel
from .session import Session


class Exporter:
    """Exports of the session's last run and the recipe of the quantize panel."""

    def __init__(self, parent: QWidget, session: Session, panel: QuantizePanel, errors: ErrorReporter,
                 status: Callable[[str], None], folder: Callable[[], Path]) -> None:
        self._parent = parent
        self._session = session
        self._panel = panel
        self._errors = errors
        self._status = status
        self._folder = folder  # where dialogs start when no model suggests a place
        self._exported: tuple[StudioRun, Path] | None = None  # (run, where its int8 model was exported)

    def export_model(self, path: Path | None = None) -> bool:
        """Copy the last run's int8 model to ``path``; never over the source model."""
        run, model = self._session.run, self._session.model
        if run is None or model is None:
            self._errors.show("Run quantization first; there is no int8 model to export yet.")
            return False
        suggested = model.path.with_name(f"{model.path.stem}.int8.onnx")
        target = self._save_path("Export int8 model", suggested, "ONNX models (*.onnx)", path)
        if target is None:
            return False
        if same_file(model.path, target):
            self._errors.show(f"Refusing to overwrite the source model {model.path.name}; choose another file name.")
            return False
        if not self._write(target, lambda staging: shutil.copyfile(run.result.output_path, staging), "the int8 model"):
            return False
        self._exported = (run, target)
        return True

    def export_report(self, path: Path | None = None) -> bool:
        """The JSON report: recipe, ranges, weight errors, float layers and the comparison."""
        run, model = self._session.run, self._session.model
        if run is None or model is None:
            self._errors.show("Run quantization first; there is no report to export yet.")
            return False
        target = self._save_path("Export report", model.path.with_name(f"{model.path.stem}.report.json"),
                                 "JSON (*.json)", path)
        if target is None:
            return False
        data = self._session.run_calibration
        # the run's own int8 file is scratch, deleted on close: name the exported copy, or none
        exported = self._exported[1] if self._exported is not None and self._exported[0] is run else None
        report = quantize_report(run.result, source=model.path, calibration=data)
        report["output_model"] = str(exported) if exported else None
        report["evaluation"] = evaluation_report(run.comparison, model.path, exported, run.evaluation_data)
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
        preprocessing of its run, when it read an image folder)."""
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self._parent, "Load recipe", str(self._folder()),
                                                    "JSON (*.json);;All files (*)")
            if not chosen:
                return False
            path = Path(chosen)
        try:
            recipe = Recipe.load(path)
            # a report of an image-folder run is reproduced only with the samples it made, as the CLI's --recipe knows
            options = ImageOptions.from_json(path) if records_preprocessing(path) else None
            preprocessing = options.over(self._panel.preprocessing()) if options is not None else None
            known = self._node_names() if self._session.model is not None else set(recipe.exclude)
            foreign = [name for name in recipe.exclude if name not in known]
            self._panel.set_recipe(recipe.with_changes(exclude=tuple(n for n in recipe.exclude if n in known)))
        except Q8Error as exc:
            self._errors.show(str(exc))
            return False
        if preprocessing is not None:
            self._panel.set_preprocessing(preprocessing)
            self._panel.update_preview()
        self._status(f"Loaded the recipe{' and the image preprocessing' if preprocessing else ''} of {Path(path).name}")
        if foreign:  # a recipe saved for another model is worth loading for its settings
            self._errors.show(f"Loaded the recipe, without the {len(foreign)} layer(s) it keeps in float that this "
                              f"model does not have: {', '.join(foreign)}.")
        return True

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
        """Write through a temporary file beside ``target``: a failure leaves no half-written file."""
        try:
            with atomic_path(target) as staging:
                write(staging)
        except (OSError, Q8Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._errors.show(f"Could not write {what} to {target}: {reason}.", str(exc))
            return False
        self._status(f"Saved {what} to {target}")
        return True
