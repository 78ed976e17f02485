"""What one GUI run computes on its worker: quantize, compare, prepare the tensor probe, profile.

Profiling is part of the run rather than a job after it: timings taken while the window's other
workers (node numbers, tensor comparisons, Explain) react to the finished run would measure them
too. A run whose profile fails is still a run: it keeps its results and says why it has no profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.data import Dataset
from ..core.errors import Q8Error
from ..core.model import LoadedModel
from ..core.probe import TensorProbe
from ..core.profile import ProfileReport, profile_models
from ..core.progress import Progress
from ..core.quantize import QuantizeResult
from ..core.recipe import Recipe
from ..core.workflow import StudioRun, quantize_and_compare

WINDOW_PROFILE_RUNS = 50
"""Profiled runs per model, half of ``core.runcounts.PROFILE_RUNS``: every run of the window ends with a
profile (and Profile again takes as many), so it stays short enough to follow every run while the
per-layer means stay stable. ``q8studio profile`` takes the full count."""
WINDOW_LATENCY_RUNS = 30
"""Alternating runs per model for the latencies a run of the window times: fewer than
``core.runcounts.LATENCY_RUNS`` for the same reason, and each run of the window times both models
twice, when comparing and when profiling."""


@dataclass
class RunOutcome:
    """One run, the probe that compares its tensors, and its speed profile (or why there is none)."""

    run: StudioRun
    probe: TensorProbe
    profile: ProfileReport | None
    profile_problem: str = ""


def profile_run(model: LoadedModel, result: QuantizeResult, data: Dataset, progress: Progress) -> ProfileReport:
    """The float model and ``result``'s int8 model layer by layer, with the window's run counts."""
    return profile_models(model, result.int8, data, runs=WINDOW_PROFILE_RUNS, latency_runs=WINDOW_LATENCY_RUNS,
                          kept_float=result.kept_float, progress=progress)


def run_and_profile(model: LoadedModel, calibration: Dataset, evaluation: Dataset | None, recipe: Recipe,
                    output: Path, progress: Progress, previous: QuantizeResult | None = None) -> RunOutcome:
    """Quantize (reusing ``previous``'s statistics when they fit) and compare, then profile on the
    samples Explain uses (evaluation, else calibration)."""
    run = quantize_and_compare(model, calibration, evaluation, recipe, output, latency_runs=WINDOW_LATENCY_RUNS,
                               previous=previous, progress=progress)
    progress.report("Preparing the tensor probe", 0, 1)
    probe = TensorProbe(run.result.prepared.model, run.int8)
    try:
        report = profile_run(model, run.result, evaluation if evaluation is not None else calibration, progress)
    except Q8Error as exc:
        return RunOutcome(run, probe, None, str(exc))
    return RunOutcome(run, probe, report)
