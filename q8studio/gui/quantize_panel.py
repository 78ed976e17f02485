"""The quantize panel: calibration/evaluation data, image preprocessing with a preview, the recipe, Run.

Data is checked against the model as soon as it is chosen, so a mismatch is reported while the
user still remembers which file it was; the previous choice stays in place. The checks are the core's,
the run's own: shapes and types, values (NaN/Inf, unreadable images) and the labels a run compares on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.clipping import METHODS
from ..core.data import Dataset, load_data
from ..core.errors import Cancelled, Q8Error
from ..core.evaluate import require_labels_fit
from ..core.imagefolder import COLORS, LAYOUTS, ImageOptions, ImagePreprocessing, first_image
from ..core.model import LoadedModel
from ..core.progress import NO_PROGRESS, Progress
from ..core.recipe import ACTIVATION_TYPES, GRANULARITIES, Recipe
from ..core.tensorview import display_image
from . import formatting as fmt
from .banners import BANNERS
from .data_field import DataField
from .errors import ErrorReporter
from .waiting import Waiter

PREVIEW_PIXELS = 112
READY = "Ready."
OUTCOME_CHARS = 240  # about three lines of the dock
SPIN_MAX = 2**31 - 1  # the largest value a QSpinBox holds
FINE_DECIMALS = 6  # 99.99999 as a percentile, 0.9999 as a momentum
T = TypeVar("T")
REFUSAL_STYLE = f"QLabel {{ {BANNERS[False]} border-radius: 4px; padding: 4px 6px; margin: 4px; }}"


class FineSpinBox(QDoubleSpinBox):
    """A spin box that keeps six decimals but shows only those that are not zero (99.99, not 99.990000)."""

    def __init__(self, minimum: float, maximum: float) -> None:
        super().__init__()
        self.setDecimals(FINE_DECIMALS)
        self.setRange(minimum, maximum)

    def textFromValue(self, value: float) -> str:
        text = self.locale().toString(value, "f", self.decimals())
        point = self.locale().decimalPoint()
        return text.rstrip("0").rstrip(point) if point in text else text


class QuantizePanel(QWidget):
    """Every setting of a run; ``recipe()`` and ``datasets()`` turn them into core values."""

    run_requested = Signal()
    cancel_requested = Signal()
    exclusions_edited = Signal(object)  # tuple[str, ...]

    def __init__(self, reporter: ErrorReporter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._reporter = reporter
        self._model: LoadedModel | None = None
        self._refusal: str | None = None
        self._exclude: tuple[str, ...] = ()
        self._checked_samples = 0  # the most calibration samples the chosen data were checked for (0: all)
        self._summaries: dict[Path, str] = {}  # "500 samples (labelled)" of data checked for this model
        self._waiter = Waiter(self, "q8studio-data")
        self.refusal_notice = QLabel()
        self.refusal_notice.setWordWrap(True)
        self.refusal_notice.setStyleSheet(REFUSAL_STYLE)
        self.refusal_notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body = body = QWidget()
        settings = QVBoxLayout(body)
        # The recipe right under the data: at 1400x900 the preview between them left only the
        # clipping method in view.
        settings.addWidget(self._data_group())
        settings.addWidget(self._recipe_group())
        settings.addWidget(self._preprocessing_group())
        settings.addWidget(self._preview_group())
        settings.addWidget(self._float_group())
        settings.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        layout = QVBoxLayout(self)  # Run, Cancel and the progress stay in view however far the settings scroll
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.refusal_notice)
        layout.addWidget(scroll, 1)
        layout.addWidget(self._run_group())
        self.set_recipe(Recipe())
        self._show_method_parameter(self.method.currentText())
        self.set_model(None)

    # --- construction -------------------------------------------------------------------------

    def _data_group(self) -> QGroupBox:
        group = QGroupBox("Data")
        form = QFormLayout(group)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.calibration = DataField("choose calibration data", optional=False)
        self.evaluation = DataField("same as calibration", optional=True)
        self.calibration.chosen.connect(self.set_calibration)
        self.evaluation.chosen.connect(self.set_evaluation)
        self.samples = QSpinBox()
        self.samples.setRange(0, SPIN_MAX)
        self.samples.setSpecialValueText("all")
        self.samples.setToolTip("Calibration samples to use (0 = all)")
        self.samples.setKeyboardTracking(False)  # typing 500 checks 500 samples once, not 5, then 50, then 500
        self.samples.valueChanged.connect(self._samples_changed)
        self.data_info = QLabel()
        self.data_info.setWordWrap(True)
        form.addRow(QLabel("Calibration data"))
        form.addRow(self.calibration)
        form.addRow(QLabel("Evaluation data (optional)"))
        form.addRow(self.evaluation)
        form.addRow("Calibration samples", self.samples)
        form.addRow(self.data_info)
        return group

    def _preview_group(self) -> QGroupBox:
        group = QGroupBox("Preview")
        layout = QVBoxLayout(group)
        self.preview = QLabel("no preview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(PREVIEW_PIXELS + 8)
        self.preview.setStyleSheet("border: 1px solid palette(mid); background: palette(base);")
        self.preview_caption = QLabel()
        self.preview_caption.setWordWrap(True)
        layout.addWidget(self.preview)
        layout.addWidget(self.preview_caption)
        return group

    def _preprocessing_group(self) -> QGroupBox:
        self.preprocessing_box = QGroupBox("Image preprocessing")
        self.preprocessing_box.setToolTip("How image files become model input; used for image folders")
        form = QFormLayout(self.preprocessing_box)
        self.height_spin, self.width_spin = QSpinBox(), QSpinBox()
        for spin in (self.height_spin, self.width_spin):
            spin.setRange(1, 4096)
        size = QHBoxLayout()
        size.addWidget(self.height_spin)
        size.addWidget(QLabel("×"))
        size.addWidget(self.width_spin)
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(LAYOUTS)
        self.color_combo = QComboBox()
        self.color_combo.addItems(COLORS)
        self.scale_edit, self.mean_edit, self.std_edit = QLineEdit(), QLineEdit(), QLineEdit()
        self.mean_edit.setToolTip("One value, or one per channel, separated by commas")
        self.std_edit.setToolTip("One value, or one per channel, separated by commas")
        load = QPushButton("Load settings…")
        load.setToolTip("Read preprocessing settings from a JSON file")
        load.clicked.connect(self._load_preprocessing)
        form.addRow("Size (H × W)", size)
        form.addRow("Layout", self.layout_combo)
        form.addRow("Colour", self.color_combo)
        form.addRow("Scale", self.scale_edit)
        form.addRow("Mean", self.mean_edit)
        form.addRow("Std", self.std_edit)
        form.addRow(load)
        for spin in (self.height_spin, self.width_spin):
            spin.editingFinished.connect(self.update_preview)
        for combo in (self.layout_combo, self.color_combo):
            combo.currentIndexChanged.connect(self.update_preview)
        for edit in (self.scale_edit, self.mean_edit, self.std_edit):
            edit.editingFinished.connect(self.update_preview)
        return self.preprocessing_box

    def _recipe_group(self) -> QGroupBox:
        group = QGroupBox("Quantization")
        form = QFormLayout(group)
        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.method.setToolTip(
            "How each activation's range is chosen from calibration:\n"
            "minmax: observed extremes · percentile: cut the rarest values\n"
            "entropy: minimise KL divergence · mse: minimise quantization error\n"
            "ema: moving average of each sample's extremes, sample by sample"
        )
        # the ranges a recipe allows: 50 < percentile <= 100, 0 < momentum < 1
        self.percentile = FineSpinBox(50.0 + 10.0**-FINE_DECIMALS, 100.0)
        self.percentile.setSingleStep(0.01)
        self.momentum = FineSpinBox(10.0**-FINE_DECIMALS, 1.0 - 10.0**-FINE_DECIMALS)
        self.momentum.setSingleStep(0.01)
        self.granularity = QComboBox()
        self.granularity.addItems(GRANULARITIES)
        self.granularity.setToolTip("Weights: one scale per tensor, or one per output channel")
        self.activation_type = QComboBox()
        self.activation_type.addItems(ACTIVATION_TYPES)
        self.symmetric = QCheckBox("Symmetric activations")
        self.histogram_values = QSpinBox()
        self.histogram_values.setRange(0, SPIN_MAX)
        self.histogram_values.setSingleStep(1024)
        self.histogram_values.setSpecialValueText("every value")
        self.histogram_values.setToolTip(
            "Values of each calibration sample of an activation that enter its histogram\n"
            "(a regular sample of large tensors; the max always sees every value, the min too\n"
            "but for a large tensor that cannot be negative, whose range starts at 0 anyway).\n"
            "More is slower and rarely moves a range."
        )
        form.addRow("Clipping method", self.method)
        self.percentile_label, self.momentum_label = QLabel("Percentile"), QLabel("EMA momentum")
        form.addRow(self.percentile_label, self.percentile)
        form.addRow(self.momentum_label, self.momentum)
        form.addRow("Histogram values", self.histogram_values)
        form.addRow("Weights", self.granularity)
        form.addRow("Activations", self.activation_type)
        form.addRow(self.symmetric)
        self.method.currentTextChanged.connect(self._show_method_parameter)
        return group

    def _float_group(self) -> QGroupBox:
        group = QGroupBox("Nodes kept in float")
        layout = QVBoxLayout(group)
        hint = QLabel("Right-click a node in the graph or a row of the layer table ▸ Keep in float.")
        hint.setWordWrap(True)
        self.float_list = QListWidget()
        self.float_list.setMaximumHeight(90)
        remove = QPushButton("Quantize again")
        remove.setToolTip("Remove the selected layers from the float list")
        remove.clicked.connect(self._remove_selected)
        layout.addWidget(hint)
        layout.addWidget(self.float_list)
        layout.addWidget(remove, 0, Qt.AlignmentFlag.AlignRight)
        return group

    def _run_group(self) -> QGroupBox:
        group = QGroupBox("Run")
        layout = QVBoxLayout(group)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Quantize and compare")
        self.run_button.setToolTip("Calibrate, write the int8 model and compare it with float32 (Ctrl+R)")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run (Esc)")
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.stage = QLabel(READY)
        self.stage.setWordWrap(True)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage)
        return group

    # --- model, data and preview --------------------------------------------------------------

    def set_model(self, model: LoadedModel | None, refusal: str | None = None) -> None:
        """A new model: its data must be chosen again; preprocessing starts from the input's shape.

        ``refusal`` says why the model cannot be quantized: the panel says so at once, and offers
        no data or settings for a run that would only be refused.
        """
        self._model, self._refusal = model, refusal
        self._summaries.clear()
        self.clear_outcome()
        self.calibration.set_path(None)
        self.evaluation.set_path(None)
        self.data_info.setText("")
        self.setEnabled(model is not None)
        self.refusal_notice.setText(refusal or "")
        self.refusal_notice.setVisible(refusal is not None)
        self.body.setEnabled(refusal is None)
        self.set_running(False)
        spec = model.input_specs()[0] if model is not None and len(model.input_specs()) == 1 else None
        try:
            guess = ImagePreprocessing.for_input(spec) if spec is not None else None
        except Q8Error:
            guess = None
        self.set_preprocessing(guess or ImagePreprocessing())
        self.update_preview()

    def set_calibration(self, path: Path | None) -> bool:
        """Choose calibration data if it fits the model; otherwise say why and keep the old choice."""
        if path is None or self._model is None:
            return False
        if not self._check(path, evaluation=False):
            return False
        self._checked_samples = self.samples.value()
        self.calibration.set_path(path)
        self.update_preview()
        self._describe_data()
        return True

    def set_evaluation(self, path: Path | None) -> bool:
        """Choose evaluation data (None: compare on the calibration data) if a run could use it; otherwise
        say why and keep the old choice."""
        if path is not None and not self._check(path, evaluation=True):
            return False
        if path is None and not self._calibration_compares():
            return False
        self.evaluation.set_path(path)
        self._describe_data()
        self.update_preview()
        return True

    def _check(self, path: Path, evaluation: bool) -> bool:
        """Whether a run with the current sample count would read ``path`` without refusing it; False, with the
        reason shown, if not (or if the user cancelled reading a large folder). Its sample count is kept for
        the data line."""
        model, samples = self._model, self.samples.value() or None
        compared = not evaluation and self.evaluation.path() is None
        load = self._loader(path)

        def load_and_check(progress: Progress) -> Dataset:
            data = load(progress)
            if evaluation:
                require_labels_fit(data, model)  # type: ignore[arg-type]
            elif compared:
                _require_compared_labels_fit(data, model, samples)  # type: ignore[arg-type]
            (data if evaluation else data.limited(samples)).check_values(progress=progress)  # what a run reads
            return data

        try:
            data = self._wait(f"Checking {path.name}", load_and_check)
        except Q8Error as exc:
            self._reporter.show(str(exc))
            return False
        except Cancelled:
            return False
        labelled = "labelled" if data.labels is not None else "no labels"
        self._summaries[path] = f"{fmt.count(data.count, 'sample')} ({labelled})"
        return True

    def _samples_changed(self, count: int) -> None:
        """More calibration samples than the chosen data were checked for: check them as choosing the data
        did; if a run would refuse them, say why and go back to the count that was checked."""
        path = self.calibration.path()
        if path is None or not _reads_more(count, self._checked_samples):
            return
        if not self._check(path, evaluation=False):
            with QSignalBlocker(self.samples):
                self.samples.setValue(self._checked_samples)
            return
        self._checked_samples = count

    def _calibration_compares(self) -> bool:
        """Whether a run may compare on the chosen calibration data (as it does without evaluation data)."""
        path = self.calibration.path()
        if path is None:
            return True
        samples, load = self.samples.value() or None, self._loader(path)
        try:
            calibration = self._wait(f"Reading {path.name}", load)
        except Cancelled:
            return False
        except Q8Error:  # unreadable with the image settings now in the form: the preview and a run say why
            return True
        try:
            _require_compared_labels_fit(calibration, self._model, samples)  # type: ignore[arg-type]
        except Q8Error as exc:
            self._reporter.show(str(exc))
            return False
        return True

    def _loader(self, path: Path) -> Callable[[Progress], Dataset]:
        """Loading ``path`` with the form's settings as they are now, for any thread to run."""
        model = self._model
        assert model is not None
        preprocessing = self.preprocessing() if path.is_dir() else None
        return lambda progress: load_data(path, model, preprocessing=preprocessing, progress=progress)

    def _wait(self, title: str, task: Callable[[Progress], T]) -> T:
        """``task`` run off the GUI thread (:mod:`.waiting`); Cancelled if a new model came meanwhile."""
        model = self._model
        result = self._waiter.run(title, task)
        if self._model is not model:
            raise Cancelled()
        return result

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        """The calibration and (optional) evaluation data, loaded with the current preprocessing; raises
        Cancelled if the user cancelled reading a large folder."""
        if self._model is None:
            raise Q8Error("Open a model first.")
        if self._refusal is not None:
            raise Q8Error(self._refusal)
        calibration = self.calibration.path()
        if calibration is None:
            raise Q8Error("Choose calibration data first: a .npz or .npy file, or a folder of images.")
        evaluation = self.evaluation.path()
        load_calibration = self._loader(calibration)
        load_evaluation = self._loader(evaluation) if evaluation else None
        return self._wait("Reading the data", lambda progress: (
            load_calibration(progress), load_evaluation(progress) if load_evaluation else None))

    def run_inputs(self) -> tuple[Recipe, Dataset, Dataset | None] | None:
        """The recipe, calibration and evaluation data a run (or a comparison of methods) takes from the form;
        None, with the reason shown (none when the user cancelled), when the form cannot give them."""
        try:
            return self.recipe(), *self.datasets()
        except Q8Error as exc:
            self._reporter.show(str(exc))
            return None
        except Cancelled:
            return None

    def shutdown(self) -> None:
        """Stop the thread that reads data; called when the window closes."""
        self._waiter.shutdown()

    def _describe_data(self) -> None:
        """Say how many samples each chosen data holds, as found when it was checked (a folder is not listed
        again: half a million images take seconds)."""
        parts = [f"{label}: {self._summaries[path]}"
                 for label, path in (("calibration", self.calibration.path()), ("evaluation", self.evaluation.path()))
                 if path is not None and path in self._summaries]
        self.data_info.setText(" · ".join(parts))

    def preprocessing(self) -> ImagePreprocessing:
        """The image settings in the form; raises Q8Error for values that are not numbers."""
        try:
            return ImagePreprocessing(
                size=(self.height_spin.value(), self.width_spin.value()),
                layout=self.layout_combo.currentText(),
                color=self.color_combo.currentText(),
                scale=float(self.scale_edit.text()),
                mean=_floats(self.mean_edit.text()),
                std=_floats(self.std_edit.text()),
            )
        except ValueError:
            raise Q8Error(
                "Image preprocessing: scale, mean and std must be numbers (mean/std comma-separated)."
            ) from None

    def set_preprocessing(self, pre: ImagePreprocessing) -> None:
        self.height_spin.setValue(pre.size[0])
        self.width_spin.setValue(pre.size[1])
        self.layout_combo.setCurrentText(pre.layout)
        self.color_combo.setCurrentText(pre.color)
        self.scale_edit.setText(fmt.exact(pre.scale))
        self.mean_edit.setText(", ".join(fmt.exact(v) for v in pre.mean))
        self.std_edit.setText(", ".join(fmt.exact(v) for v in pre.std))

    def _load_preprocessing(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Preprocessing settings", "", "JSON (*.json);;All files (*)")
        if path:
            try:
                self.set_preprocessing(ImageOptions.from_json(Path(path)).over(self.preprocessing()))  # keys it omits keep the form's
            except Q8Error as exc:
                self._reporter.show(str(exc))
                return
            self.update_preview()

    def update_preview(self) -> None:
        """Show the first calibration sample as the model will receive it."""
        path = self.calibration.path()
        folders = [p for p in (path, self.evaluation.path()) if p is not None and p.is_dir()]
        self.preprocessing_box.setVisible(bool(folders))
        if path is None or self._model is None:
            self._set_preview(None, "The first calibration sample will show here.")
            return
        try:
            sample, layout = self._first_sample(path)
            pixels = display_image(sample, layout)
        except Q8Error as exc:
            self._set_preview(None, f"No preview: {exc}")
            return
        shape = "×".join(str(d) for d in sample.shape)
        low, high = (fmt.number(float(v)) for v in (sample.min(), sample.max()))
        self._set_preview(pixels, f"Sample 0 as the model sees it ({shape}, range [{low}, {high}]).")

    def _first_sample(self, path: Path) -> tuple[np.ndarray, str]:
        assert self._model is not None
        if path.is_dir():
            pre = self.preprocessing()
            return first_image(path, pre), pre.layout
        spec = self._model.input_specs()[0]
        layout = ImagePreprocessing.for_input(spec).layout
        return self._loader(path)(NO_PROGRESS).first_sample()[spec.name][0], layout  # a file: opened, one row read

    def _set_preview(self, pixels: np.ndarray | None, caption: str) -> None:
        self.preview_caption.setText(caption)
        if pixels is None:
            self.preview.setPixmap(QPixmap())
            self.preview.setText("no preview")
            return
        height, width = pixels.shape[:2]
        fmt_ = QImage.Format.Format_Grayscale8 if pixels.ndim == 2 else QImage.Format.Format_RGB888
        image = QImage(pixels.data, width, height, pixels.strides[0], fmt_).copy()
        scaled = QPixmap.fromImage(image).scaled(
            PREVIEW_PIXELS, PREVIEW_PIXELS, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
        self.preview.setPixmap(scaled)

    # --- recipe -------------------------------------------------------------------------------

    def recipe(self) -> Recipe:
        """The settings as a validated Recipe (Q8Error for an invalid combination)."""
        return Recipe(
            method=self.method.currentText(),
            percentile=self.percentile.value(),
            ema_momentum=self.momentum.value(),
            granularity=self.granularity.currentText(),
            activation_type=self.activation_type.currentText(),
            symmetric_activations=self.symmetric.isChecked(),
            samples=self.samples.value() or None,
            exclude=self._exclude,
            histogram_values=self.histogram_values.value(),
        )

    def set_recipe(self, recipe: Recipe) -> None:
        """Restore every setting of a recipe (the float list goes through ``exclusions_edited``).

        A value the panel cannot hold exactly is refused with the reason, before anything changes:
        a recipe is loaded to reproduce a run, and a rounded value would not.
        """
        _require_fits("percentile", recipe.percentile, self.percentile)
        _require_fits("EMA momentum", recipe.ema_momentum, self.momentum)
        for setting, count in (("sample count", recipe.samples or 0), ("histogram values", recipe.histogram_values)):
            if count > SPIN_MAX:
                raise Q8Error(f"The recipe's {setting} {count:,} is more than the window takes ({SPIN_MAX:,}).")
        self.method.setCurrentText(recipe.method)
        self.percentile.setValue(recipe.percentile)
        self.momentum.setValue(recipe.ema_momentum)
        self.granularity.setCurrentText(recipe.granularity)
        self.activation_type.setCurrentText(recipe.activation_type)
        self.symmetric.setChecked(recipe.symmetric_activations)
        self.samples.setValue(recipe.samples or 0)
        self.histogram_values.setValue(recipe.histogram_values)
        self.exclusions_edited.emit(recipe.exclude)

    def set_exclusions(self, names: tuple[str, ...]) -> None:
        self._exclude = tuple(names)
        self.float_list.clear()
        self.float_list.addItems(list(names))

    def _remove_selected(self) -> None:
        chosen = {item.text() for item in self.float_list.selectedItems()}
        if chosen:
            self.exclusions_edited.emit(tuple(n for n in self._exclude if n not in chosen))

    def _show_method_parameter(self, method: str) -> None:
        for widget in (self.percentile, self.percentile_label):
            widget.setVisible(method == "percentile")
        for widget in (self.momentum, self.momentum_label):
            widget.setVisible(method == "ema")

    # --- run state ----------------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running and self._refusal is None)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first report
            self.stage.setText("Starting…")

    def show_progress(self, stage: str, done: int, total: int, eta_s: float) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total))
        self.stage.setText(fmt.progress_text(stage, done, total, eta_s))

    def show_outcome(self, text: str, complete: bool) -> None:
        """How the run ended, in at most OUTCOME_CHARS characters: a failure can name hundreds of
        tensors, and the wrapped label would squeeze the settings above it (the whole text is in
        the tooltip, and the error dialog)."""
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if complete else 0)
        shown = text if len(text) <= OUTCOME_CHARS else text[: OUTCOME_CHARS - 1].rstrip() + "…"
        self.stage.setText(shown)
        self.stage.setToolTip(text if shown != text else "")

    def clear_outcome(self) -> None:
        """A new model: nothing has run on it yet (and nothing can, when it is refused)."""
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.stage.setText(READY if self._refusal is None else "Cannot quantize this model.")
        self.stage.setToolTip("")


def _require_compared_labels_fit(calibration: Dataset, model: LoadedModel, samples: int | None) -> None:
    """Without evaluation data a run compares on the calibration samples: the core's label check, with the
    way out the panel offers."""
    try:
        require_labels_fit(calibration.limited(samples), model)
    except Q8Error as exc:
        raise Q8Error(f"{exc} Without evaluation data the run compares on the calibration data; choose "
                      "evaluation data, or calibration data without these labels.") from None


def _reads_more(count: int, than: int) -> bool:
    """Whether a sample count reads more samples than another (0 reads them all)."""
    return than != 0 and (count == 0 or count > than)


def _floats(text: str) -> tuple[float, ...]:
    values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    if not values:
        raise ValueError("empty")
    return values


def _require_fits(setting: str, value: float, spin: QDoubleSpinBox) -> None:
    if round(value, spin.decimals()) != value:
        raise Q8Error(f"The recipe's {setting} {value!r} has more than the {spin.decimals()} decimals the window keeps.")
