"""Every clipping method on one calibration: which one keeps this model closest to float32.

The histogram of one tensor shows where each method would clip it, but not what that does to the
model's output. Here each method's int8 model is written and compared with float32 on the same
evaluation data. Calibration runs once: every later method reuses the first run's statistics
(:func:`~.quantize.quantize_model`'s ``previous``), so trying all five costs little more than one
calibration plus five comparisons.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .clipping import METHODS
from .data import Dataset
from .errors import Q8Error
from .evaluate import ErrorAnalysis, LayerError, analyse_errors, require_labels_fit
from .metrics import ErrorAccumulator
from .model import LoadedModel
from .progress import NO_PROGRESS, Progress
from .quantize import QuantizeResult, quantize_model
from .recipe import Recipe


@dataclass(frozen=True)
class MethodScore:
    """One method's int8 model against float32."""

    method: str
    int8_top1: float | None  # None without labels
    agreement: float | None  # None when no output could be scored as classes
    output: str
    output_sqnr_db: float | None  # of ``output``; None where no SQNR is meaningful (class ids)
    worst_layer: LayerError | None

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "int8_top1": self.int8_top1,
            "top1_agreement": self.agreement,
            "output": self.output,
            "output_sqnr_db": self.output_sqnr_db,
            "worst_layer": self.worst_layer.to_dict() if self.worst_layer is not None else None,
        }


@dataclass(frozen=True)
class MethodComparison:
    """Each method's score, in the order tried, on ``samples`` evaluation samples."""

    recipe: Recipe  # the settings every method shared (its own method is one of those tried)
    samples: int
    float_top1: float | None
    scores: list[MethodScore]

    @property
    def best(self) -> MethodScore:
        """Highest int8 top-1 (with labels) or agreement, then highest output SQNR: accuracy decides,
        and the SQNR breaks ties that a few hundred samples leave."""
        def rank(score: MethodScore) -> tuple[float, float]:
            top1 = score.int8_top1 if score.int8_top1 is not None else score.agreement
            return (top1 if top1 is not None else -1.0,
                    score.output_sqnr_db if score.output_sqnr_db is not None else float("-inf"))

        return max(self.scores, key=rank)

    def to_dict(self) -> dict[str, object]:
        return {
            "recipe": self.recipe.to_dict(),
            "samples": self.samples,
            "float32_top1": self.float_top1,
            "best": self.best.method,
            "methods": [score.to_dict() for score in self.scores],
        }


def compare_methods(
    model: LoadedModel,
    calibration: Dataset,
    evaluation: Dataset,
    recipe: Recipe,
    *,
    methods: tuple[str, ...] = METHODS,
    previous: QuantizeResult | None = None,
    progress: Progress = NO_PROGRESS,
) -> MethodComparison:
    """Quantize ``model`` with each of ``methods`` (``recipe`` otherwise) and compare each with float32.

    ``previous``: a run on the same model and data whose statistics (with histograms) the first
    method can reuse too. The int8 models are scratch, gone on return: quantize with the chosen
    method to keep one.
    """
    if not methods or any(method not in METHODS for method in methods):
        raise Q8Error(f"Choose methods among {', '.join(METHODS)} (got {', '.join(methods) or 'none'}).")
    require_labels_fit(evaluation, model)  # before the first calibration, not after it
    scores: list[MethodScore] = []
    float_top1: float | None = None
    with tempfile.TemporaryDirectory(prefix="q8studio-methods-") as scratch:
        for index, method in enumerate(methods, start=1):
            step = _prefixed(progress, f"{method} ({index} of {len(methods)})")
            previous = quantize_model(model, calibration, recipe.with_changes(method=method),
                                      Path(scratch) / f"{method}.onnx", histograms=True, previous=previous,
                                      progress=step)
            errors = analyse_errors(model, previous.int8, evaluation, progress=step)
            float_top1 = errors.float_top1
            scores.append(_score(method, errors, model))
    return MethodComparison(recipe, evaluation.count, float_top1, scores)


def _score(method: str, errors: ErrorAnalysis, model: LoadedModel) -> MethodScore:
    output = errors.scored_output or model.graph.outputs[0]
    measured = errors.outputs.get(output)
    sqnr = measured.sqnr_db if isinstance(measured, ErrorAccumulator) else None
    return MethodScore(method, errors.int8_top1, errors.agreement, output, sqnr,
                       errors.layers[0] if errors.layers else None)


def _prefixed(progress: Progress, prefix: str) -> Progress:
    """``progress`` with every stage named after the method being tried, and the same cancel flag."""
    callback = progress.callback
    if callback is None:
        return Progress(cancel_token=progress.cancel_token)
    return Progress(lambda stage, done, total: callback(f"{prefix}: {stage}", done, total),
                    progress.cancel_token, progress.min_interval_s)
