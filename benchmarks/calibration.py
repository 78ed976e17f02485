"""Calibration benchmark: q8studio vs onnxruntime's ``quantize_static`` on the same model, data and method.

For every model x method x sample count, three processes run one after another, each fresh so that
its peak RSS (``wait4`` ru_maxrss) is its own: q8studio's quantization, onnxruntime's
``quant_pre_process`` + ``quantize_static`` (QDQ, uint8 activations, int8 weights, same granularity),
and plain float inference over the same samples (the floor). The exported int8 models are then scored
on held-out data (top-1 with labels, else top-1 agreement with the float model) and timed against the
float model (median batch-1 latency). A watchdog kills a worker whose RSS passes ``--rss-limit-gb``.

This process only orchestrates and imports nothing heavy: on Linux a child's ru_maxrss starts at its
parent's high-water mark, so building data or scoring here would inflate every measured peak.

    python benchmarks/calibration.py                      # full run, writes benchmarks/RESULTS.md
    python benchmarks/calibration.py --quick              # smoke run: 20 samples, minmax, no RESULTS.md
    python benchmarks/calibration.py --models demo --methods entropy --samples 50,500
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from watchdog import Limits, watch
from calibration_report import Row, Run, machine_section, progress_line, results_section, update_results_file

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORKER = BENCH_DIR / "calibration_worker.py"
MODELS_HELPER = BENCH_DIR / "calibration_models.py"
MODELS = ("demo", "squeezenet")
METHODS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.999  # onnxruntime's Percentile default; q8studio's own default (99.99) is overridden
GRANULARITY = "per-channel"
SQUEEZENET_EVAL = 200


@dataclass(frozen=True)
class Bench:
    """A float model with its calibration and evaluation data (as ``calibration_models.py prepare`` reports)."""

    name: str
    description: str
    model: str
    calib: str
    eval: str
    input: str
    batch: int

    def ort_batch(self, samples: int) -> int:
        """q8studio's batch size, or the largest smaller one that divides ``samples``: onnxruntime's
        Percentile and Entropy calibrators fail on a shorter last batch (np.asarray of ragged batches)."""
        return max(b for b in range(1, self.batch + 1) if samples % b == 0)


@dataclass
class Settings:
    """The resolved command line."""

    models: list[str]
    samples: list[int]
    methods: list[str]
    eval_samples: int | None
    latency_runs: int
    repeat: int
    limits: Limits
    workdir: Path
    results: Path | None
    argv: list[str] = field(default_factory=list)


# --- worker processes --------------------------------------------------------------------------


def measure(kind: str, bench: Bench, samples: int, settings: Settings, method: str = "minmax") -> Run:
    """``--repeat`` runs of a worker: the fastest one, with the highest peak RSS seen (a failure ends it)."""
    runs: list[Run] = []
    for _ in range(settings.repeat):
        runs.append(run_worker(kind, bench, samples, settings, method))
        if not runs[-1].ok:
            break
    return fastest(runs)


def measure_with_floor(bench: Bench, samples: int, settings: Settings, method: str) -> tuple[Run, Run]:
    """q8studio and the float floor, run by turns (``--repeat`` of each): their ratio is the target, and on a
    shared machine a floor measured minutes apart from q8studio drifted by a third (0.40 s, then 0.54 s)."""
    q8: list[Run] = []
    floor: list[Run] = []
    for _ in range(settings.repeat):
        for kind, runs in (("q8studio", q8), ("float", floor)):
            runs.append(run_worker(kind, bench, samples, settings, method))
        if not (q8[-1].ok and floor[-1].ok):  # a failure ends it, as in measure()
            break
    return fastest(q8), fastest(floor)


def fastest(runs: list[Run]) -> Run:
    """The fastest run, with the highest peak RSS seen; the first failure if any run failed."""
    failed = next((run for run in runs if not run.ok), None)
    if failed is not None:
        return failed
    quickest = min(runs, key=lambda run: run.seconds or 0.0)
    return replace(quickest, peak_rss_mb=max(run.peak_rss_mb for run in runs))


def run_worker(kind: str, bench: Bench, samples: int, settings: Settings, method: str = "minmax") -> Run:
    """One fresh worker process, watched; its own peak RSS comes from ``wait4``."""
    tag = run_tag(bench.name, kind, method, samples)
    result = settings.workdir / "runs" / f"{tag}.json"
    result.unlink(missing_ok=True)
    batch = bench.ort_batch(samples) if kind == "ort" else bench.batch
    argv = [
        sys.executable, str(WORKER), kind, "--model", bench.model, "--data", bench.calib, "--input", bench.input,
        "--samples", str(samples), "--batch", str(batch), "--method", method, "--percentile", str(PERCENTILE),
        "--granularity", GRANULARITY, "--output", str(int8_path(settings.workdir, tag)), "--result", str(result),
    ]
    scratch = settings.workdir / "scratch"  # onnxruntime's tools drop files in the working directory
    with open(settings.workdir / "runs" / f"{tag}.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=scratch)
    status, peak_kb, killed = watch(process, settings.limits)
    process.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = peak_kb / 1024.0
    if killed:
        return Run(f"killed: {killed}", peak_mb, batch=batch)
    if process.returncode != 0 or not result.exists():
        return Run(f"failed (exit {process.returncode}, see {tag}.log)", peak_mb, batch=batch)
    data = json.loads(result.read_text())
    phases = {k: float(v) for k, v in data.get("phases", {}).items()}
    return Run("ok", peak_mb, float(data["seconds"]), phases, batch=batch)


def run_tag(model: str, kind: str, method: str, samples: int) -> str:
    return f"{model}-float-{samples}" if kind == "float" else f"{model}-{kind}-{method}-{samples}"


def int8_path(workdir: Path, tag: str) -> Path:
    return workdir / "int8" / f"{tag}.onnx"


def _helper(*args: str) -> dict:
    """Run ``calibration_models.py`` (data building, scoring) in its own process; its JSON answer."""
    done = subprocess.run([sys.executable, str(MODELS_HELPER), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"calibration_models.py {args[0]} failed:\n{done.stderr}")
    return json.loads(done.stdout)


# --- the benchmark -----------------------------------------------------------------------------


def prepare(name: str, settings: Settings) -> Bench:
    eval_count = settings.eval_samples or SQUEEZENET_EVAL
    answer = _helper("prepare", name, "--workdir", str(settings.workdir), "--calib", str(max(settings.samples)),
                     "--eval", str(eval_count))
    return Bench(**answer)


def benchmark(bench: Bench, settings: Settings) -> tuple[list[Row], dict]:
    """Every method x sample count on one model, then the scores of all its int8 models."""
    rows = []
    for method in settings.methods:
        for n in settings.samples:
            q8, floor = measure_with_floor(bench, n, settings, method)
            row = Row(method, n, q8, measure("ort", bench, n, settings, method), floor)
            rows.append(row)
            print(progress_line(bench.name, row), flush=True)
    scores = score(bench, rows, settings)
    for row in rows:
        for kind, run in (("q8studio", row.q8), ("ort", row.ort)):
            found = scores["models"].get(str(int8_path(settings.workdir, run_tag(bench.name, kind, row.method,
                                                                                  row.samples))))
            if run.ok and found:
                run.score, run.changed, run.output_sqnr_db = found["score"], found["changed"], found["output_sqnr_db"]
                run.latency_ms = tuple(found["latency_ms"])
    return rows, scores


def score(bench: Bench, rows: list[Row], settings: Settings) -> dict:
    paths = [
        str(int8_path(settings.workdir, run_tag(bench.name, kind, row.method, row.samples)))
        for row in rows for kind, run in (("q8studio", row.q8), ("ort", row.ort)) if run.ok
    ]
    samples = ["--samples", str(settings.eval_samples)] if settings.eval_samples else []
    return _helper("score", "--model", bench.model, "--data", bench.eval, *samples,
                   "--latency-runs", str(settings.latency_runs), *paths)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: demo,squeezenet")
    parser.add_argument("--samples", help="comma-separated calibration sample counts (default 50,200,500)")
    parser.add_argument("--methods", help="comma-separated: minmax,percentile,entropy (default all)")
    parser.add_argument("--eval-samples", type=int, help="evaluation samples (default: demo 360, squeezenet 200)")
    parser.add_argument("--latency-runs", type=int, help="timed batch-1 runs per model (default 50)")
    parser.add_argument("--repeat", type=int, help="runs of each worker, fastest kept (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20 samples, minmax, 40 eval samples, 10 latency runs, 1 repeat; "
                        "RESULTS.md untouched")
    parser.add_argument("--rss-limit-gb", type=float, default=16.0, help="kill a worker above this RSS")
    parser.add_argument("--timeout", type=float, default=1800.0, help="kill a worker after this many seconds")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "q8studio-calibration-bench",
                        help="models, data, int8 models and logs (kept between runs; data is reused)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md",
                        help="markdown file whose calibration section is replaced (not written with --quick)")
    args = parser.parse_args(argv)
    return Settings(
        models=_csv(args.models, MODELS, "--models"),
        samples=sorted({int(s) for s in (args.samples or ("20" if args.quick else "50,200,500")).split(",")}),
        methods=_csv(args.methods or ("minmax" if args.quick else ",".join(METHODS)), METHODS, "--methods"),
        eval_samples=args.eval_samples or (40 if args.quick else None),
        latency_runs=args.latency_runs or (10 if args.quick else 50),
        repeat=max(1, args.repeat or (1 if args.quick else 3)),
        limits=Limits(int(args.rss_limit_gb * 2**30), args.timeout),
        workdir=args.workdir,
        results=None if args.quick else args.results,
        argv=sys.argv[1:] if argv is None else argv,
    )


def _csv(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise SystemExit(f"{flag}: choose from {', '.join(allowed)} (got {text!r})")
    return items


def load_average() -> str:
    """The 1-minute load average: how busy the shared machine was."""
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "n/a"


def run_info(settings: Settings, elapsed: float, before: dict[str, str], load: str) -> dict[str, str]:
    after = _helper("sources")
    labels = {"clipping": "clipping.py", "code": "the q8studio code measured"}
    changed = [f"{labels[k]} changed during the run (was `{before[k]}`)" for k in labels if before[k] != after[k]]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python benchmarks/calibration.py", *settings.argv]),
        "elapsed": f"{elapsed / 60:.1f} min",
        "load": f"{load} / {load_average()}",
        **after,
        "changed": "".join(f"; **{text}**" for text in changed),
        "percentile": f"{PERCENTILE}",
        "granularity": GRANULARITY,
        "rss_limit": f"{settings.limits.rss_bytes / 2**30:.0f} GB",
        "latency_runs": str(settings.latency_runs),
        "repeat": str(settings.repeat),
    }


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    for folder in ("runs", "int8", "scratch"):
        (settings.workdir / folder).mkdir(parents=True, exist_ok=True)
    started, hashes, load = time.monotonic(), _helper("sources"), load_average()
    sections = []
    for name in settings.models:
        bench = prepare(name, settings)
        rows, scores = benchmark(bench, settings)
        sections.append((bench, rows, scores))
    body = results_section(sections, run_info(settings, time.monotonic() - started, hashes, load))
    print(body)
    if settings.results is not None:
        update_results_file(settings.results, body, machine_section())
        print(f"wrote {settings.results}")


if __name__ == "__main__":
    main()
