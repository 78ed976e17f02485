"""GUI: the longest event-loop stall while a calibration runs (target: none over 100 ms).

Opens the main window on the bundled demo with a calibration set of N samples (the demo's 500
calibration images repeated) and its test set for the comparison, starts "Quantize and compare",
and probes the GUI thread with a 10 ms QTimer: every gap between two probes is time the window
could not react. Reported per stage of the run (Calibrating is the long one) and for the whole
run, once with an idle user and once with a user clicking a different node every 300 ms (each
click refreshes the inspector and the three histogram tabs). Then all four again with ONNX
Runtime's spin-waiting thread pools turned off in every session (``session.intra_op.allow_spinning``);
as shipped, q8studio turns it off only in its work sessions and keeps it for latency timing and
profiling, as a deployment would run. Records its
section of benchmarks/RESULTS.md.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_stall.py [--samples 10000] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# torch sits in the development environment only (to rebuild the demo); onnxruntime's pre-processing
# would import it mid-run, a one-off stall a plain `pip install q8studio` never sees.
sys.modules["torch"] = None  # type: ignore[assignment]
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from results_file import measured_with, record_section  # noqa: E402
from q8studio.core.demo import demo_assets  # noqa: E402
from q8studio.gui.main_window import MainWindow  # noqa: E402

PROBE_MS = 10
CLICK_MS = 300
TARGET_MS = 100.0
SECTION = "GUI: event-loop stall during a calibration run"


class Probe:
    """Timestamps every tick of a 10 ms timer and the stage the run was in at that moment."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.stages: list[str] = []
        self.stage = "Starting"
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(PROBE_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())
        self.stages.append(self.stage)

    def gaps_by_stage(self) -> dict[str, np.ndarray]:
        """Milliseconds between consecutive ticks, keyed by the stage of the later tick."""
        gaps = np.diff(np.asarray(self.ticks)) * 1000.0
        stages = np.asarray(self.stages[1:])
        found = {"whole run": gaps}
        for stage in dict.fromkeys(self.stages[1:]):
            found[stage] = gaps[stages == stage]
        return found


class _QuietSessionOptions(ort.SessionOptions):
    """SessionOptions with spin-waiting off: idle ORT worker threads sleep instead of burning a core."""

    def __init__(self) -> None:
        super().__init__()
        self.add_session_config_entry("session.intra_op.allow_spinning", "0")


def big_calibration(folder: Path, samples: int) -> Path:
    with np.load(demo_assets().calibration) as demo:
        images, labels = demo["image"], demo["labels"]
    repeat = int(np.ceil(samples / len(images)))
    path = folder / f"calib_{samples}.npz"
    np.savez(path, image=np.tile(images, (repeat, 1, 1, 1))[:samples], labels=np.tile(labels, repeat)[:samples])
    return path


def wait_for(signal, timeout_s: float) -> list[object]:
    loop = QEventLoop()
    received: list[object] = []
    signal.connect(lambda *args: (received.extend(args), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    return received


def measure(window: MainWindow, calibration: Path, clicking: bool) -> tuple[dict[str, np.ndarray], float, str]:
    window.quantize_panel.set_calibration(calibration)
    probe = Probe()
    window.runner.progress.connect(lambda stage, *_: setattr(probe, "stage", stage))
    nodes = [node.name for node in window.session.model.graph.nodes]
    clicker = QTimer()
    clicker.setInterval(CLICK_MS)
    clicker.timeout.connect(lambda: window.session.select(nodes[len(probe.ticks) % len(nodes)]))
    probe.timer.start()
    if clicking:
        clicker.start()
    started = time.perf_counter()
    window.start_run()
    outcome = wait_for(window.run_ended, timeout_s=900)
    elapsed = time.perf_counter() - started
    clicker.stop()
    probe.timer.stop()
    return probe.gaps_by_stage(), elapsed, outcome[0] if outcome else "timeout"


Row = tuple[str, str, str, np.ndarray]  # ORT spinning, user, stage, gaps


def table(rows: list[Row]) -> str:
    lines = ["| ORT spinning | user | stage | probes | longest gap ms | 99th pct ms | median ms | gaps > 100 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for spinning, user, stage, gaps in rows:
        if gaps.size == 0:
            continue
        lines.append(f"| {spinning} | {user} | {stage} | {gaps.size} | {gaps.max():.1f} | "
                     f"{np.percentile(gaps, 99):.1f} | {np.median(gaps):.1f} | {int((gaps > TARGET_MS).sum())} |")
    return "\n".join(lines)


def verdict(rows: list[Row], label: str, keep) -> str:
    worst = max((gaps.max() for row in rows if keep(row) and (gaps := row[3]).size), default=0.0)
    return f"- {label}: **{'MET' if worst <= TARGET_MS else 'NOT MET'}** (longest gap {worst:.1f} ms)"


def machine() -> str:
    return (f"{measured_with('PySide6-Essentials', 'pyqtgraph', 'onnxruntime')} (load average "
            f"{os.getloadavg()[0]:.1f}: the machine is shared); Qt platform {os.environ.get('QT_QPA_PLATFORM', 'default')}")



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="calibration samples (demo images repeated)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    rows: list[Row] = []
    durations = []
    with tempfile.TemporaryDirectory() as folder:
        calibration = big_calibration(Path(folder), args.samples)
        window = MainWindow(QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat))
        window.show()
        window.open_demo()
        wait_for(window.model_loaded, timeout_s=60)
        for spinning in ("on", "off"):
            if spinning == "off":
                ort.SessionOptions = _QuietSessionOptions  # every session created from now on
            for user, clicking in (("idle", False), ("clicking", True)):
                gaps, elapsed, outcome = measure(window, calibration, clicking)
                if outcome != "finished":
                    print(f"the run ended with '{outcome}': {window.errors.last_message}", file=sys.stderr)
                    return 1
                durations.append(f"spinning {spinning}, {user}: {elapsed:.1f} s")
                rows += [(spinning, user, stage, values) for stage, values in gaps.items()]
        window.close()
        app.processEvents()
    text = (
        f"`python benchmarks/gui_stall.py --samples {args.samples}` on {time.strftime('%Y-%m-%d %H:%M')}: "
        f"{machine()}.\n\n"
        f"The main window on the demo model calibrates on {args.samples:,} samples (the demo's calibration "
        f"images repeated) and compares on the 360-sample test set, once with an idle user and once with a node "
        f"selected every {CLICK_MS} ms (inspector + histograms redrawn). A {PROBE_MS} ms QTimer probes the GUI "
        f"thread; a gap is the time between two probes (about {PROBE_MS} ms when the window is free). The stages "
        "are the run's progress stages. Each case runs with q8studio's ONNX Runtime sessions as shipped "
        "(spinning on: work sessions do not spin, timing sessions do) and with spin-waiting disabled in every "
        "session (spinning off). torch is hidden, as in a "
        "plain install (the development environment has it to rebuild the demo). Run times: "
        f"{'; '.join(durations)}.\n\n"
        f"{table(rows)}\n\n"
        f"Target: no stall over {TARGET_MS:.0f} ms during a run:\n\n"
        + "\n".join([
            verdict(rows, "while calibrating, as shipped, idle or clicking",
                    lambda r: r[0] == "on" and r[2] == "Calibrating"),
            verdict(rows, "whole run, as shipped, idle user", lambda r: r[0] == "on" and r[1] == "idle"),
            verdict(rows, "whole run, as shipped, clicking user", lambda r: r[0] == "on" and r[1] == "clicking"),
            verdict(rows, "whole run, spinning off, idle or clicking", lambda r: r[0] == "off"),
        ])
    )
    print(text)
    if not args.no_record:
        record_section(SECTION, f"## {SECTION}\n\n{text.strip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
