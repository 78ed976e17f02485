"""``q8studio [MODEL] [--demo] [--run] [--screenshot PATH]``: start the window.

``--run`` starts quantization as soon as the model (and, for the demo, its data) is loaded;
``--screenshot`` saves the window once the run has ended, or once the model is shown without
``--run``, then exits: exit code 0 if everything worked, 1 if loading or the run failed. It shows
the default size and layout, and needs no display.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import shiboken6
from PySide6.QtCore import QMessageLogContext, QtMsgType, QTimer, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from ..cli import COMMANDS
from ..core.environment import version_line
from .main_window import MainWindow

OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints()"
"""What Qt's offscreen platform warns each time a window's size hints change: it has no window
manager to pass them to. A ``--screenshot`` run printed it eight times."""
SETTLE_MS = 500
"""Let layouts, plots and the worker that computes the selected node's numbers finish first."""
ACTIVATION_TAB = 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="q8studio",
        description=f"Inspect and int8-quantize ONNX models (GUI). Commands, each with its --help: {', '.join(COMMANDS)}.",
    )
    parser.add_argument("model", nargs="?", type=Path, help="an ONNX model to open")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo model with its data")
    parser.add_argument("--run", action="store_true", help="quantize and compare as soon as the model is loaded")
    parser.add_argument("--screenshot", type=Path, metavar="PATH.png",
                        help="save the window (default size and layout) after loading, and the run with --run, "
                             "then exit; needs no display")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the versions of q8studio and of the libraries it computes with, then exit")
    args = parser.parse_args(argv)
    if args.demo and args.model:
        parser.error("give either MODEL or --demo, not both")
    if (args.run or args.screenshot) and not (args.demo or args.model):
        parser.error("--run and --screenshot need MODEL or --demo")
    return args


class _Script:
    """Drives the window for ``--run`` / ``--screenshot`` and records the exit code."""

    def __init__(self, window: MainWindow, args: argparse.Namespace) -> None:
        self.window = window
        self.args = args
        self.exit_code = 0
        window.model_loaded.connect(self._on_loaded)
        window.run_ended.connect(self._on_run_ended)
        window.loader.failed.connect(lambda *_: self._finish(1))

    def _on_loaded(self, _model: object) -> None:
        if self.args.run:
            QTimer.singleShot(0, self._start_run)
        elif self.args.screenshot:
            QTimer.singleShot(SETTLE_MS, lambda: self._finish(0))

    def _start_run(self) -> None:
        self.window.start_run()
        if not self.window.runner.busy:  # refused (no data, bad settings): the dialog says why
            self._finish(1)

    def fail(self) -> None:
        """Nothing could be opened (the dialog says why): end a scripted session with an error."""
        self._finish(1)

    def _on_run_ended(self, outcome: str) -> None:
        if outcome == "finished":  # the screenshot shows what the run added: the clipping ranges
            self.window.histograms.tabs.setCurrentIndex(ACTIVATION_TAB)
        self._finish(0 if outcome == "finished" else 1)

    def _finish(self, code: int) -> None:
        self.exit_code = max(self.exit_code, code)
        if code and self.window.errors.last_message:  # a script has no one to read the dialog
            print(f"q8studio: error: {self.window.errors.last_message}", file=sys.stderr)
        if self.args.screenshot:
            QTimer.singleShot(SETTLE_MS, self._screenshot_and_quit)

    def _screenshot_and_quit(self) -> None:
        path = self.args.screenshot
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.window.grab().save(str(path)):
            print(f"q8studio: error: could not save the screenshot to {path}", file=sys.stderr)
            self.exit_code = 1
        else:
            print(f"screenshot: {path}")
        self.window.close()


def no_display(environ: Mapping[str, str], platform: str) -> bool:
    """Whether Qt would find no screen to open a window on: on Linux, neither an X11 nor a Wayland
    display and no platform chosen (Qt then aborts the process with a page of plugin messages)."""
    return (platform.startswith("linux") and not environ.get("QT_QPA_PLATFORM")
            and not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"))


def quiet_offscreen_noise() -> None:
    """Drop :data:`OFFSCREEN_NOISE` from Qt's messages; every other one still reaches stderr."""

    def handler(_kind: QtMsgType, _context: QMessageLogContext, message: str) -> None:
        if message != OFFSCREEN_NOISE:
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def run_gui(argv: list[str]) -> int:
    args = parse_args(argv)
    if no_display(os.environ, sys.platform):
        if args.screenshot is None:
            print("q8studio: error: there is no display to open the window on (DISPLAY is not set); run it on a "
                  "desktop, add --screenshot PATH.png to save the window without one, or use the commands "
                  f"({', '.join(COMMANDS)}).", file=sys.stderr)
            return 2
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        quiet_offscreen_noise()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("q8studio")
    app.setOrganizationName("q8studio")
    window = MainWindow(remember_layout=args.screenshot is None)
    script = _Script(window, args)
    window.show()
    if args.demo:
        if not window.open_demo():
            script.fail()
    elif args.model:
        window.open_model(args.model)
    app.exec()
    code = script.exit_code
    # Destroy the widgets while QApplication still exists: left to interpreter shutdown,
    # PySide may tear them down in an order that crashes.
    shiboken6.delete(window)
    return code
