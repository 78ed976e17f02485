"""Speed benchmark: int8/float32 latency of the default export and after keeping slow layers in float.

For the bundled demo and a MobileNet-v1-style model (``mobilenet_model.py``: depthwise-separable
blocks, 224x224, width 0.5, random weights), in one process: quantize with the default recipe,
run the "keep the layers int8 made slower in float" workflow (``q8studio.core.speedup``), then
time float32, the default int8 export and the chosen export in alternating batch-1 runs.

    python benchmarks/speed.py                     # threads 1, writes its section of RESULTS.md
    python benchmarks/speed.py --threads 1 2 --blocks 5 --no-write
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from mobilenet_model import images, mobilenet
from results_file import RESULTS, measured_with, record_section
from q8studio.core.data import Dataset, load_data
from q8studio.core.demo import demo_assets
from q8studio.core.latency import alternating_latency
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.profile import LayerTiming
from q8studio.core.recipe import Recipe
from q8studio.core.speedup import KeepFloatOutcome, keep_slow_float

BENCH_DIR = Path(__file__).resolve().parent
SECTION_TITLE = "Speed: int8 vs float32, and keeping the layers int8 made slower in float"
RATIO_TARGET = 0.6
PAYS_MARGIN = 1.2  # a layer "pays" when int8 runs it this much faster: above the noise of one profile
MOBILENET = {"width": 0.5, "size": 224}


@dataclass
class Case:
    name: str
    description: str
    model: LoadedModel
    calibration: Dataset
    timing: Dataset


@dataclass
class Row:
    case: Case
    threads: int
    outcome: KeepFloatOutcome
    float_ms: float
    default_ms: float
    chosen_ms: float
    block_ratios: list[float]
    seconds: float

    @property
    def default_ratio(self) -> float:
        return self.default_ms / self.float_ms

    @property
    def chosen_ratio(self) -> float:
        return self.chosen_ms / self.float_ms

    @property
    def int8_pays_somewhere(self) -> bool:
        """Some multiply-accumulating layer runs clearly faster in int8 than in float, glue included."""
        layers = self.outcome.default.report.layers
        return any(layer.macs and layer.integer and layer.speedup > PAYS_MARGIN for layer in layers)

    def target(self, oversubscribed: bool) -> str:
        if oversubscribed and self.threads > 1:
            return "not judged: machine oversubscribed"
        if not self.int8_pays_somewhere:
            return "n/a: no int8 layer pays; the workflow says to deploy float32"
        met = "MET" if self.chosen_ratio <= RATIO_TARGET else "NOT MET"
        return f"**{met}** (≤ {RATIO_TARGET})"


def cases(folder: Path) -> list[Case]:
    assets = demo_assets()
    demo = load_model(assets.model)
    path = folder / "mobilenet.onnx"
    onnx.save(mobilenet(**MOBILENET), str(path))
    np.savez(folder / "mobilenet_calib.npz", image=images(32, MOBILENET["size"]))
    net = load_model(path)
    calib = load_data(folder / "mobilenet_calib.npz", net)
    params = sum(int(np.prod(t.dims)) for t in net.proto.graph.initializer)
    return [
        Case("demo", "digits_cnn.onnx, 1x16x16, 7,370 parameters", demo,
             load_data(assets.calibration, demo), load_data(assets.test, demo, samples=1)),
        Case("mobilenet", f"MobileNet-v1-style, width {MOBILENET['width']}, {MOBILENET['size']}x{MOBILENET['size']}, "
             f"{params:,} parameters", net, calib, calib.limited(1)),
    ]


def measure(case: Case, threads: int, folder: Path, runs: int, blocks: int) -> Row:
    started = time.perf_counter()
    outcome = keep_slow_float(case.model, case.calibration, Recipe(), folder / f"{case.name}-{threads}.onnx",
                              case.timing, threads=threads)
    int8 = [outcome.default.int8, outcome.chosen.int8]
    samples = [alternating_latency([case.model, *int8], case.timing, runs=runs, threads=threads) for _ in range(blocks)]
    float_ms = statistics.median(s[0] for s in samples)
    default_ms = statistics.median(s[1] for s in samples)
    chosen_ms = statistics.median(s[2] for s in samples)
    return Row(case, threads, outcome, float_ms, default_ms, chosen_ms, [s[2] / s[0] for s in samples],
               time.perf_counter() - started)


def slowest(layers: list[LayerTiming], count: int = 5) -> str:
    worst = sorted((layer for layer in layers if layer.integer and layer.slower_in_int8), key=lambda layer: layer.speedup)
    return ", ".join(f"{layer.node} {layer.speedup:.2f}x" for layer in worst[:count]) or "none"


def section(rows: list[Row], args: argparse.Namespace, load: tuple[float, float]) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"Measured {when} with `python benchmarks/speed.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}` "
        f"with {measured_with()} on the shared 2-core machine (see Machine); load average {load[0]:.2f} before, {load[1]:.2f} after.",
        "",
        "- **Default export**: `Recipe()` (minmax, per-tensor int8 weights, uint8 activations), QDQ, run by ONNX "
        "Runtime's CPU provider with its default graph optimizations.",
        "- **Keep slow layers in float**: `q8studio.core.speedup.keep_slow_float` (`q8studio quantize --keep-slow-float`): "
        "profile both models with ONNX Runtime's profiler, keep the int8 layers whose time plus their share of "
        "Quantize/Dequantize and layout glue exceeds float32's in float, re-quantize, re-profile (up to 3 rounds), also "
        "try keeping only the slow layers at the model's edges (no new float island), and write the fastest candidate.",
        f"- **Latency**: median of {args.runs} alternating batch-1 runs of float32, default int8 and chosen int8 in one "
        f"process (after 5 warm-up runs), repeated in {args.blocks} blocks; the table shows the median over blocks, "
        "the last column the chosen ratio in each block.",
        f"- **Target**: the exported int8 model at most {RATIO_TARGET}x the float32 time wherever any int8 layer pays "
        f"at all (some Conv/Gemm/MatMul of the default export at least {PAYS_MARGIN}x faster in int8 than in float32, "
        "glue included, in the profile).",
    ]
    oversubscribed = max(load) > (os.cpu_count() or 1)
    if oversubscribed and any(r.threads > 1 for r in rows):
        lines.append(
            f"- **Oversubscribed**: the load average exceeded the {os.cpu_count()} cores. With several threads ONNX "
            "Runtime's thread pool waits for preempted workers, so those rows vary by several times between blocks "
            "(see 'chosen per block'); only the single-thread rows are trustworthy from this run."
        )
    lines += [
        "",
        "| model | threads | float32 ms | default int8 ms | default int8/float | chosen int8 ms | chosen int8/float "
        "| chosen per block | kept in float | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kept = f"{len(r.outcome.kept_float)} nodes" if r.outcome.kept_float else "none"
        lines.append(
            f"| {r.case.name} | {r.threads} | {r.float_ms:.3f} | {r.default_ms:.3f} | {r.default_ratio:.2f} | "
            f"{r.chosen_ms:.3f} | {r.chosen_ratio:.2f} | {', '.join(f'{x:.2f}' for x in r.block_ratios)} | {kept} | "
            f"{r.target(oversubscribed)} |"
        )
    lines += ["", "Per model:", ""]
    for r in rows:
        report = r.outcome.default.report
        lines += [
            f"- **{r.case.name}** ({r.case.description}), threads {r.threads}, {r.seconds:.0f} s: "
            f"default export: {100 * report.integer_mac_share:.0f}% of MACs in integer kernels, Q/DQ glue "
            f"{report.int8.qdq_us:.1f} us and layout glue {report.int8.layout_us:.1f} us per profiled run; "
            f"slowest int8 layers (float time / int8 time): {slowest(report.layers)}.",
            f"  Kept in float: {', '.join(r.outcome.kept_float) or 'none'}. "
            f"Candidates (kept nodes: int8 ms in the workflow's own timing): "
            f"{'; '.join(f'{len(c.exclude)}: {c.latency_ms:.3f}' for c in r.outcome.candidates)}. {r.outcome.verdict()}",
        ]
    return "\n".join(lines) + "\n"



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["demo", "mobilenet"])
    parser.add_argument("--no-write", action="store_true", help="print the section instead of updating RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="q8studio-speed-") as tmp:
        for case in (c for c in cases(Path(tmp)) if c.name in args.models):
            for threads in args.threads:
                rows.append(measure(case, threads, Path(tmp), args.runs, args.blocks))
                r = rows[-1]
                print(f"{case.name} threads {threads}: float {r.float_ms:.3f} ms, default int8/float "
                      f"{r.default_ratio:.2f}, chosen {r.chosen_ratio:.2f} ({r.seconds:.0f} s)", flush=True)
    text = section(rows, args, (load_before, os.getloadavg()[0]))
    if args.no_write:
        print(text)
    else:
        record_section(SECTION_TITLE, text)
        print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
