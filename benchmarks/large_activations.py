"""Calibration of a model with large activations: q8studio's peak memory and time against onnxruntime's.

The model is the case users hit: few weights, many activations. Twelve 1x1 convolutions of 64 channels
on a 256x256 image (dynamic batch axis) hold 192 MB of activations per sample, all of which calibration
exposes. Each worker is a fresh process (``calibration_worker.py``) whose peak RSS comes from ``wait4``:
q8studio's quantization, onnxruntime's ``quant_pre_process`` + ``quantize_static`` (batches of 8), and
plain float inference over the same samples in batches of 1 and of 8 (the floors).

    python benchmarks/large_activations.py                 # writes its section of benchmarks/RESULTS.md
    python benchmarks/large_activations.py --samples 8 --repeat 1 --no-record
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from calibration import PERCENTILE, Bench, Settings, load_average, measure
from calibration_report import Run
from results_file import measured_with, record_section
from watchdog import Limits

TITLE = "Calibration with large activations"
CHANNELS, SIZE, LAYERS = 64, 256, 12
METHOD = "percentile"
ORT_BATCH = 8


def build(workdir: Path, samples: int) -> None:
    """Write the model and ``samples`` random images (run in a process of its own: see calibration.py)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, previous, inputs = [], [], "x", 3
    for i in range(LAYERS):
        he = rng.standard_normal((CHANNELS, inputs, 1, 1)) * np.sqrt(2.0 / inputs)
        weights.append(numpy_helper.from_array(he.astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("Conv", [previous, f"w{i}"], [f"conv{i}"], name=f"/conv{i}/Conv"),
                  helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], name=f"/relu{i}/Relu")]
        previous, inputs = f"relu{i}", CHANNELS
    weights.append(numpy_helper.from_array((rng.standard_normal((10, CHANNELS)) * 0.1).astype(np.float32), "fc.w"))
    nodes += [helper.make_node("GlobalAveragePool", [previous], ["pooled"], name="/gap/GlobalAveragePool"),
              helper.make_node("Flatten", ["pooled"], ["flat"], name="/flatten/Flatten"),
              helper.make_node("Gemm", ["flat", "fc.w"], ["logits"], name="/fc/Gemm", transB=1)]
    graph = helper.make_graph(nodes, "large_activations",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, workdir / "model.onnx")
    np.savez(workdir / "calib.npz", x=rng.standard_normal((samples, 3, SIZE, SIZE)).astype(np.float32))


def activation_mb() -> float:
    return LAYERS * CHANNELS * SIZE * SIZE * 4 / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each worker, fastest time and highest RSS kept")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "q8studio-large-activations")
    parser.add_argument("--no-record", action="store_true", help="print only, leave RESULTS.md as it is")
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.build:
        build(args.workdir, args.samples)
        return
    for folder in ("runs", "scratch", "int8"):
        (args.workdir / folder).mkdir(exist_ok=True)
    subprocess.run([sys.executable, __file__, "--build", "--samples", str(args.samples), "--workdir", str(args.workdir)],
                   check=True)
    settings = Settings([], [args.samples], [METHOD], None, 0, args.repeat, Limits(16 << 30, 1800.0), args.workdir, None)
    bench = Bench("large", "", str(args.workdir / "model.onnx"), str(args.workdir / "calib.npz"), "", "x", ORT_BATCH)
    load = load_average()
    runs = {
        "q8studio": measure("q8studio", bench, args.samples, settings, METHOD),
        f"onnxruntime quantize_static (batches of {ORT_BATCH})": measure("ort", bench, args.samples, settings, METHOD),
        "float inference, batches of 1": measure("float", replace(bench, batch=1), args.samples, settings),
        f"float inference, batches of {ORT_BATCH}": measure("float", bench, args.samples, settings),
    }
    section = report(runs, args, f"{load} / {load_average()}")
    print(section)
    if not args.no_record:
        record_section(TITLE, section)


def report(runs: dict[str, Run], args: argparse.Namespace, load: str) -> str:
    q8, ort = runs["q8studio"], runs[f"onnxruntime quantize_static (batches of {ORT_BATCH})"]

    def cells(run: Run) -> str:
        seconds = f"{run.seconds:.2f}" if run.ok else run.status
        return f"{seconds} | {run.peak_rss_mb:.0f} | {run.peak_rss_mb / q8.peak_rss_mb:.2f}"

    rows = "\n".join(f"| {name} | {cells(run)} |" for name, run in runs.items())
    pass_s = q8.phases.get("calibrate_s", float("nan"))
    return f"""## {TITLE}

`python benchmarks/large_activations.py --samples {args.samples} --repeat {args.repeat}` with {measured_with()};
1-minute load average {load}. Each time is the fastest of {args.repeat} runs, each peak RSS the highest.

A model of {LAYERS} 1x1 convolutions with {CHANNELS} channels on a {SIZE}x{SIZE} image (dynamic batch axis):
{activation_mb():.0f} MB of activations per sample, every one of them exposed by calibration. {args.samples}
random samples, {METHOD} ({PERCENTILE}), per-channel weights. q8studio's time is end to end
(its calibration pass alone: {pass_s:.2f} s); it runs as many samples at a time as keep a run's outputs
within `RUN_OUTPUT_BYTES` (`q8studio/core/session.py`).

| process | seconds | peak RSS MB | RSS / q8studio's |
|---|---|---|---|
{rows}

q8studio / onnxruntime: time {q8.seconds / ort.seconds if ort.ok and q8.ok else float('nan'):.2f}x, peak RSS
{q8.peak_rss_mb / ort.peak_rss_mb:.2f}x{' (onnxruntime was stopped: its figure is a lower bound)' if ort.killed else ''}.
"""


if __name__ == "__main__":
    main()
