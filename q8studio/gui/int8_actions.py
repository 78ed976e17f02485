"""Run ▸ Profile int8 vs float, and Run ▸ Keep slower layers in float: the speed half of a run.

Every run arrives profiled (:mod:`.runs`); profiling again measures the same models anew.
Keeping the slower layers in float searches candidates with the core, then runs once more with
the exclusions it chose, so the session holds that run exactly as if the user had run with those
layers kept in float: the int8 model to export, FP32 badges, the keep-in-float list, results,
histograms and a fresh profile. Both jobs share one worker so their timings never compete.

The search times its candidates against float32 once more; its notice labels those figures as the
choice's and leaves whether int8 pays to the fresh profile of the model now shown. It says what the search
did, not why: a later round, or the fastest candidate, may keep layers the first profile showed faster in
int8, and the nodes it counts are those every other view counts (:attr:`~q8studio.core.workflow.StudioRun.float_tally`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..core.data import Dataset
from ..core.profile import ProfileReport
from ..core.progress import Progress
from ..core.speedup import KeepFloatOutcome, keep_slow_float, label_slower_in_int8
from ..core.workflow import StudioRun
from . import formatting as fmt
from .errors import ErrorReporter
from .quantize_panel import QuantizePanel
from .runs import RunOutcome, profile_run, run_and_profile
from .scratch import ScratchFolder
from .session import Session
from .speed_panel import NOTHING_KEPT, SpeedPanel
from .tasks import TaskRunner

NO_RUN = "Run quantization (Ctrl+R): both models are then profiled layer by layer."


@dataclass
class KeptFloat:
    """What keeping the slower layers in float produced: the core's search and the run it chose, and the
    nodes the run it started from kept in float already."""

    outcome: KeepFloatOutcome
    chosen: RunOutcome
    kept_before: tuple[str, ...]


class Int8Actions(QObject):
    """Delivers runs to the session and runs the profile and keep-in-float jobs; ``busy_changed`` after each."""

    busy_changed = Signal()
    profiled = Signal(object)  # ProfileReport
    kept_float = Signal(object)  # KeepFloatOutcome

    def __init__(self, session: Session, speed: SpeedPanel, quantize_panel: QuantizePanel, errors: ErrorReporter,
                 status: Callable[[str], None], scratch: ScratchFolder, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.speed = speed
        self.quantize_panel = quantize_panel
        self.errors = errors
        self.status = status
        self.scratch = scratch
        self.runner = TaskRunner("q8studio-speed", self)
        self.keeping = False  # the running job is keep-in-float (it replaces the run when done)
        self._keep_outputs: tuple[Path, ...] = ()  # keep-in-float's files: the search's choice, then the run's
        self._profiled: StudioRun | None = None  # the run the last Profile again measured
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        speed.cancel_requested.connect(self.cancel)
        session.run_changed.connect(self._on_run_changed)
        session.profile_changed.connect(self._on_profile_changed)

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def deliver(self, outcome: RunOutcome, calibration: Dataset, evaluation: Dataset | None) -> None:
        """Make ``outcome`` the session's run, with its profile or the reason it has none."""
        self.session.set_run(outcome.run, calibration, outcome.probe, evaluation=evaluation, profile=outcome.profile)
        if outcome.profile is None:
            self.speed.show_report(None, f"Profiling failed: {outcome.profile_problem}")

    def profile(self) -> None:
        """Profile the current run's float32 and int8 models again, on the worker; the old profile
        stays on screen until the new one replaces it."""
        session = self.session
        run, model, data = session.run, session.model, session.sample_data()
        if run is None or model is None or data is None or self.busy:
            return
        self._profiled = run
        self.runner.start(lambda progress: profile_run(model, run.result, data, progress))
        self.busy_changed.emit()

    def keep_slower_in_float(self) -> None:
        """Keep the layers int8 made slower in float, re-quantize, compare and profile again."""
        session = self.session
        run, model, data = session.run, session.model, session.sample_data()
        calibration, evaluation = session.run_calibration, session.run_evaluation
        if run is None or model is None or calibration is None or data is None or self.busy:
            return
        recipe, stem, kept_before = run.result.recipe, model.path.stem, run.float_tally.kept_names
        search_output, output = self._keep_outputs = self.scratch.new_file(stem), self.scratch.new_file(stem)

        def task(progress: Progress) -> KeptFloat:
            outcome = keep_slow_float(model, calibration, recipe, search_output, data, previous=run.result,
                                      progress=progress)
            chosen = run_and_profile(model, calibration, evaluation, outcome.chosen.result.recipe, output, progress,
                                     previous=run.result)
            label_slower_in_int8(chosen.run.result, outcome.kept_float)
            return KeptFloat(outcome, chosen, kept_before)

        self.keeping = True
        self.speed.show_notice("")
        self.runner.start(task)
        self.quantize_panel.set_running(True)
        self.status("Keeping the layers int8 made slower in float…")
        self.busy_changed.emit()

    def cancel(self, *, superseded: bool = False) -> None:
        """Stop the job; ``superseded``: for a new run, whose own progress the status bar shows instead."""
        if self.busy:
            if superseded:
                self._profiled = None
            self.runner.cancel()
            self.speed.job_progress.stage.setText("Cancelling…")

    def _end(self) -> bool:
        """The job is over: free the panels; True if it was keep-in-float."""
        keeping, self.keeping = self.keeping, False
        if keeping:
            self.quantize_panel.set_running(False)
        self.busy_changed.emit()
        return keeping

    def _on_progress(self, stage: str, done: int, total: int, eta_s: float) -> None:
        self.speed.job_progress.show_progress(stage, done, total, eta_s)
        if self.keeping:
            self.quantize_panel.show_progress(stage, done, total, eta_s)

    def _on_run_changed(self, run: StudioRun | None) -> None:
        """A profile or search still running belongs to the previous run."""
        self.runner.cancel()
        if run is None:
            self.speed.show_notice("")

    def _on_profile_changed(self, report: ProfileReport | None) -> None:
        if report is not None:
            run = self.session.run
            self.speed.show_report(report, tally=run.float_tally if run is not None else NOTHING_KEPT)
        elif self.session.run is None:
            self.speed.show_report(None, self.session.before_run(NO_RUN))

    def _on_finished(self, result: ProfileReport | KeptFloat) -> None:
        if not self._end():
            self.session.set_profile(result)
            self.status("Profiled int8 against float32 again: see Results ▸ Speed.")
            self.profiled.emit(result)
            return
        assert isinstance(result, KeptFloat)
        self.scratch.discard(self._keep_outputs[0])  # the run made with the search's choice is what is shown
        outcome, session = result.outcome, self.session
        session.set_exclusions(result.chosen.run.result.recipe.exclude)
        self.deliver(result.chosen, session.run_calibration, session.run_evaluation)
        kept_now = result.chosen.run.float_tally.kept_names
        added = [name for name in kept_now if name not in result.kept_before]
        kept = _kept_text(len(added), len(kept_now))
        fastest = f", the fastest of {len(outcome.candidates)} candidates" if added else ""
        self.speed.show_notice(
            f"{kept}{fastest}. While choosing, int8 took {fmt.times(outcome.ratio_before)} the float32 time before "
            f"and {fmt.times(outcome.ratio_after)} after.",
            more="Re-quantized, compared and profiled again: every other timing shown is of the new model, "
                 "timed again.")
        self.quantize_panel.show_outcome(f"Done: {kept[0].lower()}{kept[1:]}; see Results ▸ Speed.", complete=True)
        self.status(f"{kept}: see Results ▸ Speed.")
        self.kept_float.emit(outcome)

    def _on_failed(self, message: str, details: str) -> None:
        if self._end():
            self.scratch.discard(*self._keep_outputs)
            self.quantize_panel.show_outcome("Failed: " + message, complete=False)
            self.speed.show_notice(f"Keeping the slower layers in float failed: {message}", good=False)
            self.errors.show(message, details)
        elif self.session.profile is None:
            self.speed.show_report(None, f"Profiling failed: {message}")
        else:
            self.speed.show_notice(f"Profiling again failed: {message}", good=False)

    def _on_cancelled(self) -> None:
        """Say that the job stopped, in the status bar as a cancelled run does: profiling again leaves the
        earlier profile on screen, as if nothing happened. A profile a new run superseded says nothing."""
        if self._end():
            self.scratch.discard(*self._keep_outputs)
            self.quantize_panel.show_outcome("Cancelled.", complete=False)
            self.status("Cancelled.")
        elif self.session.run is None or self.session.run is not self._profiled:
            return
        elif self.session.profile is None:
            self.speed.show_report(None, "Profiling cancelled: Run ▸ Profile int8 vs float (Ctrl+P) measures again.")
            self.status("Profiling cancelled.")
        else:
            self.status("Profiling cancelled: the Speed tab still shows the earlier profile.")


def _kept_text(added: int, kept: int) -> str:
    """What the search kept in float, ``added`` nodes to ``kept`` in all, in the count of nodes kept on request
    every view shows: "Kept 17 nodes in float", or "Kept 3 nodes in float, 4 in all" when the run it started
    from kept one already. No word of why: the search may keep layers a profile showed faster in int8, when
    keeping them made the whole model faster."""
    if not added:
        return f"Kept {'no more nodes' if kept else 'no node'} in float: none made the model faster"
    return f"Kept {fmt.count(added, 'node')} in float" + (f", {kept} in all" if added < kept else "")
