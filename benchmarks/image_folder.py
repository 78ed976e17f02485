"""Choosing a large image folder: how long listing, fingerprinting and checking it take, how long the window
waits when a user picks it or starts a run on it, and the longest the GUI thread is stalled meanwhile (the
window reads data on a worker thread, q8studio/gui/waiting.py).

Builds a folder of N small images (default 50,000, the size of ImageNet's validation set: copies of the
demo's PNGs, and the same images as JPEG, in 10 class folders), then times, fastest of ``--repeat`` runs:
the listing (:func:`q8studio.core.imagefolder.image_files`) against pathlib's ``rglob`` with a sort (the
obvious way, and q8studio's before), ``load_data`` (listing, labels and the fingerprint that decides
whether a run's statistics can be reused), ``check_values`` (headers and ends of the first files), the
preview's first sample, and in a window (offscreen) the Quantize panel's ``set_calibration`` and the reading of
the data a run starts with, each with the longest gap between ticks of a 10 ms timer on the GUI thread. Records
its section of benchmarks/RESULTS.md.

    QT_QPA_PLATFORM=offscreen python benchmarks/image_folder.py [--files 50000] [--workdir DIR] [--no-record]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PIL import Image  # noqa: E402
from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from results_file import measured_with, record_section  # noqa: E402
from q8studio.core.data import load_data  # noqa: E402
from q8studio.core.demo import demo_assets  # noqa: E402
from q8studio.core.imagefolder import CHECK_FILES, IMAGE_SUFFIXES, ImagePreprocessing, first_image, image_files  # noqa: E402
from q8studio.core.model import load_model  # noqa: E402
from q8studio.gui.main_window import MainWindow  # noqa: E402

SECTION = "Choosing a large image folder"
TICK_MS = 10


def build_folder(root: Path, count: int) -> Path:
    """``count`` images in 10 class folders, half PNG and half JPEG; reused when already there."""
    folder = root / f"images_{count}"
    if folder.exists() and sum(1 for _ in folder.rglob("*.*")) == count:
        return folder
    sources = sorted(demo_assets().images.rglob("*.png"))
    encoded = []
    for source in sources:
        with Image.open(source) as image:
            as_jpeg = io.BytesIO()
            image.convert("L").save(as_jpeg, "JPEG")
        encoded += [(".png", source.read_bytes()), (".jpg", as_jpeg.getvalue())]
    for index in range(count):
        suffix, content = encoded[index % len(encoded)]
        path = folder / str(index % 10) / f"{index:06d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder


def rglob_listing(folder: Path) -> list[Path]:
    """The reference: pathlib's recursive glob, one ``is_file`` each, sorted as paths."""
    return sorted(p for p in folder.resolve().rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def fastest(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def longest_stall(repeat: int, action: Callable[[], object]) -> tuple[float, float]:
    """The fastest time of ``action`` and, over all runs, the longest the GUI thread went without running a
    10 ms timer (seconds both): what a user feels as a frozen window."""
    times, gaps = [], [0.0]
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(TICK_MS)
    for _ in range(repeat):
        ticks.clear()
        started = time.perf_counter()
        action()
        ended = time.perf_counter()
        times.append(ended - started)
        marks = [started, *ticks, ended]
        gaps.append(max(later - earlier for earlier, later in zip(marks, marks[1:])))
    timer.stop()
    return min(times), max(gaps)


def window_choice(folder: Path, settings: Path) -> tuple[MainWindow, Callable[[], object]]:
    """A window on the demo, and choosing ``folder`` as its calibration data, as Folder... does."""
    window = MainWindow(QSettings(str(settings), QSettings.Format.IniFormat))
    loaded = QEventLoop()
    window.model_loaded.connect(loaded.quit)
    window.open_demo()  # the model loads on a worker thread
    loaded.exec()
    panel = window.quantize_panel

    def choose() -> None:
        if not panel.set_calibration(folder):
            raise SystemExit("the window refused the folder")

    return window, choose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "q8studio-image-folder")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    folder = build_folder(args.workdir, args.files)
    assets = demo_assets()
    model, prep = load_model(assets.model), ImagePreprocessing.from_json(assets.preprocessing)
    data = load_data(folder, model, preprocessing=prep)
    window, choose = window_choice(folder, args.workdir / "settings.ini")
    assert list(image_files(folder)) == rglob_listing(folder)  # the same files in the same order
    rows = [
        ("listing: pathlib rglob + sort (reference)", fastest(args.repeat, lambda: rglob_listing(folder))),
        ("listing: image_files", fastest(args.repeat, lambda: list(image_files(folder)))),
        ("load_data (listing, labels, fingerprint)",
         fastest(args.repeat, lambda: load_data(folder, model, preprocessing=prep))),
        (f"check_values (first {min(CHECK_FILES, data.count):,} files)", fastest(args.repeat, data.check_values)),
        ("preview: first sample", fastest(args.repeat, lambda: first_image(folder, prep))),
    ]
    in_window = [
        ("window: choose the folder as calibration data", longest_stall(args.repeat, choose)),
        ("window: read the data to start a run", longest_stall(args.repeat, window.quantize_panel.datasets)),
    ]
    window.close()  # stops its worker threads
    app.processEvents()
    lines = [f"| {what} | {seconds:.3f} | |" for what, seconds in rows]
    lines += [f"| {what} | {seconds:.3f} | {gap * 1000:.0f} |" for what, (seconds, gap) in in_window]
    section = "\n".join([
        f"## {SECTION}",
        "",
        f"`python benchmarks/image_folder.py --files {args.files}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"with {measured_with('numpy', 'Pillow', 'PySide6-Essentials')}; QT_QPA_PLATFORM=offscreen. A folder of "
        f"{data.count:,} small images (the demo's PNGs and the same as JPEG, 10 class folders), from the page "
        f"cache; fastest of {args.repeat} runs. The window reads a folder on a worker thread and waits in an event "
        "loop, showing a progress dialog with Cancel after 0.4 s; \"longest GUI stall\" is the longest the GUI "
        f"thread went without running a {TICK_MS} ms timer in any run (the previews are made on the GUI thread).",
        "",
        "| step | s | longest GUI stall ms |",
        "|---|---:|---:|",
        *lines,
    ])
    print(section)
    if not args.no_record:
        record_section(SECTION, section)


if __name__ == "__main__":
    main()
