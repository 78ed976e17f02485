"""Keep the layers int8 made slower in float: quantize, profile, exclude, re-quantize, re-measure.

int8 pays per layer, not per model: on a CPU a large pointwise convolution runs several times
faster in int8, while a depthwise convolution, a 3-channel stem or a tiny layer can run slower
than in float once its Quantize/Dequantize and layout glue is counted. Keeping a layer in float
in the middle of int8 layers makes a float island with new glue around it, so several
candidates are built and profiled; all of them are then timed against float32 in one
alternating loop and the fastest is written.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

from .data import Dataset
from .fileio import atomic_path, check_outputs
from .latency import alternating_latency
from .model import LoadedModel
from .profile import LayerTiming, ProfileReport, int8_pays, profile_models
from .progress import NO_PROGRESS, Progress
from .quantize import QuantizeResult, files_read, quantize_model
from .recipe import Recipe
from .runcounts import LATENCY_RUNS, PROFILE_RUNS

SLOWER_IN_INT8 = "kept in float: the model ran faster with it in float"
"""Not "int8 made it slower": a layer may be kept because int8 slowed its neighbours (the glue between an
int8 layer and float ones), so the search can keep layers a first profile showed faster in int8."""


@dataclass
class Candidate:
    """One int8 export tried: the nodes it keeps in float, the model (in memory), its profile and latency (ms)."""

    exclude: tuple[str, ...]
    result: QuantizeResult
    report: ProfileReport
    latency_ms: float = 0.0

    @property
    def int8(self) -> LoadedModel:
        return self.result.int8


@dataclass
class KeepFloatOutcome:
    """The default export, every candidate tried, and the one written to the output path."""

    float_ms: float
    candidates: list[Candidate]
    chosen: Candidate

    @property
    def default(self) -> Candidate:
        return self.candidates[0]

    @property
    def kept_float(self) -> tuple[str, ...]:
        """Nodes the chosen model keeps in float beyond those the recipe already excluded."""
        requested = set(self.default.exclude)
        return tuple(name for name in self.chosen.exclude if name not in requested)

    @property
    def ratio_before(self) -> float:
        return self.default.latency_ms / self.float_ms

    @property
    def ratio_after(self) -> float:
        return self.chosen.latency_ms / self.float_ms

    @property
    def pays(self) -> bool:
        """Whether the written model is faster than float32 thanks to int8: a model left with no integer
        layer may time faster or slower than float32, but only by noise."""
        return self.chosen.report.computes_in_int8 and int8_pays(self.ratio_after)

    def verdict(self) -> str:
        count = len(self.kept_float)
        kept = f"{count} node{'' if count == 1 else 's'} kept in float" if count else "no node kept in float"
        change = f"int8/float32 latency {self.ratio_before:.2f} -> {self.ratio_after:.2f} ({kept})"
        if not self.chosen.report.computes_in_int8:
            return (f"{change}: the fastest model keeps every layer in float, so nothing is left in int8: "
                    "int8 does not pay for this model on this machine; deploy the float32 model.")
        if self.pays:
            return f"{change}: int8 pays, {1 / self.ratio_after:.2f}x faster than float32."
        return (
            f"{change}: int8 does not pay for this model on this machine, even with the layers it slows "
            "kept in float; deploy the float32 model."
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "float32_ms": self.float_ms,
            "default_int8_ms": self.default.latency_ms,
            "chosen_int8_ms": self.chosen.latency_ms,
            "ratio_before": self.ratio_before,
            "ratio_after": self.ratio_after,
            "pays": self.pays,
            "kept_float": list(self.kept_float),
            "verdict": self.verdict(),
            "candidates": [{"exclude": list(c.exclude), "int8_ms": c.latency_ms} for c in self.candidates],
        }


def keep_slow_float(
    model: LoadedModel,
    calibration: Dataset,
    recipe: Recipe,
    output: str | Path,
    data: Dataset,
    *,
    rounds: int = 3,
    profile_runs: int = PROFILE_RUNS,
    latency_runs: int = LATENCY_RUNS,
    threads: int = 0,
    previous: QuantizeResult | None = None,
    progress: Progress = NO_PROGRESS,
) -> KeepFloatOutcome:
    """Quantize with ``recipe``, then keep the layers int8 made slower in float, and time the candidates.

    Two kinds of candidates: every slower layer kept in float, re-profiled up to ``rounds`` times
    (new float islands bring new glue, which can slow their neighbours), and only the slower
    layers at the model's float edges, which add no island. Timing uses the first sample of
    ``data``; the fastest candidate is written to ``output``. The candidates share one set of
    calibration statistics: ``previous``'s when they fit (see :func:`~.quantize.quantize_model`),
    else the first candidate's.
    """
    output = Path(output)
    check_outputs({"the int8 model": output}, files_read(model, calibration, data))
    with tempfile.TemporaryDirectory(prefix="q8studio-keepfloat-") as tmp:
        trials = _Trials(model, calibration, recipe, data, Path(tmp), profile_runs, threads, progress, rounds + 2,
                         previous)
        default = current = trials.attempt(tuple(recipe.exclude))
        for _ in range(rounds):
            more = slower_nodes(current.report, current.result) - set(current.exclude)
            if not more:
                break
            current = trials.attempt(current.exclude + _in_graph_order(more, current.result))
        edges = slower_nodes(default.report, default.result, edges_only=True) - set(default.exclude)
        if edges and all(set(c.exclude) != set(default.exclude) | edges for c in trials.candidates):
            trials.attempt(default.exclude + _in_graph_order(edges, default.result))
        float_ms, *latencies = alternating_latency([model, *(c.int8 for c in trials.candidates)], data,
                                                   runs=latency_runs, threads=threads, progress=progress)
        for candidate, latency in zip(trials.candidates, latencies):
            candidate.latency_ms = latency
        chosen = min(trials.candidates, key=lambda c: c.latency_ms)
        with atomic_path(output) as staging:
            shutil.copyfile(chosen.result.output_path, staging)
        chosen.result = replace(chosen.result, output_path=output, int8=replace(chosen.result.int8, path=output))
    outcome = KeepFloatOutcome(float_ms, trials.candidates, chosen)
    label_slower_in_int8(chosen.result, outcome.kept_float)
    return outcome


def label_slower_in_int8(result: QuantizeResult, slower: Collection[str]) -> None:
    """Give the float nodes of ``result`` that are in ``slower`` the reason they are float: its recipe
    asked for them, the user did not."""
    names = set(slower)
    result.float_nodes = [
        replace(node, reason=SLOWER_IN_INT8) if node.name in names else node for node in result.float_nodes
    ]


@dataclass
class _Trials:
    """Quantizes and profiles one candidate per set of nodes kept in float, into ``folder``."""

    model: LoadedModel
    calibration: Dataset
    recipe: Recipe
    data: Dataset
    folder: Path
    profile_runs: int
    threads: int
    progress: Progress
    expected: int
    previous: QuantizeResult | None
    candidates: list[Candidate] = field(default_factory=list)

    def attempt(self, exclude: tuple[str, ...]) -> Candidate:
        self.progress.report("Keeping slow layers in float", len(self.candidates), self.expected)
        path = self.folder / f"{len(self.candidates)}.onnx"
        previous = self.candidates[0].result if self.candidates else self.previous
        result = quantize_model(self.model, self.calibration, self.recipe.with_changes(exclude=exclude), path,
                                previous=previous, progress=self.progress)
        report = profile_models(self.model, result.int8, self.data, runs=self.profile_runs, threads=self.threads,
                                latency_runs=0, kept_float=result.kept_float)
        self.candidates.append(Candidate(exclude, result, report))
        return self.candidates[-1]


def slower_nodes(report: ProfileReport, result: QuantizeResult, *, edges_only: bool = False) -> set[str]:
    """Excludable nodes (of the quantized, prepared model) in int8-computed layers that int8 made slower.

    ``edges_only`` keeps only the runs of slower layers at the start and the end of the model:
    moving the float/int8 boundary inward adds no Quantize/Dequantize pair, unlike an island.
    """
    rows = [layer for layer in report.layers if layer.integer]
    slower = [layer for layer in rows if layer.slower_in_int8]
    if edges_only:
        slower = _leading(rows) + _leading(rows[::-1])
    excludable = {node.name for node in result.prepared.model.quantizable_nodes()}
    return {m for layer in slower for m in layer.members if m in excludable}


def _leading(rows: list[LayerTiming]) -> list[LayerTiming]:
    return list(itertools.takewhile(lambda layer: layer.slower_in_int8, rows))


def _in_graph_order(names: set[str], result: QuantizeResult) -> tuple[str, ...]:
    return tuple(node.name for node in result.prepared.model.graph.nodes if node.name in names)
