"""Per-layer error benchmark: q8studio's streaming comparison vs onnxruntime's ``qdq_loss_debug``.

Both answer "how far is each quantized activation of the int8 model from the float model's?".
onnxruntime's debugging tool exposes every node output of both models, keeps every sample's
activations in memory, then matches and scores them (SQNR); q8studio's ``analyse_errors`` (what
``q8studio evaluate`` and the GUI's Results run) exposes only the quantized activations and sums
each batch's differences as it goes (SQNR, MSE, cosine, max error, plus output errors and top-1).
Each run is a fresh worker process (its own peak RSS from ``wait4``): q8studio, onnxruntime, and
the floor (plain inference of both models over the same samples, nothing exposed). The int8
model is q8studio's per-channel minmax export of the calibration benchmark's models.

    python benchmarks/layer_errors.py            # writes its section of benchmarks/RESULTS.md
    python benchmarks/layer_errors.py --quick    # smoke run: 20 samples, 1 repeat, RESULTS.md untouched
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from results_file import RESULTS, measured_with, record_section
from watchdog import Limits, watch

BENCH_DIR = Path(__file__).resolve().parent
WORKER = BENCH_DIR / "layer_errors_worker.py"
MODELS_HELPER = BENCH_DIR / "calibration_models.py"
MODELS = ("demo", "squeezenet")
CALIBRATION_SAMPLES = 200
TITLE = "Per-layer error: q8studio vs onnxruntime's qdq_loss_debug"


@dataclass(frozen=True)
class Measured:
    """The fastest of a worker's runs, with the highest peak RSS seen; ``problem`` when it failed."""

    seconds: float
    peak_mb: float
    sqnr_db: dict[str, float]
    problem: str = ""


def run_worker(kind: str, bench: dict, int8: Path, samples: int, workdir: Path, limits: Limits) -> Measured:
    result = workdir / "runs" / f"{bench['name']}-{kind}-{samples}.json"
    result.unlink(missing_ok=True)
    argv = [sys.executable, str(WORKER), kind, "--float", bench["model"], "--int8", str(int8), "--data", bench["eval"],
            "--input", bench["input"], "--samples", str(samples), "--batch", str(bench["batch"]), "--result", str(result)]
    with open(result.with_suffix(".log"), "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir / "scratch")
    status, peak_kb, killed = watch(process, limits)
    peak_mb = peak_kb / 1024.0
    if killed:
        return Measured(math.nan, peak_mb, {}, f"killed: {killed}")
    if os.waitstatus_to_exitcode(status) != 0 or not result.exists():
        return Measured(math.nan, peak_mb, {}, f"failed, see {result.with_suffix('.log')}")
    answer = json.loads(result.read_text())
    return Measured(float(answer["seconds"]), peak_mb, answer.get("sqnr_db", {}))


def measure(kind: str, bench: dict, int8: Path, samples: int, workdir: Path, limits: Limits, repeat: int) -> Measured:
    runs = []
    for _ in range(repeat):
        runs.append(run_worker(kind, bench, int8, samples, workdir, limits))
        if runs[-1].problem:
            return runs[-1]
    fastest = min(runs, key=lambda run: run.seconds)
    return Measured(fastest.seconds, max(run.peak_mb for run in runs), fastest.sqnr_db)


def prepare(name: str, workdir: Path, eval_samples: int) -> tuple[dict, Path]:
    """The benchmark's model and data (shared with calibration.py's helper) and q8studio's int8 export."""
    done = subprocess.run([sys.executable, str(MODELS_HELPER), "prepare", name, "--workdir", str(workdir),
                           "--calib", str(CALIBRATION_SAMPLES), "--eval", str(eval_samples)],
                          capture_output=True, text=True, check=True)
    bench = json.loads(done.stdout)
    int8 = workdir / "int8" / f"{name}.onnx"
    subprocess.run([sys.executable, "-m", "q8studio", "quantize", bench["model"], "--calib", bench["calib"],
                    "--granularity", "per-channel", "--samples", str(CALIBRATION_SAMPLES), "-o", str(int8)],
                   capture_output=True, check=True)
    return bench, int8


def agreement(ours: dict[str, float], theirs: dict[str, float]) -> str:
    """Largest SQNR difference over the tensors both score (finite values)."""
    common = [name for name in ours if name in theirs and math.isfinite(ours[name]) and math.isfinite(theirs[name])]
    if not common:
        return "n/a"
    return f"{max(abs(ours[name] - theirs[name]) for name in common):.3f} dB over {len(common)}"


def row(samples: int, ours: Measured, theirs: Measured, floor: Measured) -> str:
    def seconds(m: Measured) -> str:
        return m.problem or f"{m.seconds:.3f}"

    ratio = f"{ours.seconds / theirs.seconds:.3f}" if not (ours.problem or theirs.problem) else "n/a"
    rss = f"{ours.peak_mb / theirs.peak_mb:.3f}" if not ours.problem else "n/a"
    if theirs.problem.startswith("killed"):
        rss = f"≤ {rss}"
    over_floor = f"{ours.seconds / floor.seconds:.1f}" if not (ours.problem or floor.problem) else "n/a"
    return (f"| {samples} | {seconds(ours)} | {seconds(theirs)} | {ratio} | {ours.peak_mb:.0f} | {theirs.peak_mb:.0f} "
            f"| {rss} | {seconds(floor)} | {floor.peak_mb:.0f} | {over_floor} | {agreement(ours.sqnr_db, theirs.sqnr_db)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: demo,squeezenet")
    parser.add_argument("--samples", default="50,200", help="comma-separated evaluation sample counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each worker, fastest kept")
    parser.add_argument("--quick", action="store_true", help="20 samples, 1 repeat, RESULTS.md untouched")
    parser.add_argument("--rss-limit-gb", type=float, default=16.0, help="kill a worker above this RSS")
    parser.add_argument("--timeout", type=float, default=1800.0, help="kill a worker after this many seconds")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "q8studio-layer-errors-bench")
    args = parser.parse_args(argv)
    samples = [20] if args.quick else sorted({int(s) for s in args.samples.split(",")})
    repeat = 1 if args.quick else max(1, args.repeat)
    limits = Limits(int(args.rss_limit_gb * 2**30), args.timeout)
    for folder in ("runs", "scratch", "int8"):
        (args.workdir / folder).mkdir(parents=True, exist_ok=True)

    started, load = time.monotonic(), os.getloadavg()[0]
    sections = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        bench, int8 = prepare(name, args.workdir, max(samples))
        lines = [f"### {name}", "", f"{bench['description']}; batches of {bench['batch']} for all three.", "",
                 "| N | q8studio s | ORT s | time q8/ORT | q8studio peak MB | ORT peak MB | RSS q8/ORT | floor s "
                 "| floor peak MB | q8studio/floor | SQNR max difference |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for n in samples:
            measured = {kind: measure(kind, bench, int8, n, args.workdir, limits, repeat)
                        for kind in ("floor", "q8studio", "ort")}
            lines.append(row(n, measured["q8studio"], measured["ort"], measured["floor"]))
            print(lines[-1], flush=True)
        sections.append("\n".join(lines))

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    intro = (
        f"Measured {stamp} with {measured_with()} on the machine above (1-minute load average {load:.2f} / {os.getloadavg()[0]:.2f} at "
        f"start / end). Command: `python benchmarks/layer_errors.py` ({(time.monotonic() - started) / 60:.1f} min). "
        f"Each time is the fastest of {repeat} fresh processes, each peak RSS the highest of them.\n\n"
        "- **q8studio**: `analyse_errors` (what `q8studio evaluate`, `quantize --report` and the GUI's Results "
        "run): both models with the quantized activations exposed, per-layer SQNR / MSE / cosine / max error "
        "summed batch by batch, output errors and top-1; model and data loading included.\n"
        "- **ORT**: `onnxruntime.quantization.qdq_loss_debug`: `modify_model_output_intermediate_tensors` on "
        "both models, `collect_activations` of each (given all graph optimisations, like q8studio, instead of "
        "its default of none), `create_activation_matching`, `compute_activation_error` (SQNR only).\n"
        "- **Floor**: both models run over the same samples with nothing exposed (session creation included).\n"
        "- **SQNR max difference**: the largest gap between the two tools' SQNR over the tensors both score: "
        "they measure the same thing and should agree.\n"
        f"- The int8 model: q8studio's per-channel minmax export, calibrated on {CALIBRATION_SAMPLES} samples."
    )
    section = f"## {TITLE}\n\n{intro}\n\n" + "\n\n".join(sections) + "\n"
    if args.quick:
        print(section)
    else:
        record_section(TITLE, section, RESULTS)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
