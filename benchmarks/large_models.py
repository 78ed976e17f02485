"""Quantizing models with large weights: q8studio vs onnxruntime's quant_pre_process + quantize_static.

The onnx package's test architectures with the most weight (tests/builders.py, random He weights),
upgraded to opset 13 so that per-channel QDQ models load for both tools, quantized with minmax,
per-channel int8 weights and uint8 activations on 8 random images. On such models the time goes into
everything that handles the weights (pre-processing, sessions, writing), not into calibration.
Each run is a fresh process (calibration_worker.py: q8studio's ``quantize_model``, or onnxruntime's
``quant_pre_process`` then ``quantize_static``), its peak RSS from ``wait4``.

    python benchmarks/large_models.py            # writes its section of benchmarks/RESULTS.md
    python benchmarks/large_models.py --quick    # ResNet-50 only, one run each, RESULTS.md untouched
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
from pathlib import Path

from results_file import measured_with, record_section
from watchdog import Limits, watch

BENCH_DIR = Path(__file__).resolve().parent
WORKER = BENCH_DIR / "calibration_worker.py"
TITLE = "Large models: q8studio vs onnxruntime's quantize_static"
MODELS = ("vgg19", "bvlc_alexnet", "resnet50")
SAMPLES = 8
LIMITS = Limits(rss_bytes=16 << 30, timeout_s=900.0)


def prepare(name: str, workdir: Path) -> None:
    """Write ``name``.onnx (opset 13) and ``name``.npz; run in a process of its own, see main()."""
    import numpy as np
    import onnx

    sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
    from builders import light_model

    model = onnx.version_converter.convert_version(light_model(name), 13)
    onnx.save(model, str(workdir / f"{name}.onnx"))
    images = np.random.default_rng(0).random((SAMPLES, 3, 224, 224), dtype=np.float32)
    np.savez(workdir / f"{name}.npz", **{model.graph.input[0].name: images})


def run(kind: str, name: str, workdir: Path) -> tuple[float, float, dict[str, float]]:
    """(seconds, peak MB, phases) of one fresh worker quantizing ``name``."""
    result = workdir / f"{name}.{kind}.json"
    argv = [
        sys.executable, str(WORKER), kind, "--model", str(workdir / f"{name}.onnx"), "--data",
        str(workdir / f"{name}.npz"), "--input", _input_name(workdir, name), "--samples", str(SAMPLES),
        "--batch", "1", "--method", "minmax", "--granularity", "per-channel",
        "--output", str(workdir / f"{name}.{kind}.int8.onnx"), "--result", str(result),
    ]
    with open(workdir / f"{name}.{kind}.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        status, peak_kb, killed = watch(process, LIMITS)
    if killed or os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} on {name} failed ({killed or 'exit ' + str(os.waitstatus_to_exitcode(status))})")
    data = json.loads(result.read_text())
    return float(data["seconds"]), peak_kb / 1024.0, {k: float(v) for k, v in data["phases"].items()}


def _input_name(workdir: Path, name: str) -> str:
    import zipfile

    with zipfile.ZipFile(workdir / f"{name}.npz") as archive:
        return archive.namelist()[0].removesuffix(".npy")


def measure(name: str, workdir: Path, repeats: int) -> dict[str, object]:
    """Fastest of ``repeats`` alternating runs of each tool; the highest peak RSS of them."""
    subprocess.run([sys.executable, __file__, "--prepare", name, str(workdir)], check=True)
    runs: dict[str, list[tuple[float, float, dict[str, float]]]] = {"q8studio": [], "ort": []}
    for _ in range(repeats):
        for kind in runs:
            runs[kind].append(run(kind, name, workdir))
    row: dict[str, object] = {"weights_mb": (workdir / f"{name}.onnx").stat().st_size / 1e6}
    for kind, results in runs.items():
        seconds, _, phases = min(results, key=lambda r: r[0])
        row[kind] = {"seconds": seconds, "peak_mb": max(r[1] for r in results), "phases": phases}
    return row


def section(rows: dict[str, dict], repeats: int, seconds: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {TITLE}", "",
        f"Measured {when} with {measured_with()} on the machine above (shared, so times are noisy): each time is the fastest of "
        f"{repeats} fresh processes per tool, alternating, each peak RSS the highest of them. Command: "
        f"`python benchmarks/large_models.py` ({seconds / 60:.1f} min).", "",
        "- Models: the onnx package's test architectures (`light_*.onnx`) with random He weights, upgraded to "
        "opset 13; 8 random 1x3x224x224 calibration images, batches of 1.",
        "- Both tools: minmax, per-channel int8 weights (symmetric), uint8 activations, QDQ. **q8studio**: "
        "`quantize_model` (load, pre-process, dry run, calibration, ranges, writing, verification run, "
        "weight-error table). **onnxruntime**: `quant_pre_process` then `quantize_static` with a streaming reader.",
        "- q8studio's phases: pre-processing / calibration / writing (with the verification run), from its timings.", "",
        "| model | weights MB | q8studio s | ORT s | time q8/ORT | q8studio peak MB | ORT peak MB | RSS q8/ORT "
        "| q8studio pre-process / calibrate / write s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        ours, theirs = row["q8studio"], row["ort"]
        phases = ours["phases"]
        lines.append(
            f"| {name} | {row['weights_mb']:.0f} | {ours['seconds']:.1f} | {theirs['seconds']:.1f} | "
            f"{ours['seconds'] / theirs['seconds']:.2f} | {ours['peak_mb']:.0f} | {theirs['peak_mb']:.0f} | "
            f"{ours['peak_mb'] / theirs['peak_mb']:.2f} | {phases['preprocess_s']:.1f} / "
            f"{phases['calibrate_s']:.1f} / {phases['quantize_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ResNet-50 only, one run each, RESULTS.md untouched")
    parser.add_argument("--prepare", nargs=2, metavar=("MODEL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare[0], Path(args.prepare[1]))
        return
    models, repeats = (("resnet50",), 1) if args.quick else (MODELS, 2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="q8studio-bench-large-") as tmp:
        rows = {}
        for name in models:
            rows[name] = measure(name, Path(tmp), repeats)
            print(name, json.dumps(rows[name]), flush=True)
    text = section(rows, repeats, time.perf_counter() - started)
    print(text)
    if not args.quick:
        record_section(TITLE, text)


if __name__ == "__main__":
    main()
