"""Reading chosen data off the GUI thread: the window keeps painting, long reading shows its progress and can
be cancelled, and cancelling keeps what was chosen before."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QProgressDialog, QPushButton, QWidget

from gui_actions import open_demo_window
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Cancelled, Q8Error
from q8studio.core.imagefolder import image_files
from q8studio.core.progress import Progress
from q8studio.gui import quantize_panel, waiting
from q8studio.gui.main_window import MainWindow
from q8studio.gui.waiting import Waiter

WAIT_S = 20.0  # how long a task below waits to be released: far longer than any test needs


@pytest.fixture
def waiter(qtbot, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(waiting, "SHOW_AFTER_MS", 50)
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.show()
    waiter = Waiter(parent, "q8studio-test-wait")
    yield waiter, parent
    waiter.shutdown()


def _dialog(parent: QWidget) -> QProgressDialog | None:
    return next((d for d in parent.findChildren(QProgressDialog) if d.isVisible()), None)


def _press_cancel(parent: QWidget) -> None:
    _dialog(parent).findChild(QPushButton).click()


def _listing_until(release: threading.Event, stopped: threading.Event):
    """A task that reports files found until ``release`` is set (then returns "listed"), noting in ``stopped``
    that it ended, however it ended."""
    def task(progress: Progress) -> str:
        try:
            found = 0
            while not release.wait(0.005):
                found += 7
                progress.report("Listing images", found, 0)
                if found > WAIT_S / 0.005 * 7:
                    return "timed out"
            return "listed"
        finally:
            stopped.set()
    return task


def test_a_long_task_shows_what_it_does_while_the_window_keeps_painting(qtbot, waiter) -> None:
    waiter, parent = waiter
    release, stopped = threading.Event(), threading.Event()
    ticks: list[int] = []
    ticker = QTimer()
    ticker.timeout.connect(lambda: ticks.append(1))
    ticker.start(10)
    seen: list[str] = []

    def look_then_release() -> None:
        dialog = _dialog(parent)
        seen.append(dialog.labelText() if dialog is not None else "no dialog")
        release.set()

    QTimer.singleShot(400, look_then_release)
    assert waiter.run("Checking calib", _listing_until(release, stopped)) == "listed"
    ticker.stop()
    assert seen[0].startswith("Checking calib\nListing images: ") and seen[0].endswith(" so far")
    assert len(ticks) >= 10  # ~40 ticks of the GUI thread's timer while the task ran
    assert _dialog(parent) is None and QApplication.overrideCursor() is None


def test_cancel_stops_the_task_and_raises_cancelled(qtbot, waiter) -> None:
    waiter, parent = waiter
    release, stopped = threading.Event(), threading.Event()
    QTimer.singleShot(300, lambda: _press_cancel(parent))
    with pytest.raises(Cancelled):
        waiter.run("Checking calib", _listing_until(release, stopped))
    assert stopped.wait(5)  # it stopped at its next report, not when released
    assert not release.is_set() and QApplication.overrideCursor() is None


def test_a_short_task_shows_no_dialog_and_its_error_comes_back_whole(qtbot, waiter) -> None:
    waiter, parent = waiter

    def refuse(progress: Progress) -> None:
        raise Q8Error("calib.npz contains no samples.", "details")

    with pytest.raises(Q8Error, match=r"^calib\.npz contains no samples\.$") as refused:
        waiter.run("Checking calib.npz", refuse)
    assert refused.value.details == "details" and _dialog(parent) is None
    assert waiter.run("Checking calib.npz", lambda progress: 42) == 42


def _slowed(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> None:
    """The panel's data loading held back, as by a folder of half a million images, until ``release``."""
    real = quantize_panel.load_data

    def slow_load(*args, progress: Progress, **kwargs):
        while not release.wait(0.01):
            progress.report("Listing images", 0, 0)
        return real(*args, progress=progress, **kwargs)

    monkeypatch.setattr(quantize_panel, "load_data", slow_load)
    monkeypatch.setattr(waiting, "SHOW_AFTER_MS", 50)


def test_cancelling_a_slow_folder_keeps_the_data_chosen_before(
        qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    window = open_demo_window(qtbot, tmp_path)
    panel, assets = window.quantize_panel, demo_assets()
    described = panel.data_info.text()
    release = threading.Event()
    _slowed(monkeypatch, release)
    QTimer.singleShot(300, lambda: _press_cancel(window))
    assert not panel.set_calibration(assets.images)
    assert panel.calibration.path() == assets.calibration and panel.data_info.text() == described
    assert window.errors.last_message == ""  # cancelled: nothing to explain
    release.set()
    assert panel.set_calibration(assets.images)
    assert panel.calibration.path() == assets.images
    count = len(list(image_files(assets.images)))
    assert panel.data_info.text() == f"calibration: {count} samples (labelled) · evaluation: 360 samples (labelled)"


def test_cancelling_the_reading_of_the_data_starts_no_run(
        qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    window: MainWindow = open_demo_window(qtbot, tmp_path)
    release = threading.Event()
    _slowed(monkeypatch, release)
    QTimer.singleShot(300, lambda: _press_cancel(window))
    window.start_run()
    assert not window.runner.busy and window.quantize_panel.run_button.isEnabled()
    assert window.errors.last_message == "" and window.session.run is None
    release.set()
