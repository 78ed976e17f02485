"""Data chosen in the Quantize panel: what a run would refuse is refused when chosen, with the run's reason.

The reasons are computed by the core as a run computes them, so the test fails if the panel words or
checks anything its own way.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from builders import write_npz
from gui_actions import open_demo_window
from q8studio.core import data as data_module
from q8studio.core.data import Dataset, load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core.evaluate import require_labels_fit
from q8studio.core.imagefolder import ImageFolderSource, ImagePreprocessing
from q8studio.gui.main_window import MainWindow


@pytest.fixture
def demo(qtbot, tmp_path: Path) -> MainWindow:
    window = open_demo_window(qtbot, tmp_path)
    return window


def _run_refusal(data: Dataset) -> str:
    """What a run says once it reads ``data``."""
    with pytest.raises(Q8Error) as refused:
        list(data.batches(1))
    return str(refused.value)


def _demo_samples(count: int) -> np.ndarray:
    return np.load(demo_assets().calibration)["image"][:count].copy()


def _nan_npz(folder: Path) -> Path:
    images = _demo_samples(20)
    images[13, 0, 4, 4] = np.nan
    return write_npz(folder / "nan.npz", image=images)


def _folder_with_a_broken_image(folder: Path) -> Path:
    images = folder / "mixed"
    images.mkdir()
    for i, source in enumerate(sorted(demo_assets().images.rglob("*.png"))[:4]):
        shutil.copy(source, images / f"ok{i}.png")
    (images / "broken.png").write_bytes(b"not a png")
    return images


@pytest.mark.parametrize("make", [_nan_npz, _folder_with_a_broken_image], ids=["nan-npz", "unreadable-image"])
@pytest.mark.parametrize("role", ["calibration", "evaluation"])
def test_data_a_run_would_refuse_is_refused_when_chosen_with_the_runs_reason(
        demo: MainWindow, tmp_path: Path, make, role: str) -> None:
    panel = demo.quantize_panel
    panel.set_preprocessing(ImagePreprocessing.from_json(demo_assets().preprocessing))
    path = make(tmp_path)
    field, choose = (panel.calibration, panel.set_calibration) if role == "calibration" else \
        (panel.evaluation, panel.set_evaluation)
    before = field.path()
    assert not choose(path)
    reason = _run_refusal(load_data(path, demo.session.model, preprocessing=panel.preprocessing()))
    assert demo.errors.last_message == reason and demo.errors.dialog.isVisible()
    assert field.path() == before and QApplication.overrideCursor() is None


def test_values_past_the_choose_time_budget_are_refused_by_the_run(
        qtbot, demo: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Huge data is scanned only in part when chosen; the run still refuses the rest, with the same reason."""
    monkeypatch.setattr(data_module, "VALUE_CHECK_BYTES", 13 * _demo_samples(1).nbytes)  # samples 0-12 of 20
    path = _nan_npz(tmp_path)
    assert demo.quantize_panel.set_calibration(path) and demo.quantize_panel.set_evaluation(None)
    with qtbot.waitSignal(demo.run_ended, timeout=60_000) as ended:
        demo.start_run()
    assert ended.args == ["failed"]
    assert demo.errors.last_message == _run_refusal(load_data(path, demo.session.model))
    assert demo.quantize_panel.run_button.isEnabled()


@pytest.mark.parametrize("more", [14, 0], ids=["past-the-bad-sample", "all"])
def test_more_calibration_samples_are_checked_as_choosing_the_data_checks_them(
        demo: MainWindow, tmp_path: Path, more: int) -> None:
    """Data chosen for 10 samples, then a count reaching sample 13 (NaN): refused with the run's reason, and the
    count goes back to the one that was checked."""
    panel, path = demo.quantize_panel, _nan_npz(tmp_path)
    panel.samples.setValue(10)
    assert panel.set_calibration(path)
    panel.samples.setValue(12)  # fewer than the bad sample: nothing to say
    assert demo.errors.last_message == ""
    panel.samples.setValue(more)
    assert demo.errors.last_message == _run_refusal(load_data(path, demo.session.model))
    assert panel.samples.value() == 12 and panel.calibration.path() == path


def test_calibration_labels_a_run_would_compare_on_must_be_classes_of_the_model(
        demo: MainWindow, tmp_path: Path) -> None:
    """Without evaluation data a run compares on the calibration data: its labels are then used."""
    panel, assets = demo.quantize_panel, demo_assets()
    labels12 = write_npz(tmp_path / "labels12.npz", image=_demo_samples(20), labels=np.full(20, 12))
    assert panel.set_calibration(labels12)  # the evaluation data has the labels a run compares on
    assert not panel.set_evaluation(None)
    with pytest.raises(Q8Error) as refused:
        require_labels_fit(load_data(labels12, demo.session.model), demo.session.model)
    reason = str(refused.value)
    assert demo.errors.last_message.startswith(f"{reason} Without evaluation data the run compares on the "
                                               "calibration data")
    assert panel.evaluation.path() == assets.test
    assert panel.set_calibration(assets.calibration) and panel.set_evaluation(None)
    demo.errors.last_message = ""
    assert not panel.set_calibration(labels12)
    assert demo.errors.last_message.startswith(reason) and panel.calibration.path() == assets.calibration


def test_preview_range_shows_no_negative_zero(demo: MainWindow) -> None:
    panel, assets = demo.quantize_panel, demo_assets()
    panel.set_preprocessing(ImagePreprocessing.from_json(assets.preprocessing))
    assert panel.set_calibration(assets.images)
    panel.scale_edit.setText("-1")
    panel.mean_edit.setText("0")
    panel.std_edit.setText("1")
    panel.update_preview()
    sample = ImageFolderSource(assets.images, panel.preprocessing()).load(0)
    assert sample.max() == 0 and np.signbit(sample.max())  # the darkest pixels, times -1
    assert panel.preview_caption.text() == f"Sample 0 as the model sees it (1×16×16, range [{sample.min():.4g}, 0])."


def test_a_mean_beyond_float32_gives_its_reason_not_an_infinite_preview(demo: MainWindow) -> None:
    panel, assets = demo.quantize_panel, demo_assets()
    assert panel.set_calibration(assets.images)
    panel.mean_edit.setText("1e40")
    reason = "Image mean 1e+40 is beyond the float32 range of pixels (±3.4e+38)."
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning, once
        panel.update_preview()
    assert panel.preview_caption.text() == f"No preview: {reason}"
    demo.start_run()
    assert demo.errors.last_message == reason and not demo.runner.busy
