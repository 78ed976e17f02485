"""What binning a regular sample of each activation costs in clipping ranges and saves in time.

q8studio's calibration bins at most ``--histogram-values`` values of each sample of each activation
(the max sees every value). This script measures the trade on a 224x224 SqueezeNet: for each
budget, how far the percentile / entropy / MSE ranges move from those of a histogram of every value,
set against how far they move when calibrating on a different set of samples of the same size (the
noise a calibration set brings anyway), and what the calibration pass costs relative to plain float
inference over the same samples.

    python benchmarks/histogram_sampling.py [--samples 200] [--budgets 16384,8192,4096]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np

from calibration_models import SQUEEZENET_SEED, prepare, synthetic_npz
from results_file import measured_with, record_section
from q8studio.core.calibrate import collect_statistics
from q8studio.core.session import batch_size
from q8studio.core.clipping import activation_range
from q8studio.core.data import Dataset, load_data
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.preprocess import prepare_for_quantization
from q8studio.core.quantize import ranges_read_by_quantizer
from q8studio.core.recipe import Recipe
from q8studio.core.session import cpu_session
from q8studio.core.stats import HIST_VALUES_PER_SAMPLE, TensorStats
from q8studio.core.summaries import MIN_BUDGETS, MIN_GRID_LINES, plan_summaries

TITLE = "Calibration: histograms of a regular sample"
METHODS = (("percentile 99.99", "percentile", 99.99), ("percentile 99.999", "percentile", 99.999),
           ("entropy", "entropy", 99.99), ("mse", "mse", 99.99))


def range_widths(stats: dict[str, TensorStats], method: str, percentile: float) -> np.ndarray:
    """Width of each tensor's clipping range (uint8, asymmetric, as q8studio's default recipe)."""
    ranges = [activation_range(s, method, percentile=percentile) for s in stats.values()]
    return np.array([hi - lo for lo, hi in ranges])


def relative_change(widths: np.ndarray, reference: np.ndarray) -> str:
    change = np.abs(widths - reference) / reference
    return f"{100 * np.median(change):.2f}% / {100 * change.max():.2f}%"


def timed_pass(model: LoadedModel, data: Dataset, names: list[str], budget: int) -> tuple[dict[str, TensorStats], float]:
    started = time.perf_counter()
    stats = collect_statistics(model, data, names=names, histogram_values=budget)
    return stats, time.perf_counter() - started


def float_floor(model: LoadedModel, data: Dataset) -> float:
    """Session creation plus plain inference over the same samples in the same batches."""
    started = time.perf_counter()
    session = cpu_session(model.proto)
    for feed in data.batches(batch_size(model)):
        session.run(None, feed)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--budgets", default="16384,8192,4096")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "q8studio-calibration-bench")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]

    bench = prepare("squeezenet", args.workdir, args.samples, 1)
    other_path = synthetic_npz(args.workdir / f"squeezenet_other_{args.samples}.npz", str(bench["input"]),
                               args.samples, SQUEEZENET_SEED + 1)
    model = prepare_for_quantization(load_model(bench["model"]), per_channel=True).model
    names = ranges_read_by_quantizer(model.proto, Recipe(granularity="per-channel"))
    summarised = len(plan_summaries(model, names, HIST_VALUES_PER_SAMPLE))
    first, second = load_data(bench["calib"], model), load_data(other_path, model)

    floor = min(float_floor(model, first) for _ in range(3))
    reference, every_s = timed_pass(model, first, names, 0)
    other, _ = timed_pass(model, second, names, 0)
    sampled = {}
    for budget in budgets:
        runs = [timed_pass(model, first, names, budget) for _ in range(3)]
        sampled[budget] = (runs[0][0], min(seconds for _, seconds in runs))

    header = ["clipping method", f"another {args.samples} samples, every value"]
    header += [f"budget {b:,}" for b in budgets]
    rows = []
    for label, method, percentile in METHODS:
        ref = range_widths(reference, method, percentile)
        cells = [relative_change(range_widths(other, method, percentile), ref)]
        cells += [relative_change(range_widths(sampled[b][0], method, percentile), ref) for b in budgets]
        rows.append([label, *cells])
    timing = ["calibration pass / float inference", f"{every_s / floor:.2f}x (every value)"]
    timing += [f"{sampled[b][1] / floor:.2f}x" for b in budgets]

    lines = [
        f"## {TITLE}",
        "",
        f"`python benchmarks/histogram_sampling.py --samples {args.samples}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC with {measured_with()} (see Machine): a 224x224 SqueezeNet "
        "(tests/builders.py's light_squeezenet, random He weights, opset 13, 26 convolutions), "
        f"{args.samples} synthetic calibration images and another {args.samples} made the same way with the next "
        f"seed; {len(names)} activations calibrated, per-channel recipe, uint8 asymmetric ranges.",
        "",
        f"Each cell: median / largest change of a tensor's clipping-range width against the ranges from a histogram "
        f"of every value of the {args.samples} calibration samples. The first column is the change that calibrating on "
        f"the other {args.samples} samples brings (also every value): the noise of the calibration set itself. The last "
        "row: the calibration pass (fastest of 3) over session creation plus float inference of the same samples. "
        f"With a budget, a non-negative 4-D activation of at least {MIN_BUDGETS} budgets a sample, whose grid keeps "
        f"at least {MIN_GRID_LINES} rows and columns, bins the grid the model itself returns (every 3rd, 5th, ... row "
        f"and column of every channel: q8studio/core/summaries.py; {summarised} of the {len(names)} at the default "
        f"{HIST_VALUES_PER_SAMPLE:,}); any other bins every "
        "s-th value (s prime) of the stream of its values, which moves from one sample to the next.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "| " + " | ".join(timing) + " |",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    record_section(TITLE, section)


if __name__ == "__main__":
    main()
