"""The JSON report of a quantization run: the recipe to reproduce it and everything it measured."""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import asdict
from pathlib import Path

from .data import Dataset
from .environment import environment
from .evaluate import Comparison, ErrorAnalysis
from .fileio import atomic_write_text
from .methods import MethodComparison
from .profile import ProfileReport
from .quantize import QuantizeResult
from .recipe import REPORT_VERSION
from .speedup import KeepFloatOutcome
from .workflow import StudioRun, latest_timing


def quantize_report(
    result: QuantizeResult, *, source: Path, calibration: Dataset | None, errors: ErrorAnalysis | None = None,
    keep_float: KeepFloatOutcome | None = None,
) -> dict[str, object]:
    """Everything a user needs to understand, and re-run, a quantization.

    An image folder's preprocessing is recorded in the keys ``--preprocess`` reads, so the same
    samples can be made again. ``keep_float``: the timings that chose which layers to keep in float
    (``--keep-slow-float``), which decided what was written.
    """
    image_preprocessing = calibration.image_preprocessing if calibration is not None else None
    report: dict[str, object] = {
        "q8studio_report": REPORT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),  # the quantizer's version decides the file, the CPU the timings
        "source_model": str(source),
        "output_model": str(result.output_path),
        "recipe": result.recipe.to_dict(),
        "calibration": {
            "data": calibration.source if calibration is not None else None,
            "image_preprocessing": asdict(image_preprocessing) if image_preprocessing is not None else None,
            "samples": result.calibration_samples,
            "statistics_reused": result.statistics_reused,  # tensors whose statistics a previous run collected
        },
        "preprocessing": result.prepared.notes,
        "ranges": {
            name: {
                "rmin": lo,
                "rmax": hi,
                "observed_min": result.stats[name].min,
                "observed_max": result.stats[name].max,
                "values": result.stats[name].count,
                "histogram_stride": result.stats[name].stride,  # 1 value in this many was binned; 0: none
                "combined_from": list(result.stats[name].parts),  # a Concat's statistics are its inputs'
            }
            for name, (lo, hi) in result.ranges.items()
        },
        "weights": [w.to_dict() for w in result.weights],
        "float_nodes": [n.to_dict() for n in result.float_nodes],
        "timings": result.timings,
    }
    if errors is not None:
        report["layer_errors_on_calibration"] = errors.to_dict()
    if keep_float is not None:
        report["keep_slow_float"] = keep_float.to_dict()
    return report


def evaluation_report(comparison: Comparison, float_path: Path, int8_path: Path | None, data: str) -> dict[str, object]:
    """``int8_path`` None: the int8 model compared was not saved (the window's run before Export)."""
    return {
        "q8studio_report": REPORT_VERSION,
        "environment": environment(),  # latencies are only comparable on the same runtime and CPU
        "float_model": str(float_path),
        "int8_model": str(int8_path) if int8_path is not None else None,
        "data": data,
        **comparison.to_dict(),
    }


def run_report(run: StudioRun, profile: ProfileReport | None, *, source: Path, calibration: Dataset | None,
               exported: Path | None, methods: MethodComparison | None = None) -> dict[str, object]:
    """A window run's report: the quantization, the comparison (``evaluation``, with the latency it
    measured), the speed profile, and ``latency``: the latency and speed-up the window shows, with
    ``timed_by`` saying whether the profile or the comparison timed them.

    ``exported`` None: the run's int8 model was not exported (its own file is scratch). ``methods``: the
    window's last comparison of clipping methods on this model (its own recipe says its settings).
    """
    report = quantize_report(run.result, source=source, calibration=calibration)
    report["output_model"] = str(exported) if exported is not None else None
    evaluation = evaluation_report(run.comparison, source, exported, run.evaluation_data)
    del evaluation["environment"]  # the run report's own says it
    report["evaluation"] = evaluation
    report["profile"] = profile.to_dict() if profile is not None else None
    report["latency"] = latest_timing(run.comparison, profile).to_dict()
    report["methods"] = methods.to_dict() if methods is not None else None
    return report


def to_json(report: dict[str, object]) -> str:
    """Strict JSON: non-finite numbers (an SQNR of +inf means identical tensors) become null."""
    return json.dumps(_finite(report), indent=2)


def write_report(report: dict[str, object], path: Path) -> None:
    atomic_write_text(Path(path), to_json(report))


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _finite(value.item())
    return value
