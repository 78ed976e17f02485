"""One unit for a latency within a panel: the demo's median latency read "0.0129 ms" beside glue and layer
times in µs. Under 1 ms latencies show in µs, and a float32/int8 pair always shares its unit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gui_actions import QUICK_SAMPLES, open_demo_window
from q8studio.gui import formatting as fmt
from q8studio.gui.main_window import MainWindow

MICROSECONDS = re.compile(r"([\d.]+) µs")


def test_a_latency_pair_shares_one_unit() -> None:
    assert fmt.latency_pair(0.0129, 0.0196) == ("12.9 µs", "19.6 µs")
    assert fmt.latency_pair(0.00093, 0.0012) == ("0.930 µs", "1.20 µs")  # three digits, as in ms
    assert fmt.latency_pair(0.25, 0.9996) == ("250.0 µs", "999.6 µs")
    assert fmt.latency_pair(0.9, 1.2) == ("0.900 ms", "1.200 ms")  # one of them at 1 ms or more: both in ms
    assert fmt.latency_pair(12.3454, 8.0) == ("12.345 ms", "8.000 ms")


@pytest.fixture
def profiled_demo(qtbot, tmp_path: Path) -> MainWindow:
    """A window that ran the demo, which profiles it: the Speed tab shows the profile."""
    window = open_demo_window(qtbot, tmp_path, samples=QUICK_SAMPLES)
    with qtbot.waitSignal(window.run_finished, timeout=60_000):
        window.start_run()
    assert window.session.profile is not None and window.session.profile.latency_ms is not None
    return window


def shown_microseconds(text: str) -> list[float]:
    return [float(value) for value in MICROSECONDS.findall(text)]


def test_the_speed_tab_and_the_summary_show_the_demo_latency_in_microseconds(qtbot, profiled_demo) -> None:
    float_ms, int8_ms = profiled_demo.session.profile.latency_ms
    assert float_ms < 1.0 and int8_ms < 1.0
    expected = [pytest.approx(1000.0 * float_ms, abs=0.05), pytest.approx(1000.0 * int8_ms, abs=0.05)]

    lines = profiled_demo.results.speed.summary.toPlainText().splitlines()
    latency_line = next(line for line in lines if line.startswith("Median latency"))
    assert shown_microseconds(latency_line) == expected
    assert not [line for line in lines if re.search(r"\d ms\b", line)]  # the glue, the table: all µs

    summary = profiled_demo.results.summary
    row = next(r for r in range(summary.rowCount()) if summary.verticalHeaderItem(r).text() == "Median latency")
    assert shown_microseconds(f"{summary.item(row, 0).text()} {summary.item(row, 1).text()}") == expected
