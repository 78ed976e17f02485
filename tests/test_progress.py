"""Progress throttling: few reports within a stage, yet every stage reaches the callback."""

from __future__ import annotations

from q8studio.core.progress import Progress


def test_reports_within_a_stage_are_throttled_but_every_stage_change_passes() -> None:
    """A stage that starts right after another's last step passes, or the old stage stays on screen."""
    seen: list[tuple[str, int, int]] = []
    progress = Progress(callback=lambda *report: seen.append(report), min_interval_s=60.0)
    for done in range(1, 101):
        progress.report("Calibrating", done, 100)
    progress.report("Choosing ranges", 0, 1)
    progress.report("Writing the int8 model", 0, 1)
    for done in range(50):
        progress.report("Comparing", done, 100)
    assert seen == [("Calibrating", 1, 100), ("Calibrating", 100, 100), ("Choosing ranges", 0, 1),
                    ("Writing the int8 model", 0, 1), ("Comparing", 0, 100)]
